#!/usr/bin/env bash
# The seed's size (issue 16 item 4): a random checkpoint of google/t5-v1_1-xl's shape (bench/configs/t5-v1_1-xl.json,
# 2.85 B parameters) in bf16 shards, loaded by streaming as q4 and q8 natively (t5-bench run --stream --light) and in
# Node (bench/xl-wasm.mjs: the package's loader) and in headless Chromium (bench/xl-chromium.mjs: by URL from a
# 127.0.0.1 page, cross-origin isolated for threads), beside PyTorch eager bf16 (bench/xl_torch.py), at 1 and all threads.
# One JSON line per configuration in $OUT/rows.jsonl; /usr/bin/time -v beside each. Reported, never asserted.
#   XL_DIR=/path/outside/the/repo bash bench/xl.sh        # about 25 min on the 2-core dev machine; ~6 GB of disk
# Env: XL_DIR (checkpoint, default /tmp/t5-xl-bf16), OUT (default bench/.cache/xl), THREADS ("1 <nproc>"),
# SYSTEMS ("native wasm chromium torch"), DTYPES ("q4 q8"), RUNS (2), PY (/tmp/pyenv/bin/python), WARM (1: read the
# files once before each configuration). XL_DIR may also hold a pre-quantized model.safetensors (t5-bench quantize).
set -euo pipefail
cd "$(dirname "$0")/.."
XL_DIR=${XL_DIR:-/tmp/t5-xl-bf16}
OUT=${OUT:-bench/.cache/xl}
THREADS=${THREADS:-"1 $(nproc)"}
SYSTEMS=${SYSTEMS:-"native wasm chromium torch"}
DTYPES=${DTYPES:-"q4 q8"}
RUNS=${RUNS:-2}
PY=${PY:-/tmp/pyenv/bin/python}
T5B=${CARGO_TARGET_DIR:-./target}/release/t5-bench
mkdir -p "$OUT"
[ -x "$T5B" ] || { echo "build t5-bench first: cargo build --release -p t5-bench (CARGO_TARGET_DIR honoured)" >&2; exit 1; }
if [ ! -f "$XL_DIR/model.safetensors.index.json" ] && [ ! -f "$XL_DIR/model.safetensors" ]; then
  /usr/bin/time -v "$T5B" make-random bench/configs/t5-v1_1-xl.json "$XL_DIR" --dtype bf16 --shard-mb 2000 2> "$OUT/make-random.time"
  grep -E "wrote|Elapsed|User time" "$OUT/make-random.time" >&2
fi
for th in $THREADS; do
  for sys in $SYSTEMS; do
    dts=$DTYPES; [ "$sys" = torch ] && dts=bf16
    for d in $dts; do
      # the files into the page cache first (WARM=0: not), so that load times do not depend on the disk:
      # on the AMD dev host a cold 5.7 GB read took 11 s of an 18.8 s load, and the kernel reclaims cold
      # page cache (DAMON), so a file read minutes ago may be on disk again
      [ "${WARM:-1}" = 0 ] || cat "$XL_DIR"/*.safetensors > /dev/null
      echo "[xl $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)] $sys $d threads $th" >&2
      case $sys in
        native) cmd=("$T5B" run "$XL_DIR" --light --stream --dtype "$d" --threads "$th" --runs "$RUNS") ;;
        wasm) cmd=(node --expose-gc bench/xl-wasm.mjs "$XL_DIR" "$d" "$th" "$RUNS") ;;
        chromium) cmd=(node bench/xl-chromium.mjs "$XL_DIR" "$d" "$th" "$RUNS") ;;
        torch) cmd=(env OMP_WAIT_POLICY=PASSIVE "$PY" bench/xl_torch.py "$XL_DIR" "$d" "$th" "$RUNS") ;;
      esac
      /usr/bin/time -v "${cmd[@]}" > "$OUT/$sys-$d-$th.json" 2> "$OUT/$sys-$d-$th.time" || { echo "failed: $sys $d $th" >&2; tail -5 "$OUT/$sys-$d-$th.time" >&2; continue; }
      tail -1 "$OUT/$sys-$d-$th.json" | node -e 'const x=JSON.parse(require("fs").readFileSync(0,"utf8")); x.system=process.argv[1]; x.threads_req=+process.argv[2]; x.max_rss_time_mb=+process.argv[3]/1e3; x.loadavg=require("fs").readFileSync("/proc/loadavg","utf8").split(" ").slice(0,3).join(" "); console.log(JSON.stringify(x))' "$sys" "$th" "$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$OUT/$sys-$d-$th.time")" | tee -a "$OUT/rows.jsonl"
    done
  done
done
