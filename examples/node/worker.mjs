// Node: generation in a worker thread, tokens streamed back, cancellable with an AbortSignal.
//   node worker.mjs ./t5-small "translate English to German: Hello"
import { createGenerationWorker } from "t5-web";

const [modelDir = "./t5-small", text = "translate English to German: Hello"] = process.argv.slice(2);
const gen = await createGenerationWorker(modelDir); // a directory or an https:// base URL
const tokens = [];
const [out] = await gen.generate(text, { max_new_tokens: 12, on_token: (e) => tokens.push(e.tokens[0]), signal: AbortSignal.timeout(60_000) });
console.log(JSON.stringify({ ids: [0, ...tokens], text: out.generated_text }));
// an idle worker does not keep the process alive; gen.terminate() frees it at once
