#!/usr/bin/env bash
# Stop processes that start.sh started for RUN_DIR, and nothing else.
#
#   stop.sh RUN_DIR [COMPONENT...] [--purge]
#
# COMPONENT: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, registry,
# containerd, kubelet (default: all, stopped in the reverse order of starting). Each recorded
# PID is signalled only if /proc/PID/cmdline shows that program started for this RUN_DIR:
# SIGTERM, then SIGKILL after 5 seconds (TJF_KUBE_STOP_GRACE=N to wait N seconds instead;
# 0 = SIGKILL at once, like a crash).
# Stopping containerd first ends every pod it runs: their tasks are killed and deleted through
# containerd's API, then whatever is still in the node's cgroups (/sys/fs/cgroup/*/tjf-<id>)
# is killed by PID; after containerd the node's mounts under RUN_DIR/node are unmounted,
# its cgroups removed and its bridge deleted (pod logs live under RUN_DIR/node/log). Then leftovers.sh checks that none of it is left (exit 1 if something is).
# The RUN_DIR (PKI, ports, etcd data) is kept, so start.sh RUN_DIR restarts the cluster.
# --purge (only when stopping everything) also deletes the etcd data, which lives in
# /dev/shm when available; delete RUN_DIR yourself afterwards if you want it gone.
set -euo pipefail

usage() { echo "usage: stop.sh RUN_DIR [COMPONENT...] [--purge]" >&2; exit 2; }
(($# >= 1)) || usage
[[ $1 != -* ]] || usage
[[ -d $1 ]] || { echo "stop.sh: $1: no such directory" >&2; exit 1; }
run_dir=$(cd -- "$1" && pwd -P)
shift

STOP_ORDER=(kubelet containerd registry kube-scheduler kube-controller-manager kube-apiserver etcd)
cache=${TJF_CLUSTER_CACHE:-/var/cache/tjf-cluster}
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
purge=0
wanted=()
for arg in "$@"; do
  case $arg in
    --purge) purge=1 ;;
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | registry | containerd | kubelet) wanted+=("$arg") ;;
    *) usage ;;
  esac
done
if ((${#wanted[@]} == 0)); then
  wanted=("${STOP_ORDER[@]}")
elif ((purge)); then
  echo "stop.sh: --purge only goes with stopping all components" >&2
  exit 2
fi

log() { printf '%s stop.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }

grace=${TJF_KUBE_STOP_GRACE:-5}
[[ $grace =~ ^[0-9]+$ ]] || { echo "stop.sh: TJF_KUBE_STOP_GRACE must be a whole number of seconds" >&2; exit 2; }

ETCD_DATA=
NODE_ID=
if [[ -f $run_dir/cluster.conf ]]; then
  # shellcheck source=/dev/null
  . "$run_dir/cluster.conf"
fi

exec 8>>"$run_dir/.lock"
flock 8

# ours PID COMPONENT: the process is that program, with this RUN_DIR (for etcd: its data
# directory) on its command line. Same test as start.sh's.
ours() {
  local pid=$1 c=$2 cmd marker
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $(head -n1 <<<"$cmd") == */"$c" ]] || return 1
  if [[ $c == etcd ]]; then marker=--data-dir=$ETCD_DATA; else marker=$run_dir/; fi
  [[ -n $marker && $marker != --data-dir= ]] && grep -qF -- "$marker" <<<"$cmd"
}

# alive PID: the process exists and is not a zombie. Our daemons are reparented to PID 1
# once start.sh exits, and a dead one stays in /proc until PID 1 reaps it.
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ -n $stat && ${stat%% *} != Z ]]
}

gone_within() { # gone_within PID TENTHS_OF_SECONDS
  local i
  for ((i = 0; i < $2; i++)); do
    alive "$1" || return 0
    sleep 0.1
  done
  ! alive "$1"
}

stop_one() {
  local c=$1 pidfile=$run_dir/pids/$1.pid pid
  [[ -s $pidfile ]] || return 0
  pid=$(<"$pidfile")
  if [[ ! $pid =~ ^[0-9]+$ ]] || ! ours "$pid" "$c"; then
    log "$c: pid ${pid:-?} is not $run_dir's $c (exited already?); removing the stale pid file, signalling nothing"
    rm -f "$pidfile"
    return 0
  fi
  if ((grace > 0)); then
    kill -TERM "$pid" 2>/dev/null || true
  fi
  if ((grace > 0)) && gone_within "$pid" $((grace * 10)); then
    log "stopped $c (pid $pid)"
  else
    ((grace == 0)) || log "$c (pid $pid) still there ${grace} s after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    gone_within "$pid" 50 || { log "ERROR: $c (pid $pid) survived SIGKILL"; return 1; }
    log "killed $c (pid $pid)"
  fi
  rm -f "$pidfile"
}

node_dir=$run_dir/node
containerd_sock=$node_dir/containerd/containerd.sock

# end_pods: kill and delete every task (pod sandboxes and containers) of this node's
# containerd through its API, so runc and the shims clean up after them.
end_pods() {
  local ctr=(timeout 20 "$cache/bin/ctr" --address "$containerd_sock" --namespace k8s.io) ids id
  [[ -S $containerd_sock && -x $cache/bin/ctr ]] || return 0
  ids=$("${ctr[@]}" tasks list -q 2>/dev/null) || return 0
  for id in $ids; do "${ctr[@]}" tasks kill --all --signal SIGKILL "$id" >/dev/null 2>&1 || true; done
  for id in $ids; do "${ctr[@]}" tasks delete --force "$id" >/dev/null 2>&1 || true; done
  for id in $("${ctr[@]}" containers list -q 2>/dev/null); do
    "${ctr[@]}" containers delete "$id" >/dev/null 2>&1 || true
  done
  [[ -z $ids ]] || log "ended $(wc -w <<<"$ids") containerd tasks"
}

# shims_of SOCKET: PIDs of containerd shims whose -address argument is exactly SOCKET.
shims_of() {
  local f pid
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    tr '\0' '\n' <"$f" 2>/dev/null | grep -qxF -- "$1" &&
      tr '\0' '\n' <"$f" 2>/dev/null | head -n1 | grep -q 'containerd-shim' && echo "$pid"
  done
  return 0
}

# clean_node: after containerd is gone, remove what the node made outside its processes.
clean_node() {
  local pids pid m i uid d n=0
  [[ -n $NODE_ID ]] || return 0
  # Processes still in the node's cgroups (containers whose shim died), and its shims.
  for i in 1 2 3; do
    pids=$(find /sys/fs/cgroup/pids/"tjf-$NODE_ID" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u) || true
    pids+=" $(shims_of "$containerd_sock")"
    [[ -n ${pids// /} ]] || break
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null && n=$((n + 1)) || true; done
    sleep 0.3
  done
  ((n == 0)) || log "killed $n leftover container processes"
  # Mounts under the node's directory (container root filesystems, volumes, network
  # namespaces), deepest first.
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done < <(awk -v p="$node_dir/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
  # Cgroups, deepest first.
  for d in /sys/fs/cgroup/*/"tjf-$NODE_ID"; do
    [[ -d $d ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  if ip link show "tjf$NODE_ID" >/dev/null 2>&1; then ip link delete "tjf$NODE_ID" || true; fi
  # Paths built into kubelet v1.20, libcni and containerd's shims: our entries in them, then
  # the directories themselves if nothing else uses them.
  rm -f /var/lib/cni/results/"tjf-pods-$NODE_ID"-*
  if ! ps -C kubelet -o stat= 2>/dev/null | grep -qv '^Z'; then # no other kubelet is alive
    rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/DEPRECATION
  fi
  rmdir /var/lib/kubelet/device-plugins /var/lib/kubelet /var/lib/cni/results /var/lib/cni \
    /run/containerd/s /run/containerd 2>/dev/null || true
  return 0
}

for c in "${STOP_ORDER[@]}"; do
  for w in "${wanted[@]}"; do
    if [[ $w == "$c" ]]; then
      [[ $c == containerd ]] && end_pods
      stop_one "$c"
      [[ $c == containerd ]] && clean_node
    fi
  done
done

if ((purge)) && [[ -n $ETCD_DATA ]]; then
  rm -rf -- "$ETCD_DATA"
  # The /dev/shm/tjf-cluster-* parent was created for this RUN_DIR only.
  if [[ $ETCD_DATA == /dev/shm/tjf-cluster-*/etcd ]]; then
    rmdir -- "${ETCD_DATA%/etcd}" 2>/dev/null || true
  fi
  rm -f "$run_dir/etcd-data"
  log "purged etcd data $ETCD_DATA"
fi
clean=0
if [[ -n $NODE_ID ]] && ((${#wanted[@]} == ${#STOP_ORDER[@]})); then
  bash "$script_dir/leftovers.sh" "$run_dir" || clean=1
fi
if ((purge)) && [[ -d $node_dir ]]; then
  # Never delete through a mount (a pod's hostPath volume is a tool's home).
  if awk -v p="$run_dir/" 'index($5, p) == 1 {found=1} END {exit !found}' /proc/self/mountinfo; then
    log "ERROR: mounts remain under $run_dir; not deleting $node_dir"
    clean=1
  else
    rm -rf --one-file-system -- "$node_dir"
  fi
fi
exit "$clean"
