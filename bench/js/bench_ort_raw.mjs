// Raw ONNX Runtime greedy loop (no transformers.js) on transformers.js's ONNX files: encoder once, then
// decoder_model_merged x 64 steps with its KV cache; EOS (id 1) masked so exactly 64 tokens come out.
// backend 'web': onnxruntime-web (WASM SIMD; what transformers.js runs in browsers, Deno, edge) in Node;
// 'node': onnxruntime-node (native). 1 thread. One (model, dtype) per process: onnxruntime-web reads
// env.wasm.numThreads once per process, and resident memory / load time stay this configuration's own.
// usage: node --expose-gc bench_ort_raw.mjs web|node ONNX_MODEL_DIR fp32|q8|q4 INPUT_IDS_JSON [runs=3] [warmup=1]
// Prints one JSON line. Method: ../../../shared/anchors/js/bench_ort_raw.mjs.
import fs from 'node:fs';
import path from 'node:path';

const [backend, modelDir, dtype, idsFile, runsArg = '3', warmArg = '1'] = process.argv.slice(2);
const ort = backend === 'web' ? await import('onnxruntime-web') : (await import('onnxruntime-node')).default;
const SUFFIX = { fp32: '', q8: '_quantized', q4: '_q4' };
const NEW = 64, RUNS = +runsArg, WARM = +warmArg, EOS = 1;
const IDS = JSON.parse(fs.readFileSync(idsFile, 'utf8'));
const cfg = JSON.parse(fs.readFileSync(path.join(modelDir, 'config.json'), 'utf8'));
const L = cfg.num_decoder_layers ?? cfg.num_layers, H = cfg.num_heads, D = cfg.d_kv;
const i64 = (a, dims) => new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), dims);
const ids = i64(IDS, [1, IDS.length]), mask = i64(IDS.map(() => 1), [1, IDS.length]);

// ORT_THREADS (default 1): onnxruntime-web numThreads (read once per process), onnxruntime-node intraOpNumThreads
const threads = +(process.env.ORT_THREADS ?? 1);
const opts = backend === 'web' ? {} : { intraOpNumThreads: threads, interOpNumThreads: 1 };
if (backend === 'web') ort.env.wasm.numThreads = threads;
const load = (n) => ort.InferenceSession.create(fs.readFileSync(path.join(modelDir, 'onnx', `${n}${SUFFIX[dtype]}.onnx`)), opts);
let t = performance.now();
const enc = await load('encoder_model'), dec = await load('decoder_model_merged');
const loadS = (performance.now() - t) / 1e3;
globalThis.gc?.();
const rssMb = process.memoryUsage().rss / 1e6;
const encode = () => enc.run({ input_ids: ids, attention_mask: mask });
// encoder 8x128 (row r = 100 + (i * (53 + r)) % 3000) and the summarization shape: 1x512 (100 + (i * 53) % 3000)
const synth = (n, mul) => Array.from({ length: n }, (_, i) => 100 + ((i * mul) % 3000));
const rows8 = Array.from({ length: 8 }, (_, r) => synth(128, 53 + r));
const ids8 = i64(rows8.flat(), [8, 128]), mask8 = i64(rows8.flat().map(() => 1), [8, 128]);
const ids512 = i64(synth(512, 53), [1, 512]), mask512 = i64(synth(512, 53).map(() => 1), [1, 512]);
async function generate(inIds = ids, inMask = mask) {
  const { last_hidden_state } = await enc.run({ input_ids: inIds, attention_mask: inMask });
  const mask = inMask;
  const feeds = { encoder_attention_mask: mask, encoder_hidden_states: last_hidden_state,
                  use_cache_branch: new ort.Tensor('bool', [false], [1]) };
  for (let l = 0; l < L; l++) for (const k of ['decoder.key', 'decoder.value', 'encoder.key', 'encoder.value'])
    feeds[`past_key_values.${l}.${k}`] = new ort.Tensor('float32', new Float32Array(0), [1, H, 0, D]);
  const out = [0]; let tok = 0;
  for (let step = 0; step < NEW; step++) {
    feeds.input_ids = i64([tok], [1, 1]);
    const o = await dec.run(feeds);
    const lg = o.logits.data; lg[EOS] = -Infinity;
    tok = 0; for (let v = 1; v < lg.length; v++) if (lg[v] > lg[tok]) tok = v;
    out.push(tok);
    for (const [k, v] of Object.entries(o)) if (k.startsWith('present.') && v.size > 0)
      feeds[k.replace('present.', 'past_key_values.')] = v;  // the cache branch returns empty encoder KV: keep step 0's
    feeds.use_cache_branch = new ort.Tensor('bool', [true], [1]);
  }
  return out;
}
let out;
for (let i = 0; i < WARM; i++) { await encode(); out = await generate(); }
const encAll = [], genAll = [];
for (let i = 0; i < RUNS; i++) {
  t = performance.now(); await encode(); encAll.push(performance.now() - t);
  t = performance.now(); out = await generate(); genAll.push(performance.now() - t);
}
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];
const e = median(encAll), g = median(genAll);
const timed = async (fn) => { for (let i = 0; i < WARM; i++) await fn(); const all = []; for (let i = 0; i < RUNS; i++) { const t0 = performance.now(); await fn(); all.push(performance.now() - t0); } return all; };
const enc8All = await timed(() => enc.run({ input_ids: ids8, attention_mask: mask8 }));
const enc512All = await timed(() => enc.run({ input_ids: ids512, attention_mask: mask512 }));
const summAll = await timed(() => generate(ids512, mask512));
const version = backend === 'web' ? JSON.parse(fs.readFileSync(new URL('./node_modules/onnxruntime-web/package.json', import.meta.url))).version : ort.env.versions?.node;
console.log(JSON.stringify({
  runtime: backend === 'web' ? 'ortweb' : 'ortnode', system: `onnxruntime-${backend} ${version ?? ''}`.trim(), dtype, threads,
  load_s: loadS, rss_mb: rssMb, input_tokens: IDS.length, runs: RUNS, warmup: WARM, encoder_32_ms: e, generate_64_ms: g,
  decode_tok_s: NEW / ((g - e) / 1e3),
  encoder_8x128_tok_s: 1024 / (median(enc8All) / 1e3), encoder_1x512_ms: median(enc512All), summarize_ms: median(summAll),
  encoder_8x128_ms_all: enc8All, encoder_1x512_ms_all: enc512All, summarize_ms_all: summAll, encoder_32_ms_all: encAll, generate_64_ms_all: genAll, ids: out,
}));
await enc.release(); await dec.release();
