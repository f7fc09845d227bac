#!/usr/bin/env bash
# The long, coverage-guided fuzzing run of one t5-fuzz target under libFuzzer (docs/fuzzing.md).
#   scripts/fuzz-campaign.sh <target> [runs (default 10000000)] [max seconds (default: none)] [max_len]
# With max_len, libFuzzer's inputs are capped at that many bytes and seeds over 2 × max_len are left out
# (spiece / tokenizer_json: `4096`, so the small tiny-rules seeds, not the 237 KB charsmap ones, are mutated).
# Needs the nightly toolchain and cargo-fuzz (`cargo +nightly install cargo-fuzz`). Builds the
# libFuzzer binaries (fuzz/, no sanitizer: safe Rust, panics and overflows are what is looked for;
# debug assertions and overflow checks on) and the seed exporter, seeds fuzz/corpus/<target>/ from
# the committed corpus, then runs on one core under `nice`. Crashes land in fuzz/artifacts/<target>/;
# the log in fuzz/logs/<target>.log ends with libFuzzer's final figures.
set -euo pipefail
t=${1:?target}
runs=${2:-10000000}
secs=${3:-0}
maxlen=${4:-}
root=$(cd "$(dirname "$0")/.." && pwd)
tgt=${CARGO_TARGET_DIR:-$root/target}
cd "$root"
nice -n 10 cargo test -p t5-fuzz --no-run -q
(cd fuzz && CARGO_TARGET_DIR=$tgt nice -n 10 cargo +nightly fuzz build -s none "$t")
seeds=$root/fuzz/seeds/$t
rm -rf "$seeds"
"$tgt/debug/fuzz" seeds "$t" "$seeds"
extra=()
if [ -n "$maxlen" ]; then
  find "$seeds" -type f -size +$((2 * maxlen))c -delete
  extra=(-max_len="$maxlen")
fi
mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" fuzz/logs
nice -n 10 "$tgt/x86_64-unknown-linux-gnu/release/$t" "fuzz/corpus/$t" "$seeds" \
  -runs="$runs" -max_total_time="$secs" -rss_limit_mb=4096 -malloc_limit_mb=2048 -timeout=10 \
  -print_final_stats=1 "${extra[@]}" -artifact_prefix="fuzz/artifacts/$t/" 2>&1 | tee "fuzz/logs/$t.log" | grep -E "^#[0-9]+ +(INITED|DONE|pulse)|stat::|ERROR|panicked" || true
