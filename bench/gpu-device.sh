#!/usr/bin/env bash
# The GPU benchmark on a lent GPU machine (the `device` tool; no registries there, so nothing is built
# on it): carries native binaries built here and runs them beside PyTorch on the same random checkpoints.
# Prepare here (x86-64):
#   cargo build --release -p t5-bench && cargo build --release -p t5-gpu --example bench
#   cargo test --release -p t5-gpu --test parity --no-run     # copy the printed binary to .devbin/parity
#   mkdir -p .devbin && cp target/release/examples/bench target/release/t5-bench .devbin/
#   .gl/: the Vulkan loader debs (see /work/.library/device/README.md)
# Then run with the device tool: carry [".gl", ".devbin"], command: bash bench/gpu-device.sh
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
unset VK_ICD_FILENAMES
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
nproc; lscpu | grep "Model name"
export T5_REAL_GPU=1
mkdir -p /tmp/m /work && ln -sfn "$PWD" /work/main   # the parity binary reads fixtures from /work/main
for s in t5-small t5-base t5-large; do .devbin/t5-bench make-random bench/configs/$s.json /tmp/m/$s; done
echo "== parity (GPU vs CPU on the fixtures)"
timeout 120 .devbin/parity --test-threads=1 --nocapture 2>&1 | grep -E "adapter|max \||test result|panicked|error" | head -40
echo "== t5-web native wgpu vs native CPU"
timeout 150 .devbin/bench /tmp/m/t5-small --runs 3 --tokens 64
timeout 120 .devbin/bench /tmp/m/t5-base --runs 3 --tokens 64 --no-cpu
timeout 150 .devbin/bench /tmp/m/t5-large --runs 3 --tokens 64 --no-cpu
echo "== PyTorch (transformers) fp32 on the same checkpoints"
for s in t5-small t5-base t5-large; do timeout 100 python3 bench/torch_gpu.py /tmp/m/$s --tokens 64 --runs 3 2>/dev/null; done
echo "== PyTorch CPU t5-small (16 threads)"
timeout 60 python3 bench/torch_gpu.py /tmp/m/t5-small --device cpu --tokens 64 --runs 2 2>/dev/null
