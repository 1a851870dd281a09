#!/usr/bin/env bash
# The project's test command: builds (once, cached) and starts the genuine local Kubernetes
# control plane, runs every test against it, then stops it.
#
#   tests/run.sh [cargo test arguments...]
#
# Environment: TJF_CLUSTER_CACHE (cluster build cache, default /var/cache/tjf-cluster),
# TJF_TEST_RUN_DIR (where the cluster keeps its state; default: a new temporary directory).
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
top=$(cd -- "$here/.." && pwd)

say() { printf '%s tests/run.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

say "building the local cluster (about 5 minutes the first time, cached afterwards)"
bash "$here/cluster/build.sh"

# Python tools the tests use (openapi-spec-validator), in a venv outside the checkout.
py_tools=${TJF_PY_TOOLS_VENV:-/var/cache/jobs-gateway-py}
if [[ ! -x $py_tools/bin/python ]] || ! "$py_tools/bin/python" -c 'import openapi_spec_validator' 2>/dev/null; then
  say "installing openapi-spec-validator into $py_tools"
  python3 -m venv "$py_tools"
  "$py_tools/bin/pip" install --quiet --disable-pip-version-check 'openapi-spec-validator>=0.7'
fi
export TJF_PY_TOOLS=$py_tools/bin/python

run_dir=${TJF_TEST_RUN_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/jobs-gateway-test.XXXXXX")}
cleanup() {
  bash "$here/cluster/stop.sh" "$run_dir" --purge >/dev/null 2>&1 || true
  if [[ -z ${TJF_TEST_RUN_DIR:-} ]]; then rm -rf -- "$run_dir"; fi
}
trap cleanup EXIT

say "starting the local cluster in $run_dir"
bash "$here/cluster/start.sh" "$run_dir"
# shellcheck disable=SC1091
. "$run_dir/env"

cd "$top"
bash "$here/cli/setup-venvs.sh"
say "running the tests"
# benches first (each criterion benchmark runs once as a smoke test), so that the run ends
# with the test runner's summary
cargo test --benches 2>&1
cargo test --lib --bins --tests "$@" 2>&1
