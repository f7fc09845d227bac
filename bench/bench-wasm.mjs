// WASM side of bench/run.sh: the same measurements as `t5-bench run` (native), through the
// published TypeScript facade and the wasm build, in Node. Prints one JSON line.
import { T5ForConditionalGeneration, T5EncoderModel } from "../dist/index.js";

const dir = process.argv[2];
const dtype = process.argv[3] ?? "fp32";
const prequantized = process.argv[4] === "prequantized"; // a `t5-bench quantize` checkpoint (loads as stored)
const runs = 5;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));

let t = performance.now();
const model = await T5ForConditionalGeneration.fromPretrained(dir, { dtype });
const loadS = (performance.now() - t) / 1e3;
globalThis.gc?.();
const rssMb = process.memoryUsage().rss / 1e6;
const encoder = await T5EncoderModel.fromPretrained(dir, { dtype });

const in32 = { input_ids: [ids(32, 37)] };
const rows8 = Array.from({ length: 8 }, (_, r) => ids(128, 53 + r));
const enc32 = [], enc8 = [], gen = [];
for (let i = 0; i < runs; i++) {
  t = performance.now();
  encoder.forward(in32);
  enc32.push(performance.now() - t);
  t = performance.now();
  encoder.forward({ input_ids: rows8 });
  enc8.push(performance.now() - t);
}
const newTokens = 64;
for (let i = 0; i < runs; i++) {
  t = performance.now();
  const out = await model.generate(in32, { max_new_tokens: newTokens, min_new_tokens: newTokens });
  gen.push(performance.now() - t);
  if (out[0].length !== newTokens + 1) throw new Error(`expected ${newTokens + 1} ids, got ${out[0].length}`);
}
const e32 = median(enc32), e8 = median(enc8), g = median(gen);
console.log(JSON.stringify({ runtime: "wasm", dtype, prequantized, rss_mb: rssMb, load_s: loadS, encoder_32_ms: e32, encoder_8x128_tok_s: 1024 / (e8 / 1e3), generate_64_ms: g, decode_tok_s: newTokens / ((g - e32) / 1e3) }));
model.dispose();
encoder.dispose();
