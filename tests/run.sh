#!/usr/bin/env bash
# The project's test command: builds (once, cached) and starts the genuine local one-node
# Kubernetes cluster, runs every test against it (the integration tests' pods really run),
# then stops it and checks that nothing of the node is left (leftovers.sh; exit 1 if so).
#
#   tests/run.sh [cargo test arguments...]
#
# Environment: TJF_CLUSTER_CACHE (cluster build cache, default /var/cache/tjf-cluster),
# TJF_TEST_RUN_DIR (where the cluster keeps its state; default: a new temporary directory).
set -euo pipefail
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
top=$(cd -- "$here/.." && pwd)

say() { printf '%s tests/run.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

say "building the local cluster and its images (about 9 minutes the first time, cached afterwards)"
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
  local rc=$? stopped=0
  # stop.sh ends with leftovers.sh's verdict (containers, mounts, cgroups, bridge): exit 1
  # when something of the node is left
  bash "$here/cluster/stop.sh" "$run_dir" --purge >"$run_dir.stop.log" 2>&1 || stopped=$?
  # quiet when clean, so that the run ends with the test runner's summary
  ((stopped == 0)) || tail -n 12 "$run_dir.stop.log" >&2
  rm -f "$run_dir.stop.log"
  if ((stopped == 0)) && [[ -z ${TJF_TEST_RUN_DIR:-} ]]; then rm -rf --one-file-system -- "$run_dir"; fi
  if ((rc == 0 && stopped != 0)); then
    say "the cluster did not stop cleanly (see above)"
    exit 1
  fi
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
# the CLI integration tests run the CLI package's binary, which cargo test does not build
cargo build --workspace --bins 2>&1
cargo test --workspace --benches 2>&1
cargo test --workspace --lib --bins --tests "$@" 2>&1
