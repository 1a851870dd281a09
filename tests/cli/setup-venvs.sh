#!/usr/bin/env bash
# Installs the real Toolforge jobs CLIs from PyPI into virtualenvs outside the checkout, for
# tests/real_cli.rs. Idempotent: a stamp file records what each venv holds, and a venv whose
# stamp matches is left alone.
#
#   tests/cli/setup-venvs.sh
#
#   $TJF_CLI_VENVS/r14   toolforge-jobs-framework-cli==14 with toolforge-weld==1.4.0 (release 14;
#                        late weld 1.6.x breaks it on bare-array replies)
#   $TJF_CLI_VENVS/r16   toolforge-jobs-cli==16.2.3 (weld resolves to 1.6.x)
#
# Environment: TJF_CLI_VENVS (default /var/cache/jobs-gateway-cli), PYTHON (default python3).
set -euo pipefail

root=${TJF_CLI_VENVS:-/var/cache/jobs-gateway-cli}
python=${PYTHON:-python3}

say() { printf '%s setup-venvs.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

# venv name, then the pip requirements
setup() {
  local name=$1
  shift
  local dir=$root/$name
  local want="$* (python: $("$python" --version 2>&1))"
  if [[ -x $dir/bin/toolforge-jobs && -f $dir/.stamp && $(<"$dir/.stamp") == "$want" ]]; then
    say "$name: already installed ($*)"
    return
  fi
  say "$name: creating $dir"
  rm -rf -- "$dir"
  mkdir -p -- "$root"
  "$python" -m venv "$dir"
  say "$name: pip install $*"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input "$@"
  [[ -x $dir/bin/toolforge-jobs ]] || { say "$name: no toolforge-jobs after pip install"; exit 1; }
  "$dir/bin/pip" freeze --disable-pip-version-check | sed 's/^/    /' >&2
  printf '%s' "$want" >"$dir/.stamp"
  say "$name: ready"
}

setup r14 toolforge-jobs-framework-cli==14 toolforge-weld==1.4.0
setup r16 toolforge-jobs-cli==16.2.3
