// transformers.js (@huggingface/transformers on onnxruntime-node, CPU, TJS_THREADS intra-op threads, default 1): one (model, dtype) per process,
// so resident memory and load time are this configuration's alone. Prints one JSON line.
// usage: node --expose-gc bench_tjs.mjs ONNX_MODEL_DIR fp32|q8|q4 INPUT_IDS_JSON [runs=3] [warmup=1]
// generate(): greedy, batch 1, exactly 64 forced new tokens (min_new_tokens = max_new_tokens); encoder: the
// same session's encoder run on the same 32 ids. decode tok/s = 64 / (generate - encoder), from medians.
// Method and traps: ../../../shared/anchors (bench_tjs.mjs there; generate takes ONE object).
import { env, AutoModelForSeq2SeqLM, Tensor } from '@huggingface/transformers';
import fs from 'node:fs';
import path from 'node:path';

const [modelDir, dtype, idsFile, runsArg = '3', warmArg = '1'] = process.argv.slice(2);
const NEW = 64, RUNS = +runsArg, WARM = +warmArg;
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(modelDir));
const ids = JSON.parse(fs.readFileSync(idsFile, 'utf8'));
const i64 = (a) => new Tensor('int64', BigInt64Array.from(a.map(BigInt)), [1, a.length]);
const inputs = { input_ids: i64(ids), attention_mask: i64(ids.map(() => 1)) };

let t = performance.now();
const model = await AutoModelForSeq2SeqLM.from_pretrained(path.basename(modelDir), {
  dtype, device: 'cpu', session_options: process.env.TJS_THREADS === "default" ? {} : { intraOpNumThreads: +(process.env.TJS_THREADS ?? 1), interOpNumThreads: 1 },
});
const loadS = (performance.now() - t) / 1e3;
const threads = process.env.TJS_THREADS === "default" ? 0 : +(process.env.TJS_THREADS ?? 1);
globalThis.gc?.();
const rssMb = process.memoryUsage().rss / 1e6;
const gen = () => model.generate({ ...inputs, max_new_tokens: NEW, min_new_tokens: NEW, do_sample: false, num_beams: 1 });
const enc = model.sessions.model;
const feeds = { input_ids: inputs.input_ids.ort_tensor, attention_mask: inputs.attention_mask.ort_tensor };
const encode = () => enc.run(feeds);
// encoder 8x128 (row r = 100 + (i * (53 + r)) % 3000) and the summarization shape: 1x512 (100 + (i * 53) % 3000)
const synth = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
const batch = (rows) => { const flat = rows.flat(); return new Tensor('int64', BigInt64Array.from(flat.map(BigInt)), [rows.length, rows[0].length]); };
const in8 = batch(Array.from({ length: 8 }, (_, r) => synth(128, 53 + r))), in512 = batch([synth(512, 53)]);
const ones = (x) => new Tensor('int64', new BigInt64Array(x.size).fill(1n), x.dims);
const encOf = (x) => () => enc.run({ input_ids: x.ort_tensor, attention_mask: ones(x).ort_tensor });
const summarize = () => model.generate({ input_ids: in512, attention_mask: ones(in512), max_new_tokens: NEW, min_new_tokens: NEW, do_sample: false, num_beams: 1 });
const timed = async (fn) => { for (let i = 0; i < WARM; i++) await fn(); const all = []; for (let i = 0; i < RUNS; i++) { const t0 = performance.now(); await fn(); all.push(performance.now() - t0); } return all; };

let out;
for (let i = 0; i < WARM; i++) { await encode(); out = await gen(); }
const encAll = [], genAll = [];
for (let i = 0; i < RUNS; i++) {
  t = performance.now(); await encode(); encAll.push(performance.now() - t);
  t = performance.now(); out = await gen(); genAll.push(performance.now() - t);
  if (out.dims[1] !== NEW + 1) throw new Error(`expected ${NEW + 1} ids, got ${out.dims}`);
}
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const e = median(encAll), g = median(genAll);
const enc8All = await timed(encOf(in8)), enc512All = await timed(encOf(in512)), summAll = await timed(summarize);
console.log(JSON.stringify({
  runtime: 'tjs', system: `transformers.js ${env.version} (onnxruntime-node)`, dtype, threads, load_s: loadS, rss_mb: rssMb,
  input_tokens: ids.length, runs: RUNS, warmup: WARM, encoder_32_ms: e, generate_64_ms: g, decode_tok_s: NEW / ((g - e) / 1e3),
  encoder_8x128_tok_s: 1024 / (median(enc8All) / 1e3), encoder_1x512_ms: median(enc512All), summarize_ms: median(summAll),
  encoder_8x128_ms_all: enc8All, encoder_1x512_ms_all: enc512All, summarize_ms_all: summAll,
  encoder_32_ms_all: encAll, generate_64_ms_all: genAll, ids: Array.from(out.data, Number),
}));
await model.dispose();
