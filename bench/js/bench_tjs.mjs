// transformers.js (@huggingface/transformers on onnxruntime-node, CPU, 1 thread): one (model, dtype) per process,
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
globalThis.gc?.();
const rssMb = process.memoryUsage().rss / 1e6;
const gen = () => model.generate({ ...inputs, max_new_tokens: NEW, min_new_tokens: NEW, do_sample: false, num_beams: 1 });
const enc = model.sessions.model;
const feeds = { input_ids: inputs.input_ids.ort_tensor, attention_mask: inputs.attention_mask.ort_tensor };
const encode = () => enc.run(feeds);

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
console.log(JSON.stringify({
  runtime: 'tjs', system: `transformers.js ${env.version} (onnxruntime-node)`, dtype, threads: 1, load_s: loadS, rss_mb: rssMb,
  input_tokens: ids.length, runs: RUNS, warmup: WARM, encoder_32_ms: e, generate_64_ms: g, decode_tok_s: NEW / ((g - e) / 1e3),
  encoder_32_ms_all: encAll, generate_64_ms_all: genAll, ids: Array.from(out.data, Number),
}));
await model.dispose();
