#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for RAIN_FUZZ_SECONDS each (default 20),
# with allocation limits so an allocation sized by a claimed length fails the run.
# Each target starts from its committed corpus in fuzz/corpus/<target>; what a run finds
# new stays in a scratch directory. Prints one summary line per target; exits non-zero on
# the first crash, leak, timeout or over-limit allocation (libFuzzer's artifact is kept in
# fuzz/artifacts/<target>/).
#
#   scripts/fuzz.sh                               # every target, 20 s each (CI)
#   RAIN_FUZZ_SECONDS=600 scripts/fuzz.sh         # the 10-minute run per target
#   scripts/fuzz.sh wire_message ut_pex           # only these
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${RAIN_FUZZ_SECONDS:-20}
if rustup run nightly rustc --version >/dev/null 2>&1; then
  fuzz=(cargo +nightly fuzz)
else
  # No nightly toolchain: cargo-fuzz's -Z flags through the stable compiler.
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^rain-fuzz$')
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  echo "--- fuzz $t (${seconds}s) $(date -u +%H:%M:%S)"
  if ! "${fuzz[@]}" run "$t" "$work/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 >"$work/$t.log" 2>&1; then
    cat "$work/$t.log"
    echo "fuzz target $t failed" >&2
    exit 1
  fi
  grep -E '^(Done|#[0-9]+ *DONE)' "$work/$t.log" | tail -n 1 || tail -n 1 "$work/$t.log"
done
