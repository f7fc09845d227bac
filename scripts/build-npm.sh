#!/usr/bin/env bash
# The npm package's files in dist/npm/ (after build:wasm and build:ts):
#   rollup (rollup.config.mjs): ESM bundles per runtime + index.d.ts;
#   wasm-opt (binaryen npm package) -O3: pkg/t5_web_bg.wasm → dist/npm/t5_web_bg.wasm, skipped when
#   the output is newer than the input (wasm-opt takes ~50 s on 2 cores).
# Prints the wasm size raw and gzip -9 before and after wasm-opt.
set -euo pipefail
cd "$(dirname "$0")/.."

# stale bundles (other chunk hashes) must not reach the tarball; the optimised wasm is kept (cached)
mkdir -p dist/npm
find dist/npm -maxdepth 1 \( -name '*.js' -o -name '*.d.ts' \) -delete
npx rollup -c rollup.config.mjs --silent

in=pkg/t5_web_bg.wasm
out=dist/npm/t5_web_bg.wasm
if [[ ! -f "$out" || "$in" -nt "$out" || scripts/build-npm.sh -nt "$out" ]]; then
  start=$(date +%s)
  # the features the Rust build enables (simd128 by .cargo/config.toml; the rest by rustc's defaults)
  node_modules/.bin/wasm-opt "$in" -O3 --strip-debug --strip-producers \
    --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    -o "$out.tmp"
  mv "$out.tmp" "$out"
  echo "build-npm: wasm-opt -O3 in $(( $(date +%s) - start ))s"
fi
size() { printf '%s: %d bytes raw, %d bytes gzip -9\n' "$1" "$(wc -c <"$1")" "$(gzip -9 -c "$1" | wc -c)"; }
size "$in"
size "$out"
