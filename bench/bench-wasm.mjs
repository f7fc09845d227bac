// WASM side of bench/run.sh: the same measurements as `t5-bench run` (native), through the
// published TypeScript facade and the wasm build, in Node. Prints one JSON line.
// Optional (bench/compare.sh): T5_BENCH_RUNS (timed runs, default 5), T5_BENCH_WARMUP (untimed generates,
// default 0), T5_BENCH_INPUT (a JSON array of input ids replacing the synthetic 32-token input; the
// greedy ids are then printed too), T5_BENCH_THREADS (the `num_threads` load option; default: every hardware thread,
// at most 8; 1: the single-thread builds). The JSON lists every timed run (`*_all`).
import fs from "node:fs";
import { T5ForConditionalGeneration, T5EncoderModel, wasmFlavour } from "../dist/index.js";
const numThreads = process.env.T5_BENCH_THREADS ? Number(process.env.T5_BENCH_THREADS) : undefined;

const dir = process.argv[2];
const dtype = process.argv[3] ?? "fp32";
const prequantized = process.argv[4] === "prequantized"; // a `t5-bench quantize` checkpoint (loads as stored)
const runs = Math.max(1, Number(process.env.T5_BENCH_RUNS ?? 5));
const warmup = Number(process.env.T5_BENCH_WARMUP ?? 0);
const input = process.env.T5_BENCH_INPUT ? JSON.parse(fs.readFileSync(process.env.T5_BENCH_INPUT, "utf8")) : null;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));

let t = performance.now();
const model = await T5ForConditionalGeneration.fromPretrained(dir, { dtype, num_threads: numThreads });
const loadS = (performance.now() - t) / 1e3;
globalThis.gc?.();
const rssMb = process.memoryUsage().rss / 1e6;
const encoder = await T5EncoderModel.fromPretrained(dir, { dtype, num_threads: numThreads });

const in32 = { input_ids: [input ?? ids(32, 37)] };
const rows8 = Array.from({ length: 8 }, (_, r) => ids(128, 53 + r));
const in512 = { input_ids: [ids(512, 53)] }; // the summarization shape (encoder alone; 64 forced new tokens)
const enc32 = [], enc8 = [], enc512 = [], gen = [], summ = [];
for (let i = 0; i < warmup; i++) encoder.forwardSync(in32);
for (let i = 0; i < runs; i++) {
  t = performance.now();
  encoder.forwardSync(in32);
  enc32.push(performance.now() - t);
  t = performance.now();
  encoder.forwardSync({ input_ids: rows8 });
  enc8.push(performance.now() - t);
  t = performance.now();
  encoder.forwardSync(in512);
  enc512.push(performance.now() - t);
}
const newTokens = 64;
const genOpts = { max_new_tokens: newTokens, min_new_tokens: newTokens };
for (let i = 0; i < warmup; i++) model.generateSync(in32, genOpts);
let outIds = null;
for (let i = 0; i < runs; i++) {
  t = performance.now();
  const out = model.generateSync(in32, genOpts);
  gen.push(performance.now() - t);
  if (out[0].length !== newTokens + 1) throw new Error(`expected ${newTokens + 1} ids, got ${out[0].length}`);
  outIds = Array.from(out[0], Number);
}
for (let i = 0; i < runs; i++) {
  t = performance.now();
  const out = model.generateSync(in512, genOpts);
  summ.push(performance.now() - t);
  if (out[0].length !== newTokens + 1) throw new Error(`expected ${newTokens + 1} ids, got ${out[0].length}`);
}
const e32 = median(enc32), e8 = median(enc8), g = median(gen);
console.log(JSON.stringify({ runtime: "wasm", node: process.version, flavour: wasmFlavour(), threads: model.threads, dtype, prequantized, rss_mb: rssMb, load_s: loadS, encoder_32_ms: e32, encoder_8x128_tok_s: 1024 / (e8 / 1e3), generate_64_ms: g, decode_tok_s: newTokens / ((g - e32) / 1e3),
  encoder_1x512_ms: median(enc512), summarize_ms: median(summ), encoder_8x128_ms_all: enc8, encoder_1x512_ms_all: enc512, summarize_ms_all: summ,
  runs, warmup, input_tokens: in32.input_ids[0].length, encoder_32_ms_all: enc32, generate_64_ms_all: gen, ids: input ? outIds : null }));
model.dispose();
encoder.dispose();
