// Deno: the generation worker helper (a module Web Worker running the package's browser build),
// streamed tokens, an AbortSignal crossing into the worker, exact ids. Run by ../run.mjs in the
// scratch project: deno run -A runtimes/deno/worker.ts
import { createGenerationWorker, pipeline } from "t5-web";

// the one Deno API used here (Deno's global; this file is also type-checked by tsc, test/tsconfig.json)
declare const Deno: { readTextFile(path: string): Promise<string> };

const expected = JSON.parse(await Deno.readTextFile("expected.json"));
const pipe = await pipeline("text2text-generation", "models/tiny-t5-v1_1");
const want = await pipe(expected.texts, { max_new_tokens: expected.max_new_tokens });
pipe.dispose();

const gen = await createGenerationWorker("models/tiny-t5-v1_1");
const tokens: number[] = [];
const first = await gen.generate(expected.texts[0], { max_new_tokens: expected.max_new_tokens, on_token: (e) => tokens.push(e.tokens[0]!) });
const ac = new AbortController();
let seen = 0;
let aborted = "not aborted";
try {
  await gen.generate(expected.texts[0], { max_new_tokens: 3000, min_new_tokens: 3000, signal: ac.signal, on_token: () => ++seen === 3 && ac.abort() });
} catch (e) {
  aborted = (e as Error).name;
}
const after = await gen.generate(expected.texts, { max_new_tokens: expected.max_new_tokens });
gen.terminate();
console.log(JSON.stringify({ first, want, tokens, aborted, seen, after }));
