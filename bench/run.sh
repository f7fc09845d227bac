#!/usr/bin/env bash
# Speed and memory on a t5-small-shaped model (real t5-small config, random weights: the real model's
# cost), native vs WASM (Node), per weight dtype (fp32 / bf16 / q8 / q4 by default; T5_BENCH_DTYPES to
# choose), one run, printed as a table beside the anchors measured on this machine
# (../shared/anchors: transformers.js / onnxruntime-web were not rerun here). Reported, not asserted.
# Usage: bash bench/run.sh   (builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${T5_BENCH_CONFIG:-../shared/models/t5-small/config.json}
model=bench/.cache/t5-small-random
dtypes=${T5_BENCH_DTYPES:-fp32 bf16 q8 q4}
cargo build --release -q -p t5-bench
if [ ! -f "$model/model.safetensors" ]; then
  ./target/release/t5-bench make-random "$config" "$model"
fi
[ -f dist/index.js ] && [ -f pkg/t5_web_bg.wasm ] || npm run build >/dev/null
bw=$(./target/release/t5-bench bandwidth)
rows=()
for d in $dtypes; do
  rows+=("$(./target/release/t5-bench run "$model" --json --dtype "$d")")
  rows+=("$(node --expose-gc bench/bench-wasm.mjs "$model" "$d")")
done
# pre-quantized checkpoints (t5-bench quantize): loaded as stored, no fp32 copy ever read
for d in ${T5_BENCH_PREQUANTIZED-q4}; do
  pre=bench/.cache/t5-small-pre$d
  [ -f "$pre/model.safetensors" ] || ./target/release/t5-bench quantize "$model" "$d" "$pre"
  rows+=("$(./target/release/t5-bench run "$pre" --json)")
  rows+=("$(node --expose-gc bench/bench-wasm.mjs "$pre" "$d" prequantized)")
done
node - "$bw" "${rows[@]}" <<'JS'
const [bw, ...rows] = process.argv.slice(2);
const r = rows.map((s) => JSON.parse(s));
const label = (x) => (x.prequantized ? `${x.dtype} file` : x.dtype);
const native = Object.fromEntries(r.filter((x) => x.runtime === "native").map((x) => [label(x), x]));
// anchors (../shared/anchors/RESULTS.md, 1 thread, same machine type, same task): decode tok/s
const tjs = { fp32: 102.5, q8: 177.6, q4: 153.2 }; // transformers.js 4.3.1 on onnxruntime-node (native)
const ortweb = { fp32: 109.2, q8: 103.9, q4: 7.5 }; // onnxruntime-web WASM SIMD in Node (transformers.js in browsers)
const torch = { fp32: 50.5, bf16: 58.4 }; // PyTorch eager generate()
const f = (x, d = 1) => (x === undefined ? "–" : x.toFixed(d));
console.log(`t5-small shape, random weights, batch 1, 1 thread; 32-token input, 64 forced new tokens; median of 5`);
console.log(`single-core read bandwidth measured now (t5-bench bandwidth): ${f(+bw)} GB/s; bound = bandwidth ÷ weight bytes read per decode step;`);
console.log(`"bound @33.3" uses the anchors' quiet-machine single-core figure (torch.sum, 1 thread: 33.3 GB/s)\n`);
console.log("| dtype | runtime | RSS MB | weights MB | load s | encoder 32 tok ms | encoder 8×128 tok/s | decode tok/s | MB/step | bound tok/s | % of bound | bound @33.3 | anchor (same dtype) | ours ÷ anchor |");
console.log("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
for (const x of r) {
  const n = native[label(x)];
  const bound = (+bw * 1e9) / (n.step_mb * 1e6);
  const anchor = x.runtime === "wasm" ? ortweb[x.dtype] : tjs[x.dtype] ?? torch[x.dtype];
  const aname = x.runtime === "wasm" ? "ort-web" : tjs[x.dtype] ? "tjs" : "torch";
  console.log(`| ${label(x)} | ${x.runtime} | ${f(x.rss_mb, 0)} | ${f(n.weights_mb, 1)} | ${f(x.load_s, 2)} | ${f(x.encoder_32_ms, 1)} | ${f(x.encoder_8x128_tok_s, 0)} | ${f(x.decode_tok_s, 1)} | ${f(n.step_mb, 1)} | ${f(bound, 0)} | ${f((100 * x.decode_tok_s) / bound, 0)}% | ${f(33.3e9 / (n.step_mb * 1e6), 0)} | ${anchor ? `${aname} ${anchor}` : "–"} | ${anchor ? f(x.decode_tok_s / anchor, 2) + "×" : "–"} |`);
}
console.log("\nAnchors not rerun (no ONNX export in this run): transformers.js 4.3.1 (onnxruntime-node) fp32 102.5 / q8 177.6 / q4 153.2 tok/s;");
console.log("onnxruntime-web WASM fp32 109.2 / q8 103.9 / q4 7.5; PyTorch eager fp32 50.5, bf16 58.4 (../shared/anchors/RESULTS.md).");
console.log("Native rows compare with transformers.js (native ORT), wasm rows with onnxruntime-web. RSS: native after load (store freed,");
console.log("malloc_trim); wasm: Node process RSS after loading the seq2seq model (includes Node itself, ~50 MB; wasm memory keeps");
console.log("its high-water mark, so load-time quantization in wasm still pays for the fp32 file: ship a `q4 file` instead).");
console.log("`q4 file`: a checkpoint written by `t5-bench quantize` (packed nibbles + scales + zeros), loaded without the fp32 weights.");
JS
