#!/usr/bin/env bash
# The real-GPU figures of issue 17 in ONE run on a lent GPU machine (the `device` tool: no registries, no
# network, so nothing is built there): carries native binaries built here and runs them beside PyTorch on
# the same random checkpoints, then writes bench/gpu-results.md's new section (date, GPU, driver).
# Prepare here (x86-64), then run with the device tool: carry [".gl", ".devbin"], command:
#   bash bench/gpu-device.sh [PARTS]   PARTS (default all): tests t5-small t5-base t5-large t5-v1_1-xl
#   (all: about 10-12 minutes on an H100, over one command's 600 s: run it as two commands,
#    `bash bench/gpu-device.sh tests t5-small t5-base t5-large` (timeout_s 580), then `... t5-v1_1-xl` (timeout_s 400))
#   export CARGO_TARGET_DIR=...; cargo build --release -p t5-bench -p t5-gpu --examples
#   cargo test --release -p t5-gpu --test parity --test fp16 --test quant --no-run   # copy the printed binaries to .devbin/{parity,fp16,quant}
#   mkdir -p .devbin && cp $CARGO_TARGET_DIR/release/examples/bench_dtypes $CARGO_TARGET_DIR/release/t5-bench .devbin/
#   .gl/: the Vulkan loader debs (see /work/.library/device/README.md)
# Steps: 1. parity / fp16 / quant tests on the GPU (GPU vs CPU vs transformers oracles);
# 2. t5-small / t5-base / t5-large (random weights, real configs): encoder 8x128 tok/s, greedy decode tok/s at
# batch 1 and 8, for fp32, fp16 (packed and shader-f16 paths), q8, q4 (bench_dtypes --md);
# 3. PyTorch on the same GPU: fp32 eager, bf16 eager, bf16 with cache_implementation="static" (torch_gpu.py --md).
# 4. t5-v1_1-xl's shape (2.85 B parameters; 11.4 GB in f32) in q4, the seed's example: make-random writes it
# streamed (one tensor in memory), bench_dtypes --stream reads it in 64 MiB pieces through ShardStream, each linear
# weight quantized to q4 as it arrives; beside PyTorch bf16 eager and bf16 static (fp32 eager left out for time).
# Dry run of the parts that need no GPU (here): T5_DEVICE_DRY=1 bash bench/gpu-device.sh t5-v1_1-xl
set -u
parts=" ${*:-tests t5-small t5-base t5-large t5-v1_1-xl} "
want() { [[ "$parts" == *" $1 "* ]]; }
if [ -n "${T5_DEVICE_DRY:-}" ]; then
  # make-random streamed, then the streamed q4 load and one greedy run on whatever adapter is here (lavapipe)
  set -e
  d=/tmp/t5-device-dry && rm -rf "$d" && mkdir -p "$d"
  cfg=bench/configs/t5-v1_1-xl.json
  # the xl config cut to 2 + 2 layers, d_model 512: the same code paths (gated-gelu, untied head), minutes less here
  python3 -c "import json,sys; c=json.load(open('$cfg')); c.update(num_layers=2, num_decoder_layers=2, d_model=512, d_ff=1024, num_heads=8); json.dump(c, open('$d/config.json','w'))"
  /usr/bin/time -v .devbin/t5-bench make-random "$d/config.json" "$d/m" 2>&1 | grep -E "wrote|Maximum resident|Elapsed"
  ls -l "$d/m"
  timeout 580 .devbin/bench_dtypes "$d/m" 1 --only q4 --stream --md "t5-v1_1-xl cut down (dry run)"
  exit 0
fi
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
unset VK_ICD_FILENAMES
export T5_REAL_GPU=1
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
echo "GPU: $gpu"
mkdir -p /tmp/m /work && ln -sfn "$PWD" /work/main   # the test binaries read fixtures from /work/main
out=/tmp/gpu-results.md
{
  echo
  echo "## $(date -u '+%Y-%m-%d %H:%M UTC') — $gpu (bench/gpu-device.sh)"
  echo
} >"$out"
want tests && echo "== 1. parity / fp16 / quant tests on the GPU"
want tests && for t in parity fp16 quant; do
  r=$(timeout 150 .devbin/$t --test-threads=1 2>&1 | grep -E "^test result|panicked|FAILED" | head -5)
  echo "$t: $r"
  echo "- tests/$t.rs: $(echo "$r" | tr '\n' ' ')" >>"$out"
done
{
  echo
  echo "Random weights with the real configs; greedy decode: 32 new tokens after 32 input tokens (tok/s over steps"
  echo "2..32; batch 8: 8 rows), encoder: 8 rows x 128 tokens. Median of 3. PyTorch rows: transformers on the same GPU."
  echo
  echo "| model | backend | encoder 8×128 (tok/s) | decode b1 (tok/s) | decode b8 (tok/s) | weights (MiB) |"
  echo "|---|---|---|---|---|---|"
} >>"$out"
for s in t5-small t5-base t5-large; do
  want $s || continue
  echo "== 2./3. $s"
  timeout 90 .devbin/t5-bench make-random bench/configs/$s.json /tmp/m/$s >/dev/null 2>&1 || { echo "| $s | make-random failed | | | | |" >>"$out"; continue; }
  timeout 200 .devbin/bench_dtypes /tmp/m/$s 3 --no-cpu --md $s 2>/dev/null | tee -a "$out"
  for mode in "fp32" "bf16" "bf16 --static"; do
    label="$s | PyTorch $mode"
    # shellcheck disable=SC2086
    timeout 120 python3 bench/torch_gpu.py /tmp/m/$s --runs 3 --tokens 32 --dtype $mode --md "${label/--static/static cache}" 2>/dev/null | sed 's/ |$/ | - |/' | tee -a "$out"
  done
  rm -rf /tmp/m/$s
done
if want t5-v1_1-xl; then
  s=t5-v1_1-xl
  echo "== 4. $s, q4 streamed"
  if timeout 200 .devbin/t5-bench make-random bench/configs/$s.json /tmp/m/$s >/dev/null 2>&1; then
    timeout 240 .devbin/bench_dtypes /tmp/m/$s 3 --no-cpu --only q4 --stream --md "$s" 2>/dev/null | tee -a "$out"
    for mode in "bf16" "bf16 --static"; do
      label="$s | PyTorch $mode"
      # shellcheck disable=SC2086
      timeout 150 python3 bench/torch_gpu.py /tmp/m/$s --runs 3 --tokens 32 --dtype $mode --md "${label/--static/static cache}" 2>/dev/null | sed 's/ |$/ | - |/' | tee -a "$out"
    done
  else
    echo "| $s | make-random failed | | | | |" >>"$out"
  fi
  rm -rf /tmp/m/$s
fi
cat "$out" >>bench/gpu-results.md
[ -n "${OUT:-}" ] && cp "$out" "$OUT/gpu-results-section.md"   # what the device tool brings back
echo "== appended to bench/gpu-results.md:"
cat "$out"
