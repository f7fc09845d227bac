#!/usr/bin/env bash
# Encoder and greedy-decode speed on a t5-small-shaped model (real t5-small config, random
# weights: the real model's cost), native vs WASM (Node), one run, printed as a table.
# Reported, not asserted. Usage: bash bench/run.sh   (builds what it needs)
set -euo pipefail
cd "$(dirname "$0")/.."
config=${T5_BENCH_CONFIG:-../shared/models/t5-small/config.json}
model=bench/.cache/t5-small-random
cargo build --release -q -p t5-bench
if [ ! -f "$model/model.safetensors" ]; then
  ./target/release/t5-bench make-random "$config" "$model"
fi
[ -f dist/index.js ] && [ -f pkg/t5_web_bg.wasm ] || npm run build >/dev/null
native=$(./target/release/t5-bench run "$model" --json)
wasm=$(node bench/bench-wasm.mjs "$model")
node - "$native" "$wasm" <<'JS'
const [n, w] = process.argv.slice(2).map((s) => JSON.parse(s));
const f = (x, d = 1) => x.toFixed(d);
const rows = [
  ["load (s)", n.load_s, w.load_s, 2],
  ["encoder, 32 tokens (ms)", n.encoder_32_ms, w.encoder_32_ms, 1],
  ["encoder, 8×128 tokens (tok/s)", n.encoder_8x128_tok_s, w.encoder_8x128_tok_s, 0],
  ["generate 64 tokens (ms)", n.generate_64_ms, w.generate_64_ms, 0],
  ["greedy decode (tok/s)", n.decode_tok_s, w.decode_tok_s, 1],
];
console.log("t5-small shape, random weights, fp32, batch 1, 1 thread; median of 5\n");
console.log("| measure | native | wasm (Node) | wasm / native |\n|---|---|---|---|");
for (const [name, a, b, d] of rows) console.log(`| ${name} | ${f(a, d)} | ${f(b, d)} | ${f(b / a, 2)} |`);
console.log("\nAnchors on this machine (../shared/anchors): transformers.js fp32 decodes 102.5 tok/s, onnxruntime-web WASM fp32 109.2, PyTorch eager 50.5.");
JS
