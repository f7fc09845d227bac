#!/usr/bin/env bash
# bench/gpu.sh on a machine with a real GPU: Dawn (Node) and native wgpu use the system's Vulkan
# driver instead of SwiftShader. Also runs the GPU parity tests there first.
#   apt-get install -y libvulkan1   (plus the vendor's Vulkan driver, e.g. NVIDIA's)
#   bash scripts/setup.sh && npm run build && bash bench/gpu-real.sh
set -euo pipefail
cd "$(dirname "$0")/.."
unset VK_ICD_FILENAMES
export T5_REAL_GPU=1
command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" || true
cargo test --release -q -p t5-gpu --test parity -- --nocapture 2>&1 | grep -E "adapter|max \||test result" || true
bash bench/gpu.sh
