#!/usr/bin/env bash
# Build the engine to WebAssembly, four times, and generate the JS glue:
#   baseline (SIMD128, .cargo/config.toml):      pkg/t5_web_bg.wasm
#   relaxed SIMD (+relaxed-simd: fused madd):     pkg/t5_web_relaxed_bg.wasm (own target dir, so neither
#                                                 build invalidates the other's cache)
#   wasm-bindgen --target web --out-dir pkg --out-name t5_web target/.../t5_wasm.wasm
#   threads (SIMD128 + shared memory and atomics): pkg/t5_web_threads_bg.wasm with its own glue
#                                                 pkg/t5_web_threads.js (own target dir; nightly
#                                                 -Zbuild-std: the std of the wasm32 target is not
#                                                 built with atomics)
#   threads + relaxed SIMD:                       pkg/t5_web_threads_relaxed_bg.wasm (own target dir; the
#                                                 threaded glue serves it: checked identical)
# The two single-thread builds come from the same sources, so their wasm-bindgen glue is identical
# (checked): one pkg/t5_web.js serves both; ts/src/wasm-locate*.ts picks the relaxed one where the
# runtime validates it. The threaded one imports a shared memory, which its own glue creates and
# which ts/src/wasm-threads.ts hands to the pool's workers.
# Skips all work when pkg/ is newer than every input (Rust sources, manifests, lockfile, cargo
# config, this script), so cached CI runs stay fast. FORCE=1 rebuilds anyway.
# Needs: rustup target wasm32-unknown-unknown, a nightly toolchain with rust-src (threaded build;
# rustup toolchain install nightly --component rust-src), and the wasm-bindgen CLI at the version pinned in
# crates/t5-wasm/Cargo.toml (cargo install wasm-bindgen-cli --version <pin>).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
wasm_in="$target_dir/wasm32-unknown-unknown/release/t5_wasm.wasm"
relaxed_target_dir="$target_dir/relaxed-simd"
relaxed_in="$relaxed_target_dir/wasm32-unknown-unknown/release/t5_wasm.wasm"
out_dir="$root/pkg"
threads_target_dir="$target_dir/threads"
threads_in="$threads_target_dir/wasm32-unknown-unknown/release/t5_wasm.wasm"
threads_relaxed_target_dir="$target_dir/threads-relaxed"
threads_relaxed_in="$threads_relaxed_target_dir/wasm32-unknown-unknown/release/t5_wasm.wasm"
outputs=("$out_dir/t5_web.js" "$out_dir/t5_web_bg.wasm" "$out_dir/t5_web.d.ts" "$out_dir/t5_web_relaxed_bg.wasm"
  "$out_dir/t5_web_threads.js" "$out_dir/t5_web_threads_bg.wasm" "$out_dir/t5_web_threads.d.ts"
  "$out_dir/t5_web_threads_relaxed_bg.wasm")

report() {
  local raw gz
  local f
  for f in t5_web_bg.wasm t5_web_relaxed_bg.wasm t5_web_threads_bg.wasm t5_web_threads_relaxed_bg.wasm; do
    raw=$(wc -c <"$out_dir/$f")
    gz=$(gzip -9 -c "$out_dir/$f" | wc -c)
    printf 'pkg/%s: %d bytes (%.2f MiB), gzip -9 %d bytes (%.2f MiB)\n' \
      "$f" "$raw" "$(echo "$raw / 1048576" | bc -l)" "$gz" "$(echo "$gz / 1048576" | bc -l)"
  done
}

# Oldest output vs. newest input.
up_to_date() {
  local f oldest=""
  for f in "${outputs[@]}"; do
    [[ -f "$f" ]] || return 1
    if [[ -z "$oldest" || "$f" -ot "$oldest" ]]; then oldest="$f"; fi
  done
  local newer
  newer=$(find crates Cargo.toml Cargo.lock .cargo scripts/build-wasm.sh \
    \( -name target -prune \) -o -type f -newer "$oldest" -print -quit 2>/dev/null)
  [[ -z "$newer" ]]
}

# pkg/t5_web_factory.js: the glue as a factory of independent engine instances (scripts/glue-factory.mjs);
# cheap, so made on every run.
make_factory() {
  node "$root/scripts/glue-factory.mjs" "$out_dir/t5_web.js" "$out_dir/t5_web_factory.js"
}

if [[ "${FORCE:-0}" != 1 ]] && up_to_date; then
  echo "build-wasm: pkg/ is up to date (FORCE=1 to rebuild)"
  make_factory
  report
  exit 0
fi

# Versions must match: the wasm-bindgen CLI refuses a module built by another crate version.
pin=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' crates/t5-wasm/Cargo.toml)
if ! command -v wasm-bindgen >/dev/null 2>&1; then
  echo "build-wasm: wasm-bindgen CLI not found; install it with: cargo install wasm-bindgen-cli --version ${pin:-<pin>}" >&2
  exit 1
fi
have=$(wasm-bindgen --version | awk '{print $2}')
if [[ -n "$pin" && "$have" != "$pin" ]]; then
  echo "build-wasm: wasm-bindgen CLI is $have but crates/t5-wasm pins $pin; install it with: cargo install wasm-bindgen-cli --version $pin" >&2
  exit 1
fi

start=$(date +%s)
cargo build -p t5-wasm --release --target wasm32-unknown-unknown
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
  cargo build -p t5-wasm --release --target wasm32-unknown-unknown --target-dir "$relaxed_target_dir"
t_threads=$(date +%s)
# threads: shared memory + atomics need a std built with them (-Zbuild-std, nightly + rust-src). The
# memory is imported (the main instance's glue creates it, each worker instantiates on it), shared, may
# grow to 4 GiB, and the thread-local storage symbols are exported for wasm-bindgen's per-thread start.
threads_flags="-C target-feature=+simd128,+atomics,+bulk-memory,+mutable-globals"
threads_flags+=" -C link-arg=--shared-memory -C link-arg=--import-memory -C link-arg=--max-memory=4294967296"
for sym in __wasm_init_tls __tls_size __tls_align __tls_base; do threads_flags+=" -C link-arg=--export=$sym"; done
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="$threads_flags" \
  cargo +nightly build -p t5-wasm --release --target wasm32-unknown-unknown --target-dir "$threads_target_dir" \
  -Z build-std=std,panic_abort
# the same with relaxed SIMD (fused multiply-adds where the runtime validates them: Chromium, Node 22+, Deno)
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="${threads_flags/+simd128,/+simd128,+relaxed-simd,}" \
  cargo +nightly build -p t5-wasm --release --target wasm32-unknown-unknown --target-dir "$threads_relaxed_target_dir" \
  -Z build-std=std,panic_abort
echo "build-wasm: threaded builds in $(( $(date +%s) - t_threads ))s"
tmp_out="$out_dir.tmp.$$"
rm -rf "$tmp_out" "$tmp_out.relaxed"
trap 'rm -rf "$tmp_out" "$tmp_out.relaxed"' EXIT
# bindgen NAME BASE RELAXED: BASE's glue and wasm as NAME.js / NAME_bg.wasm, RELAXED's wasm beside them as
# NAME_relaxed_bg.wasm, provided its glue is the same (one glue serves both builds)
bindgen() {
  local name=$1 base=$2 relaxed=$3
  wasm-bindgen --target web --out-dir "$tmp_out" --out-name "$name" "$base"
  rm -rf "$tmp_out.relaxed"
  wasm-bindgen --target web --out-dir "$tmp_out.relaxed" --out-name "$name" "$relaxed"
  # the glue's comments on closure casts name each shim's function index, which code only one build has (the
  # relaxed-SIMD q4 kernel) shifts: those comment lines aside, the glue must be the same
  local code='^[[:space:]]*// Cast intrinsic for '
  if ! cmp -s <(grep -v "$code" "$tmp_out/$name.js") <(grep -v "$code" "$tmp_out.relaxed/$name.js"); then
    echo "build-wasm: the relaxed-SIMD build's JS glue $name.js differs from the other's; one glue cannot serve both" >&2
    diff <(grep -v "$code" "$tmp_out/$name.js") <(grep -v "$code" "$tmp_out.relaxed/$name.js") | head -20 >&2
    exit 1
  fi
  mv "$tmp_out.relaxed/${name}_bg.wasm" "$tmp_out/${name}_relaxed_bg.wasm"
  rm -rf "$tmp_out.relaxed"
}
bindgen t5_web "$wasm_in" "$relaxed_in"
bindgen t5_web_threads "$threads_in" "$threads_relaxed_in"
# Replace pkg/ in one step so an interrupted build never leaves a half-written pkg/ that looks fresh.
rm -rf "$out_dir"
mv "$tmp_out" "$out_dir"
make_factory
echo "build-wasm: built in $(( $(date +%s) - start ))s"
report
