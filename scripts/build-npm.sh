#!/usr/bin/env bash
# The npm package's files in dist/npm/ (after build:wasm and build:ts):
#   rollup (rollup.config.mjs): ESM bundles per runtime + index.d.ts;
#   wasm-opt (binaryen npm package) -O3: pkg/t5_web{,_relaxed,_threads,_threads_relaxed}_bg.wasm → dist/npm/, each skipped when
#   the output is newer than the input (wasm-opt takes ~50 s on 2 cores).
# Prints the wasm size raw and gzip -9 before and after wasm-opt.
set -euo pipefail
cd "$(dirname "$0")/.."

# stale bundles (other chunk hashes) must not reach the tarball; the optimised wasm is kept (cached)
mkdir -p dist/npm
find dist/npm -maxdepth 1 \( -name '*.js' -o -name '*.d.ts' \) -delete
npx rollup -c rollup.config.mjs --silent

# wasm-opt each build with the features it was compiled with (simd128 by .cargo/config.toml, relaxed
# SIMD in the second build; the rest by rustc's defaults)
opt() {
  local in=$1 out=$2; shift 2
  if [[ ! -f "$out" || "$in" -nt "$out" || scripts/build-npm.sh -nt "$out" ]]; then
    local start=$(date +%s)
    node_modules/.bin/wasm-opt "$in" -O3 --strip-debug --strip-producers \
      --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-multivalue --enable-reference-types "$@" \
      -o "$out.tmp"
    mv "$out.tmp" "$out"
    echo "build-npm: wasm-opt -O3 $out in $(( $(date +%s) - start ))s"
  fi
}
opt pkg/t5_web_bg.wasm dist/npm/t5_web_bg.wasm
opt pkg/t5_web_relaxed_bg.wasm dist/npm/t5_web_relaxed_bg.wasm --enable-relaxed-simd
opt pkg/t5_web_threads_bg.wasm dist/npm/t5_web_threads_bg.wasm --enable-threads
opt pkg/t5_web_threads_relaxed_bg.wasm dist/npm/t5_web_threads_relaxed_bg.wasm --enable-threads --enable-relaxed-simd
size() { printf '%s: %d bytes raw, %d bytes gzip -9\n' "$1" "$(wc -c <"$1")" "$(gzip -9 -c "$1" | wc -c)"; }
for f in t5_web_bg.wasm t5_web_relaxed_bg.wasm t5_web_threads_bg.wasm t5_web_threads_relaxed_bg.wasm; do
  size "pkg/$f"
  size "dist/npm/$f"
done
