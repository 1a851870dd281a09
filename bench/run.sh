#!/usr/bin/env bash
# The gateway benchmark in one command: builds the release gateway and the benchmark, builds
# (once, cached) and starts the genuine local cluster in a temporary run dir, runs the
# benchmark (gateway vs direct apiserver reads, cold/warm, memory), then stops the cluster.
#
#   bench/run.sh [--tools N] [--json PATH] [--seconds S] [--max-requests N]
#                [--concurrency 1,16,64] [--memory-only] [...]      (bench/run.sh --help)
#
# Environment: BENCH_TOOLS (default 100), TJF_CLUSTER_CACHE (see tests/cluster/README.md),
# CARGO_TARGET_DIR. Everything listens on 127.0.0.1; every process started is stopped by PID.
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
top=$(cd -- "$here/.." && pwd)
cd "$top"

say() { printf '%s bench/run.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

for a in "$@"; do
  if [[ $a == -h || $a == --help ]]; then
    cargo bench --quiet --bench gateway -- --bench --help
    exit 0
  fi
done

say "load average: $(cat /proc/loadavg)"
say "building the release gateway and the benchmark"
cargo build --release --quiet --bin jobs-gateway
cargo bench --quiet --no-run --bench gateway
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
gateway_bin=$target_dir/release/jobs-gateway
[[ -x $gateway_bin ]] || { say "no $gateway_bin after the build"; exit 1; }

say "building the local cluster (about 5 minutes the first time, cached afterwards)"
bash "$top/tests/cluster/build.sh"

run_dir=$(mktemp -d "${TMPDIR:-/tmp}/jobs-gateway-bench.XXXXXX")
cleanup() {
  bash "$top/tests/cluster/stop.sh" "$run_dir" --purge >/dev/null 2>&1 || true
  rm -rf -- "$run_dir"
}
trap cleanup EXIT

say "starting the local cluster in $run_dir"
bash "$top/tests/cluster/start.sh" "$run_dir" --control-plane # reads only: no node needed
# shellcheck disable=SC1091
. "$run_dir/env"

# 1,000 warm tools keep one apiserver connection each open in the gateway, plus one client
# connection each in this benchmark.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

say "running the benchmark"
BENCH_GATEWAY_BIN=$gateway_bin cargo bench --quiet --bench gateway -- --work-dir "$run_dir/bench" "$@"
