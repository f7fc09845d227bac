// Tables for bench/compare.sh from bench/.cache/compare/results: rows.jsonl (one line per process and round),
// bandwidth.txt (t5-bench bandwidth per round), ids.jsonl + ../reference_ids.json (untied check model),
// ../onnx_step_bytes.json (weight bytes per decode step of the ONNX files), meta.json.
// usage: node bench/js/summarize.mjs bench/.cache/compare [RESULTS_DIR]
import fs from 'node:fs';
import path from 'node:path';

const C = process.argv[2];
const R = process.argv[3] ?? path.join(C, 'results'); // another results folder (an earlier run) may be given
const lines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);
const allRows = lines(path.join(R, 'rows.jsonl')).map((l) => JSON.parse(l));
// the decode tables below: 1 thread (older runs have no threads_req: 1 thread); the threads table: every row
const rows = allRows.filter((x) => (x.threads_req ?? 1) === 1 && x.runtime !== 'torch');
const meta = JSON.parse(fs.readFileSync(path.join(R, 'meta.json'), 'utf8'));
// t5-bench bandwidth at the start of every round, and the figure every `t5-bench run` process measures too
const bwRounds = lines(path.join(R, 'bandwidth.txt')).map(Number);
const bws = [...bwRounds, ...rows.filter((x) => x.bandwidth_gbs).map((x) => x.bandwidth_gbs)];
const onnxStep = JSON.parse(fs.readFileSync(path.join(C, 'onnx_step_bytes.json'), 'utf8'));
const reference = JSON.parse(fs.readFileSync(path.join(C, 'reference_ids.json'), 'utf8')).ids;
const ids = fs.existsSync(path.join(R, 'ids.jsonl')) ? lines(path.join(R, 'ids.jsonl')).map((l) => JSON.parse(l)) : [];
const NEW = 64;

const median = (v) => { const s = [...v].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const f = (x, d = 1) => (x === undefined || x === null || Number.isNaN(x) ? '–' : x.toFixed(d));
const bw = Math.max(...bws); // best of the rounds' best-of-5: the least disturbed figure on a shared machine
// t5-bench run measures the read bandwidth over a working set of its own step's size (bandwidth_gbs): a large
// last-level cache streams a 20–40 MB quantized step about twice as fast as the 154 MB fp32 one, so each dtype's
// bound (ours and the ONNX rows alike, whose step sizes are close to ours) uses its own size's best figure.
// Older runs (one 256 MiB figure for all) fall back to `bw`.
const bwByDtype = {};
for (const x of rows) if (x.runtime === 'native' && x.bandwidth_gbs && x.bw_at_step) bwByDtype[x.dtype] = Math.max(bwByDtype[x.dtype] ?? 0, x.bandwidth_gbs);
const bwAt = (d) => bwByDtype[d] ?? bw;
const n24 = meta.node24 ? `Node ${meta.node24.replace(/^v/, '')}` : 'Node 24';
const NAMES = { native: 't5-web native (t5-bench)', wasm: `t5-web WASM in Node ${(meta.node ?? '').replace(/^v/, '')} (SIMD128)`, tjs: 'transformers.js (onnxruntime-node)',
  ortweb: `onnxruntime-web WASM in Node ${(meta.node ?? '').replace(/^v/, '')}`, wasm24: `t5-web WASM in ${n24} (relaxed SIMD)`, ortweb24: `onnxruntime-web WASM in ${n24}` };
// a t5-web WASM row is named by the build its processes reported (wasmFlavour(): the threaded build loads at
// num_threads > 1), not by the runtime key alone
const flavourOf = (rs) => [...new Set(rs.map((x) => x.flavour).filter(Boolean))].join(' + ') || undefined;
const nameOf = (names, rt, a) => (a?.flavour && /^wasm/.test(rt) ? names[rt].replace(/\([^)]*\)$/, `(${a.flavour} build)`) : names[rt]);
// t5-web rows and their same-precision counterpart
const PAIR = { native: 'tjs', wasm: 'ortweb', wasm24: 'ortweb24' };
const ours = (rt) => rt in PAIR;
const DTYPES = ['fp32', 'bf16', 'q8', 'q4'];
const ORDER = ['native', 'tjs', 'wasm', 'ortweb', 'wasm24', 'ortweb24'];
// t5-web's bytes per step (from t5-bench's own count, same storage in native and wasm)
const ourStep = Object.fromEntries(rows.filter((x) => x.runtime === 'native').map((x) => [x.dtype, x.step_mb]));

const agg = {};
for (const rt of ORDER) for (const d of DTYPES) {
  const rs = rows.filter((x) => x.runtime === rt && x.dtype === d);
  if (!rs.length) continue;
  const enc = rs.flatMap((x) => x.encoder_32_ms_all), gen = rs.flatMap((x) => x.generate_64_ms_all);
  const e = median(enc), g = median(gen);
  const perRun = gen.map((t) => NEW / ((t - e) / 1e3));
  const step = ours(rt) ? ourStep[d] : onnxStep[d];
  const bound = (bwAt(d) * 1e9) / (step * 1e6);
  agg[`${rt}:${d}`] = { rt, d, n: gen.length, e, g, tps: NEW / ((g - e) / 1e3), lo: Math.min(...perRun), hi: Math.max(...perRun),
    load: median(rs.map((x) => x.load_s)), rss: median(rs.map((x) => x.rss_mb)), step, bound, system: rs[0].system, flavour: flavourOf(rs) };
}
// what a user downloads: our one safetensors file; transformers.js's encoder + merged decoder ONNX files
const size = (...p) => p.reduce((t, x) => t + (fs.existsSync(x) ? fs.statSync(x).size : NaN), 0) / 1e6;
const SUFFIX = { fp32: '', q8: '_quantized', q4: '_q4' };
const files = (rt, d) => (ours(rt)
  ? size(path.join(C, d === 'fp32' ? 't5-small-random' : `t5-small-random-${d}`, 'model.safetensors'))
  : size(...['encoder_model', 'decoder_model_merged'].map((n) => path.join(C, 'onnx', 't5-small-random', 'onnx', `${n}${SUFFIX[d]}.onnx`))));
const ratio = (a, b) => (a && b ? `${f(a.tps / b.tps, 2)}×` : '–');

const out = [];
const p = (s = '') => out.push(s);
p(`## Side by side (bench/compare.sh), ${meta.date}`);
p();
p(`Machine: ${meta.cpu}, nproc ${meta.nproc}, shared with other jobs (load average ${meta.loadavg_start} at the start, ${meta.loadavg_end ?? '?'} at the end): timings are noisy, compare within this run only.`);
p(`Model: t5-small shape (real config + tokenizer, tied embeddings), random weights made by transformers (seed 0); every system reads the same weights (our safetensors; transformers.js / onnxruntime the ONNX export of that checkpoint).`);
p(`Task: one 32-token input, batch 1, greedy, exactly ${NEW} forced new tokens, KV cache, **1 thread for every system**. ${meta.rounds} rounds × ${meta.runs} timed runs (after ${meta.warmup} warm-up) per configuration, each configuration its own process, order rotated per round; figures are medians over all ${meta.rounds * meta.runs} samples.`);
p(`decode tok/s = ${NEW} ÷ (median generate − median encoder), [min–max] over the single generate runs; encoder = the 32-token input alone; load = file → ready model (median of rounds); RSS = process resident memory right after load (Node processes include Node itself, about ${f(meta.node_baseline_rss_mb, 0)} MB); files = what is downloaded (t5-web: model.safetensors; ONNX: encoder_model + decoder_model_merged).`);
if (Object.keys(bwByDtype).length) {
  p(`Bandwidth bound = weight bytes read per decode step ÷ single-core read bandwidth over a working set of that step's size (\`t5-bench bandwidth <MB>\`, SIMD loads with and without software prefetch, best pass; best of the ${meta.rounds} native processes per dtype): ` +
    DTYPES.filter((d) => bwByDtype[d]).map((d) => `${d} ${f(ourStep[d], 1)} MB at ${f(bwByDtype[d], 1)} GB/s`).join(', ') +
    `; a 256 MB array read at ${f(Math.max(...bwRounds), 1)} GB/s (best of ${bwRounds.length}, one per round). The machine's large last-level cache is why smaller steps stream faster. MB/step: t5-web's storage (t5-bench's count); ONNX files: the initializers of the cached-decoder branch's matrix products (bench/onnx_step_bytes.py).`);
} else {
  p(`Bandwidth bound = weight bytes read per decode step ÷ single-core read bandwidth ${f(bw, 1)} GB/s (t5-bench bandwidth: the best of ${bws.length} measurements in this run, one per round and one per t5-bench process; median ${f(median(bws), 1)}, lowest ${f(Math.min(...bws), 1)} GB/s: on a loaded machine the bound is itself noisy). MB/step: t5-web's storage (t5-bench's count); ONNX files: the initializers of the cached-decoder branch's matrix products (bench/onnx_step_bytes.py).`);
}
p();
p('| system | dtype | decode tok/s [min–max] | encoder 32 tok ms | load s | RSS MB | files MB | MB/step | bound tok/s | % of bound | t5-web ÷ same-precision counterpart |');
p('|---|---|---|---|---|---|---|---|---|---|---|');
for (const d of DTYPES) for (const rt of ORDER) {
  const a = agg[`${rt}:${d}`];
  if (!a) continue;
  const other = ours(rt) ? agg[`${PAIR[rt]}:${d}`] : null;
  const r = other ? `decode ${ratio(a, other)}, encoder speed ${f(other.e / a.e, 2)}× (vs ${rt === 'native' ? 'transformers.js' : 'onnxruntime-web'})` : ours(rt) ? '– (no bf16 ONNX export)' : '';
  p(`| ${nameOf(NAMES, rt, a)} | ${d}${ours(rt) && d !== 'fp32' ? ' (file)' : ''} | **${f(a.tps)}** [${f(a.lo)}–${f(a.hi)}] | ${f(a.e, 1)} | ${f(a.load, 2)} | ${f(a.rss, 0)} | ${f(files(rt, d), 0)} | ${f(a.step, 1)} | ${f(a.bound, 0)} | ${f((100 * a.tps) / a.bound, 0)}% | ${r} |`);
}
p();
p('Decode tok/s at the same precision, median (best single run; on a contended machine the best run is the one least slowed by other jobs), ratio = t5-web ÷ the other:');
p();
const has24 = rows.some((x) => x.runtime === 'wasm24');
p('| dtype | t5-web native | transformers.js | ratio (best) | t5-web WASM | onnxruntime-web | ratio (best) |' + (has24 ? ` t5-web WASM, ${n24} | onnxruntime-web, ${n24} | ratio (best) |` : '') + ' bound tok/s (t5-web / ONNX) |');
p('|---|---|---|---|---|---|---|' + (has24 ? '---|---|---|' : '') + '---|');
const mb = (a) => (a ? `${f(a.tps)} (${f(a.hi)})` : '–');
const rb = (a, b) => (a && b ? `${ratio(a, b)} (${f(a.hi / b.hi, 2)}×)` : '–');
for (const d of DTYPES) {
  const [n, t, w, o, w24, o24] = ORDER.map((rt) => agg[`${rt}:${d}`]);
  p(`| ${d} | ${mb(n)} | ${mb(t)} | ${rb(n, t)} | ${mb(w)} | ${mb(o)} | ${rb(w, o)} |` + (has24 ? ` ${mb(w24)} | ${mb(o24)} | ${rb(w24, o24)} |` : '') + ` ${f(n?.bound, 0)} / ${f(t?.bound ?? o?.bound, 0)} |`);
}
p();
if (ids.length) {
  p(`Greedy ids on the untied check model (separate random lm_head; the tied random model emits token 0 forever), ${NEW} forced new tokens, against transformers (PyTorch) fp32:`);
  p();
  p('| system | ' + DTYPES.join(' | ') + ' |');
  p('|---|' + DTYPES.map(() => '---').join('|') + '|');
  for (const rt of ORDER) {
    const cell = (d) => {
      const x = ids.find((y) => y.runtime === rt && y.dtype === d);
      if (!x) return '';
      let k = 0;
      while (k < reference.length && x.ids[k] === reference[k]) k++;
      return k === reference.length && x.ids.length === reference.length ? 'all 64 match' : `first ${Math.max(0, k - 1)} of 64 match`;
    };
    p(`| ${NAMES[rt]} | ${DTYPES.map(cell).join(' | ')} |`);
  }
  const same = (r1, r2, d) => {
    const x = ids.find((y) => y.runtime === r1 && y.dtype === d), y = ids.find((z) => z.runtime === r2 && z.dtype === d);
    return x && y ? (JSON.stringify(x.ids) === JSON.stringify(y.ids) ? 'identical' : 'differ') : '–';
  };
  p();
  p(`Same engine, two runtimes: t5-web native vs WASM ids ${DTYPES.map((d) => `${d} ${same('native', 'wasm', d)}${has24 ? ` (relaxed ${same('native', 'wasm24', d)})` : ''}`).join(', ')}; ` +
    `transformers.js vs onnxruntime-web ids ${['fp32', 'q8', 'q4'].map((d) => `${d} ${same('tjs', 'ortweb', d)}`).join(', ')}.`);
  const qf = path.join(C, 'reference_ids_quant.json');
  if (fs.existsSync(qf)) {
    const qref = JSON.parse(fs.readFileSync(qf, 'utf8'));
    const eq = (rt, d) => { const x = ids.find((y) => y.runtime === rt && y.dtype === d); return x ? (JSON.stringify(x.ids) === JSON.stringify(qref[d]) ? 'all 64 equal' : 'DIFFER') : '–'; };
    p(`t5-web's quantized ids against transformers run on the same checkpoint rounded by t5-web's schemes in Python (bench/quant_ids.py, scripts/make_quant_fixtures.py): ` +
      ['bf16', 'q8', 'q4'].map((d) => `${d} native ${eq('native', d)}, WASM ${eq('wasm', d)}${has24 ? `, WASM relaxed ${eq('wasm24', d)}` : ''}`).join('; ') + '.');
  }
  p(`(t5-web q8 is symmetric per output channel and q4 torchao-style groups of 128 with zero points; transformers.js q8 is per-tensor and q4 MatMulNBits blocks of 32, symmetric: different roundings of the same weights, so quantized ids part ways at different points on a random model whose top logits are close.)`);
  p();
  p(`reference ids[:16]: ${reference.slice(0, 16).join(', ')} …`);
}
// ---- threads, prefill and the summarization shape: every system at every thread count of the run ------------
const TH = [...new Set(allRows.map((x) => x.threads_req ?? 1))].sort((a, b) => a - b);
const SYS = [...ORDER, 'torch'];
const TNAMES = { ...NAMES, torch: `PyTorch eager (${allRows.find((x) => x.runtime === 'torch')?.system ?? 'transformers'})` };
const med = (rs, k) => { const v = rs.flatMap((x) => x[`${k}_all`] ?? (x[k] === undefined ? [] : [x[k]])); return v.length ? median(v) : undefined; };
const prefill = {};
for (const rt of SYS) for (const d of DTYPES) for (const th of TH) {
  const rs = allRows.filter((x) => x.runtime === rt && x.dtype === d && (x.threads_req ?? 1) === th);
  if (!rs.length) continue;
  const e32 = med(rs, 'encoder_32_ms'), g = med(rs, 'generate_64_ms');
  const e8ms = med(rs, 'encoder_8x128_ms');
  prefill[`${rt}:${d}:${th}`] = { tps: NEW / ((g - e32) / 1e3), e8: e8ms ? 1024 / (e8ms / 1e3) : med(rs, 'encoder_8x128_tok_s'), e512: med(rs, 'encoder_1x512_ms'),
    summ: med(rs, 'summarize_ms'), got: rs[0].threads, n: rs.length, flavour: flavourOf(rs), load: median(rs.map((x) => x.loadavg ? +x.loadavg.split(' ')[0] : NaN)) };
}
if (TH.length > 1 || allRows.some((x) => x.summarize_ms !== undefined)) {
  p();
  p(`### Threads, encoder and the summarization shape (threads: ${TH.join(', ')})`);
  p();
  p(`Same run. encoder 8×128 = 8 rows of 128 tokens (tok/s); encoder 1×512 = one 512-token input (ms); summarize = that 512-token input, greedy, exactly ${NEW} forced new tokens, total ms (encoder included); decode as above (32-token input). Threads: t5-web \`num_threads\` / \`--threads\`, transformers.js and onnxruntime-node \`intraOpNumThreads\`, onnxruntime-web \`numThreads\`, PyTorch \`set_num_threads\` (interop 1). "load" = the 1-minute load average when the process ended (other jobs share this machine). ×: t5-web ÷ its counterpart at the same precision and threads (native ÷ transformers.js, WASM ÷ onnxruntime-web; encoder as speed, so > 1 is faster).`);
  p();
  p('| dtype | system | threads | encoder 8×128 tok/s | encoder 1×512 ms | summarize 512→64 ms | decode tok/s | × counterpart (enc 8×128 / summarize / decode) | load |');
  p('|---|---|---|---|---|---|---|---|---|');
  for (const d of DTYPES) for (const rt of SYS) for (const th of TH) {
    const a = prefill[`${rt}:${d}:${th}`];
    if (!a) continue;
    const o = ours(rt) ? prefill[`${PAIR[rt]}:${d}:${th}`] : null;
    const x = o ? `${f(a.e8 / o.e8, 2)} / ${f(o.summ / a.summ, 2)} / ${f(a.tps / o.tps, 2)}` : '';
    p(`| ${d} | ${nameOf(TNAMES, rt, a)} | ${th}${a.got && a.got !== th ? ` (ran ${a.got})` : ''} | ${f(a.e8, 0)} | ${f(a.e512, 1)} | ${f(a.summ, 0)} | ${f(a.tps, 1)} | ${x} | ${f(a.load, 1)} |`);
  }
  const tmax = TH[TH.length - 1];
  if (TH.length > 1) {
    p();
    p(`All cores ÷ 1 thread (encoder 8×128 speed / summarize speed / decode): ` + SYS.flatMap((rt) => DTYPES.map((d) => {
      const a = prefill[`${rt}:${d}:1`], b = prefill[`${rt}:${d}:${tmax}`];
      return a && b ? `${rt} ${d} ${f(b.e8 / a.e8, 2)} / ${f(a.summ / b.summ, 2)} / ${f(b.tps / a.tps, 2)}` : null;
    })).filter(Boolean).join('; ') + '.');
  }
}
console.log(out.join('\n'));
