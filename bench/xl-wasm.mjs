// A t5-v1_1-xl-sized checkpoint in WASM (Node): the package's loader streaming the files with dtype q4 / q8
// (each linear weight quantized as it arrives), then one JSON line: load time, wasm memory, peak RSS, encoder
// 1×128 (one forward with a 1-token decoder input: encoder plus one decoder step) and greedy decode tok/s (32-token
// input, exactly 64 forced new tokens). One model only (bench-wasm.mjs loads a second, encoder-only copy, which an
// xl model cannot afford in one 4 GiB memory).
//   node --expose-gc bench/xl-wasm.mjs MODEL_DIR q4|q8 [threads] [runs=2]
import { T5ForConditionalGeneration, wasmFlavour, wasmMemory } from "../dist/index.js";

const [dir, dtype = "q4", threadsArg, runsArg] = process.argv.slice(2);
const numThreads = threadsArg ? Number(threadsArg) : undefined;
const runs = Math.max(1, Number(runsArg ?? 2));
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const ids = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
const mb = (b) => b / 1e6;

let t = performance.now();
const model = await T5ForConditionalGeneration.fromPretrained(dir, { dtype, num_threads: numThreads });
const loadS = (performance.now() - t) / 1e3;
globalThis.gc?.();
const afterLoad = { rss_mb: mb(process.memoryUsage().rss), peak_rss_mb: process.resourceUsage().maxRSS / 1e3, wasm_mb: mb(wasmMemory()?.buffer.byteLength ?? 0) };

const in32 = { input_ids: [ids(32, 37)] };
const in128 = { input_ids: [ids(128, 53)], decoder_input_ids: [[0]] };
const f32 = [], f128 = [], gen = [];
for (let i = 0; i < runs; i++) {
  t = performance.now();
  model.forwardSync({ ...in32, decoder_input_ids: [[0]] });
  f32.push(performance.now() - t);
  t = performance.now();
  model.forwardSync(in128);
  f128.push(performance.now() - t);
}
const newTokens = 64;
const genOpts = { max_new_tokens: newTokens, min_new_tokens: newTokens };
for (let i = 0; i < runs; i++) {
  t = performance.now();
  const out = model.generateSync(in32, genOpts);
  gen.push(performance.now() - t);
  if (out[0].length !== newTokens + 1) throw new Error(`expected ${newTokens + 1} ids, got ${out[0].length}`);
}
const e32 = median(f32), e128 = median(f128), g = median(gen);
console.log(JSON.stringify({
  runtime: "wasm", node: process.version, flavour: wasmFlavour(), threads: model.threads, dtype, load_s: loadS, after_load: afterLoad,
  wasm_mb: mb(wasmMemory()?.buffer.byteLength ?? 0), peak_rss_mb: process.resourceUsage().maxRSS / 1e3,
  forward_32_ms: e32, forward_1x128_ms: e128, encoder_1x128_tok_s: 128 / (e128 / 1e3), generate_64_ms: g,
  decode_tok_s: newTokens / ((g - e32) / 1e3), runs, forward_1x128_ms_all: f128, generate_64_ms_all: gen,
}));
model.dispose();
