#!/usr/bin/env bash
# The CPU kernels' unit tests (t5-core's gemm, qkernels, parallel, attention, softmax and quantization tests) compiled to WebAssembly and
# run in Node's WASI, so the SIMD128 paths (and, with RELAXED=1, the relaxed-SIMD ones) are checked
# directly, as the native ones are by `cargo test`. Tests that need unwinding (a panicking pool task)
# cannot run in wasm (panic = abort) and are filtered out.
# Needs: rustup target add wasm32-wasip1 (scripts/setup.sh adds it).   Usage: scripts/test-wasm-kernels.sh   (RELAXED=1 for
# +relaxed-simd); `npm test` runs both (`npm run test:wasm-kernels`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
features="+simd128" suffix=""
if [[ "${RELAXED:-0}" == 1 ]]; then features+=",+relaxed-simd" suffix="-relaxed"; fi
target_dir="${CARGO_TARGET_DIR:-$root/target}/wasi$suffix"
bin=$(RUSTFLAGS="-C target-feature=$features" cargo test -p t5-core --lib --target wasm32-wasip1 --target-dir "$target_dir" \
  --no-run --message-format=json 2>/dev/null | node -e '
    let last = ""; for (const l of require("fs").readFileSync(0, "utf8").split("\n")) {
      try { const m = JSON.parse(l); if (m.executable && m.target && m.target.kind.includes("lib")) last = m.executable; } catch {}
    } console.log(last);')
[[ -n "$bin" ]] || { echo "test-wasm-kernels: build failed (cargo test -p t5-core --lib --target wasm32-wasip1)" >&2; exit 1; }
# relaxed SIMD: on Node 24 where scripts/setup.sh installed it (Node 20 validates relaxed SIMD only behind a flag, and
# its i32x4.relaxed_dot_i8x16_i7x16_add_s differs: the q4 digit kernel is not used there), see scripts/relaxed-node.sh
runner=(node)
if [[ "${RELAXED:-0}" == 1 ]]; then read -r -a runner <<< "$(bash scripts/relaxed-node.sh)"; echo "test-wasm-kernels: relaxed SIMD on ${runner[*]}"; fi
for filter in backend::cpu::gemm backend::cpu::qkernels backend::cpu::parallel backend::cpu::attention backend::cpu::softmax dtype::quant; do
  "${runner[@]}" --no-warnings scripts/wasi-run.mjs "$bin" "$filter"
done
