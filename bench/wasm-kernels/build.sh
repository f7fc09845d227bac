#!/usr/bin/env bash
# Build the wasm matvec micro-benchmark (a cdylib over t5-core's `qkernels::linear`, no bindings) twice:
#   bench/wasm-kernels/simd128.wasm (baseline SIMD128) and bench/wasm-kernels/relaxed.wasm (+relaxed-simd),
# into the repository's target dirs (same flags as scripts/build-wasm.sh, so the dependencies are shared).
# Then: node --no-liftoff bench/wasm-kernels/bench.mjs bench/wasm-kernels/simd128.wasm[,other.wasm...] [reps]
# (several files: timed interleaved; DT=3,4,5 picks q8 / q4 / q4 groups of 32, SH=2048x512,... the shapes,
# SH=step: the matrices of one t5-small decode step, streamed from memory as in a real decode).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$here"
cp "$root/Cargo.lock" Cargo.lock
target="${CARGO_TARGET_DIR:-$root/target}"
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128" CARGO_TARGET_DIR="$target" \
  cargo build --release --target wasm32-unknown-unknown
cp "$target/wasm32-unknown-unknown/release/t5_wasm_kernels.wasm" simd128.wasm
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" CARGO_TARGET_DIR="$target/relaxed-simd" \
  cargo build --release --target wasm32-unknown-unknown
cp "$target/relaxed-simd/wasm32-unknown-unknown/release/t5_wasm_kernels.wasm" relaxed.wasm
echo "built $here/simd128.wasm and $here/relaxed.wasm"
