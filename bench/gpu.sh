#!/usr/bin/env bash
# GPU vs CPU: encoder and greedy-decode speed on a t5-small-shaped model (real t5-small config,
# random weights), through the facade in Node: wasm on the CPU vs wasm driving WebGPU (Dawn, the
# `webgpu` npm package), with dispatches per decode step. Reported, not asserted.
#
#   bash bench/gpu.sh            # this machine: no GPU, so WebGPU runs on SwiftShader
#   bash bench/gpu-real.sh       # a machine with a real GPU (Vulkan driver), same measurements
#
# NOTE: without a GPU, "webgpu" here is SwiftShader — Vulkan emulated on the CPU. Those figures
# show the WebGPU path works and what its dispatch overhead costs; they are NOT GPU figures.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${T5_BENCH_CONFIG:-../shared/models/t5-small/config.json}
model=bench/.cache/t5-small-random
runs=${RUNS:-3}
if [ ! -f "$model/model.safetensors" ]; then
  cargo build --release -q -p t5-bench
  ./target/release/t5-bench make-random "$config" "$model"
fi
[ -f dist/webgpu.js ] && [ -f pkg/t5_web_bg.wasm ] || npm run build >/dev/null
if [ -z "${T5_REAL_GPU:-}" ] && [ -z "${VK_ICD_FILENAMES:-}" ] && [ -f /usr/lib/chromium/vk_swiftshader_icd.json ]; then
  export VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json
fi
out=$(node bench/gpu-bench.mjs "$model" "$runs")
node - "$out" <<'JS'
const { cpu: c, gpu: g } = JSON.parse(process.argv[2]);
const f = (x, d = 1) => (x === undefined ? "-" : x.toFixed(d));
const rows = [
  ["load (s)", c.load_s, g.load_s, 2],
  ["encoder, 32 tokens (ms)", c.encoder_32_ms, g.encoder_32_ms, 1],
  ["encoder, 8×128 tokens (tok/s)", c.encoder_8x128_tok_s, g.encoder_8x128_tok_s, 0],
  ["generate 32 tokens (ms)", c.generate_32_ms, g.generate_32_ms, 0],
  ["greedy decode (tok/s)", c.decode_tok_s, g.decode_tok_s, 1],
];
console.log(`t5-small shape, random weights, fp32, batch 1; median of ${process.env.RUNS ?? 3}. WebGPU adapter: ${g.adapter}\n`);
console.log("| measure | wasm CPU | wasm WebGPU | WebGPU / CPU |\n|---|---|---|---|");
for (const [name, a, b, d] of rows) console.log(`| ${name} | ${f(a, d)} | ${f(b, d)} | ${f(b / a, 2)} |`);
const s = g.stats ?? {};
console.log(`\nWebGPU decode step: ${s.dispatches_per_step} dispatches (before fusion: ${s.dispatches_per_step + s.fused_per_step}; ${s.fused_per_step} element-wise ops folded into matmul epilogues), ${s.submits_per_step} command buffer(s), one id per row read back; prefill ${s.prefill_dispatches} dispatches.`);
console.log(`Bind groups: ${s.bind_groups_created} created by the measured generation (cached by kernel and buffers; ${s.bind_groups_per_step} in its steadiest step).`);
if (/swiftshader|llvmpipe|lavapipe/i.test(g.adapter)) console.log("NOTE: the adapter is a software Vulkan driver (CPU emulation): these are not GPU figures.");
JS
