#!/usr/bin/env bash
# The GPU benchmark on a lent GPU machine (the `device` tool; no registries there, so nothing is built
# on it): carries native binaries built here and runs them beside PyTorch on the same random checkpoints.
# Prepare here (x86-64):
#   cargo build --release -p t5-bench -p t5-gpu --examples
#   cargo test --release -p t5-gpu --test parity --test fp16 --no-run   # copy the printed binaries to .devbin/{parity,fp16}
#   mkdir -p .devbin && cp target/release/examples/{bench,bench_dtypes} target/release/t5-bench .devbin/
#   .gl/: the Vulkan loader debs (see /work/.library/device/README.md)
# Then run with the device tool: carry [".gl", ".devbin"], command: bash bench/gpu-device.sh
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
unset VK_ICD_FILENAMES
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export T5_REAL_GPU=1
mkdir -p /tmp/m /work && ln -sfn "$PWD" /work/main   # the test binaries read fixtures from /work/main
for s in t5-small t5-base t5-large; do .devbin/t5-bench make-random bench/configs/$s.json /tmp/m/$s >/dev/null 2>&1; done
echo "== parity and fp16 tests (GPU vs CPU / transformers fp16 oracle on the fixtures)"
timeout 120 .devbin/parity --test-threads=1 --nocapture 2>&1 | grep -E "test result|panicked|FAILED|max \|gpu - cpu\| = [0-9.e-]+$" | sort | uniq -c | sort -rn | head -12
timeout 120 .devbin/fp16 --test-threads=1 --nocapture 2>&1 | grep -E "test |test result|panicked|max" | head -20
echo "== t5-web native wgpu: fp32 / fp16 / CPU (t5-small)"
timeout 120 .devbin/bench_dtypes /tmp/m/t5-small 5
echo "== batch sizes, per-op timing, encoder breakdown"
timeout 150 .devbin/bench /tmp/m/t5-small --runs 3 --tokens 64 --ops --no-cpu
timeout 120 .devbin/bench /tmp/m/t5-base --runs 3 --tokens 64 --no-cpu
timeout 150 .devbin/bench /tmp/m/t5-large --runs 3 --tokens 64 --no-cpu
echo "== PyTorch (transformers) fp32, t5-small"
timeout 100 python3 bench/torch_gpu.py /tmp/m/t5-small --tokens 64 --runs 3 2>/dev/null
