#!/usr/bin/env bash
# Build and run one cargo-fuzz target for a fixed time.
#
#   fuzz/run.sh TARGET SECONDS [extra libFuzzer args...]
#
# TARGET is dn, run_request or schedule. Installs cargo-fuzz if missing. Works on a stable
# toolchain through RUSTC_BOOTSTRAP=1 (cargo-fuzz needs -Zsanitizer and other nightly flags).
# New corpus entries go to fuzz/corpus/TARGET (not committed; the committed seeds are in
# fuzz/seeds/TARGET and are only read), crashes to fuzz/artifacts/TARGET, the full log to
# fuzz/logs/TARGET-<UTC time>.log. Honours CARGO_TARGET_DIR. Exit status: 0 when the run
# ended without a finding, libFuzzer's non-zero status otherwise.
set -euo pipefail

usage() {
    echo "usage: $0 TARGET SECONDS [libFuzzer args...]   (TARGET: dn | run_request | schedule)" >&2
    exit 2
}
[ $# -ge 2 ] || usage
target=$1
seconds=$2
shift 2
case "$target" in
    dn | run_request | schedule) ;;
    *) usage ;;
esac
[[ "$seconds" =~ ^[0-9]+$ ]] || usage

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$fuzz_dir")
cd "$repo"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --version 0.13.2
fi
# cargo-fuzz passes nightly-only flags; let a stable rustc accept them.
if ! rustc -V | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target" fuzz/logs
log="fuzz/logs/$target-$(date -u +%Y%m%dT%H%M%SZ).log"

cargo fuzz build "$target"

echo "fuzzing $target for $seconds s; log: $log" >&2
set +e
cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" \
    -timeout=10 \
    -dict="fuzz/dicts/$target.dict" \
    -print_final_stats=1 \
    "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo "--- $target: final libFuzzer lines ---" >&2
grep -E '^#[0-9]+[[:space:]]+DONE|^Done [0-9]+ runs|^stat::number_of_executed_units|^stat::average_exec_per_sec' "$log" >&2 || true
if [ "$status" -ne 0 ]; then
    echo "$target: libFuzzer exited with $status; see fuzz/artifacts/$target and $log" >&2
fi
exit "$status"
