#!/usr/bin/env bash
# The whole local stack on 127.0.0.1, in one command:
#   genuine kube-apiserver + controller-manager + etcd (built once from Debian's archive),
#   demo tools alice and bob (namespace, RBAC, LimitRange, certificates in their homes),
#   the gateway (direct mTLS listener + ingress listener + admin port),
#   and an nginx "jobs ingress" in front of it.
#
#   dev/stack.sh up      start (idempotent: what runs already is kept)
#   dev/stack.sh down    stop everything this script started
#   dev/stack.sh down --purge   also delete the cluster's etcd data (kept in /dev/shm when
#                        available, i.e. outside STACK_DIR), for a fresh start
#   dev/stack.sh status
#
# Environment: STACK_DIR (default /var/tmp/jobs-gateway-stack), STACK_TOOLS ("alice bob"),
# GATEWAY_DIRECT_PORT (8443), GATEWAY_INGRESS_PORT (8444), GATEWAY_ADMIN_PORT (9000),
# INGRESS_PORT (8445).
set -euo pipefail
top=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
dir=${STACK_DIR:-/var/tmp/jobs-gateway-stack}
tools=${STACK_TOOLS:-alice bob}
direct_port=${GATEWAY_DIRECT_PORT:-8443}
ingress_listener_port=${GATEWAY_INGRESS_PORT:-8444}
admin_port=${GATEWAY_ADMIN_PORT:-9000}
ingress_port=${INGRESS_PORT:-8445}

say() { printf '%s stack: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

alive() { # alive PIDFILE NAME
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ -n $pid && -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

# demo TOOL CERT_DIR: one job through the ingress, run by the node; its output printed.
demo() {
  local tool=$1 h=$2 i out
  local c=(curl -fsS --max-time 10 --cacert "$dir/pki/ca.crt" --cert "$h/client.crt" --key "$h/client.key")
  local api=https://127.0.0.1:$ingress_port
  say "[6/6] a demo job: tool $tool runs 'demo' on the node, through the ingress"
  "${c[@]}" -X DELETE "$api/jobs/v1/tool/$tool/jobs/demo" >/dev/null 2>&1 || true
  "${c[@]}" -H 'Content-Type: application/json' "$api/jobs/v1/tool/$tool/jobs/" \
    -d '{"name":"demo","imagename":"bookworm","filelog":false,"cmd":"echo Hello from $(hostname), a pod on the local node; python3 --version"}' >/dev/null
  for i in $(seq 1 120); do
    out=$("${c[@]}" "$api/logs/v1/tool/$tool/job/demo/logs" 2>/dev/null |
      python3 -c 'import json,sys; [print("   ", e["datetime"], e["pod"], e["message"]) for e in reversed(json.load(sys.stdin)["data"]["logs"])]' 2>/dev/null) || true
    if [[ $(wc -l <<<"$out") -ge 2 ]]; then
      say "the demo job's output, read back through the gateway:"
      printf '%s\n' "$out"
      "${c[@]}" -X DELETE "$api/jobs/v1/tool/$tool/jobs/demo" >/dev/null 2>&1 || true
      return 0
    fi
    sleep 0.5
  done
  say "the demo job printed nothing within 60 s; see: . $dir/cluster/env && kubectl -n tool-$tool get pods"
  return 1
}

up() {
  mkdir -p "$dir"
  say "[1/6] local cluster: building once (about 5 minutes the first time, cached after)"
  bash "$top/tests/cluster/build.sh"
  bash "$top/tests/cluster/start.sh" "$dir/cluster"
  # shellcheck disable=SC1091
  . "$dir/cluster/env"

  say "[2/6] certificates and tool homes under $dir/project"
  bash "$top/certs-dev/mint.sh" all --out "$dir/pki" --ca-cert "$TJF_KUBE_CA" --ca-key "$TJF_KUBE_CA_KEY" \
    --tool-root "$dir/project" --tools "$tools" --kube-url "$TJF_KUBE_URL" --kube-ca "$TJF_KUBE_CA" >/dev/null
  for t in $tools; do
    bash "$top/tests/cluster/provision-tool.sh" "$dir/cluster" "$t" >/dev/null
  done

  say "[3/6] building the gateway"
  (cd "$top" && cargo build --quiet --bin jobs-gateway)
  local target
  target=$(cd "$top" && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

  say "[4/6] gateway on 127.0.0.1:$direct_port (direct mTLS), :$ingress_listener_port (ingress), :$admin_port (admin)"
  if ! alive "$dir/gateway.pid" jobs-gateway; then
    JOBS_GATEWAY_DIRECT_ADDR=127.0.0.1:$direct_port \
    JOBS_GATEWAY_INGRESS_ADDR=127.0.0.1:$ingress_listener_port \
    JOBS_GATEWAY_ADMIN_ADDR=127.0.0.1:$admin_port \
    JOBS_GATEWAY_TLS_CERT=$dir/pki/gateway.crt JOBS_GATEWAY_TLS_KEY=$dir/pki/gateway.key \
    JOBS_GATEWAY_CLIENT_CA=$TJF_KUBE_CA JOBS_GATEWAY_KUBE_URL=$TJF_KUBE_URL \
    JOBS_GATEWAY_KUBE_CA=$TJF_KUBE_CA JOBS_GATEWAY_HOME_ROOT=$dir/project \
    JOBS_GATEWAY_IMAGES_FILE=$TJF_IMAGES_FILE JOBS_GATEWAY_HOME_MOUNT=hostpath \
    JOBS_GATEWAY_SHUTDOWN_DELAY_MS=0 JOBS_GATEWAY_SHUTDOWN_GRACE_MS=5000 \
      setsid "$target/debug/jobs-gateway" >"$dir/gateway.log" 2>&1 </dev/null &
    echo $! >"$dir/gateway.pid"
  fi
  local i
  for i in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$admin_port/healthz" >/dev/null 2>&1 && break
    alive "$dir/gateway.pid" jobs-gateway || { cat "$dir/gateway.log" >&2; exit 1; }
    sleep 0.1
  done

  say "[5/6] nginx jobs ingress on 127.0.0.1:$ingress_port"
  if ! alive "$dir/ingress/nginx.pid" nginx; then
    CERTS_DIR=$dir/pki INGRESS_PORT=$ingress_port GATEWAY_UPSTREAM=https://127.0.0.1:$ingress_listener_port \
      bash "$top/ingress/nginx/start.sh" "$dir/ingress" >/dev/null
  fi

  local first=${tools%% *}
  local h=$dir/project/$first/.toolskube
  demo "$first" "$h"
  cat <<TXT

The stack is up. As tool '$first', through the nginx ingress:

  curl --cacert $dir/pki/ca.crt --cert $h/client.crt --key $h/client.key \\
       -H 'Content-Type: application/json' \\
       -d '{"name":"hello","imagename":"bookworm","cmd":"echo hello"}' \\
       https://127.0.0.1:$ingress_port/jobs/api/v1/run/
  curl --cacert $dir/pki/ca.crt --cert $h/client.crt --key $h/client.key \\
       https://127.0.0.1:$ingress_port/jobs/api/v1/list/
  curl --cacert $dir/pki/ca.crt --cert $h/client.crt --key $h/client.key -X DELETE \\
       https://127.0.0.1:$ingress_port/jobs/api/v1/delete/hello

Directly to the gateway (it checks the certificate itself): https://127.0.0.1:$direct_port/api/v1/list/
The toolforge-jobs CLI uses the tool's kubeconfig: KUBECONFIG=$dir/project/$first/.kube/config
and the API URL https://127.0.0.1:$ingress_port/jobs/api/v1
Cluster admin: . $dir/cluster/env && kubectl get jobs -A
Stop it all: dev/stack.sh down
TXT
}

down() {
  local purge=()
  case ${1:-} in
    "") ;;
    --purge) purge=(--purge) ;;
    *) echo "usage: dev/stack.sh down [--purge]" >&2; exit 2 ;;
  esac
  [[ -d $dir ]] || { say "nothing to stop"; return 0; }
  if [[ -f $dir/ingress/nginx.pid ]]; then bash "$top/ingress/nginx/stop.sh" "$dir/ingress" >/dev/null 2>&1 || true; fi
  if alive "$dir/gateway.pid" jobs-gateway; then
    # SIGTERM: the gateway lets requests in flight finish (grace 5 s here) and exits
    kill "$(cat "$dir/gateway.pid")" 2>/dev/null || true
    local i
    for i in $(seq 1 70); do
      alive "$dir/gateway.pid" jobs-gateway || break
      sleep 0.1
    done
    if alive "$dir/gateway.pid" jobs-gateway; then kill -KILL "$(cat "$dir/gateway.pid")" 2>/dev/null || true; fi
  fi
  rm -f "$dir/gateway.pid"
  if [[ -d $dir/cluster ]]; then
    # its last line is leftovers.sh's: no container, mount, cgroup or bridge of the node is left
    bash "$top/tests/cluster/stop.sh" "$dir/cluster" "${purge[@]}" 2>&1 | tail -n 1 || true
  fi
  if ((${#purge[@]})); then
    say "stopped, etcd data deleted (remove $dir too for a fresh start)"
  else
    say "stopped (state kept in $dir and the etcd data it names; 'down --purge' for a fresh start)"
  fi
}

status() {
  alive "$dir/cluster/pids/kube-apiserver.pid" kube-apiserver && echo "cluster: up" || echo "cluster: down"
  alive "$dir/gateway.pid" jobs-gateway && echo "gateway: up" || echo "gateway: down"
  alive "$dir/ingress/nginx.pid" nginx && echo "ingress: up" || echo "ingress: down"
}

case ${1:-} in
  up) up ;;
  down) shift; down "$@" ;;
  status) status ;;
  *) echo "usage: dev/stack.sh up|down [--purge]|status" >&2; exit 2 ;;
esac
