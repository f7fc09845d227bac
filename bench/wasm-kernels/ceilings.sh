#!/usr/bin/env bash
# The measured ceilings behind issue 16's WASM targets (docs/benchmarks.md, "Ceilings of the WASM kernels"):
# per core, the SIMD128 / relaxed-SIMD multiply-add and i16 dot rates and the packed f32 GEMM on a t5-small
# encoder's shapes (peak.mjs), and the q8 / q4 decode matvec on a matrix in cache against a whole decode step
# streamed from memory (bench.mjs: equal rates mean the kernel, not memory, sets the decode speed).
#   bash bench/wasm-kernels/ceilings.sh        (NODE24=<a Node 22+ binary> adds the relaxed-SIMD rows under it)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/build.sh" >/dev/null
run() {
  local node="$1" files="$2"
  echo "== $("$node" --version)"
  "$node" --no-liftoff "$here/peak.mjs" "$files" 7
  DT=3,4 SH=2048x512,512x2048 "$node" --no-liftoff "$here/bench.mjs" "$files" 7
  DT=3,4 SH=step "$node" --no-liftoff "$here/bench.mjs" "$files" 5
}
run node "$here/simd128.wasm"
if [[ -n "${NODE24:-}" ]]; then run "$NODE24" "$here/simd128.wasm,$here/relaxed.wasm"; fi
