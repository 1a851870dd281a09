#!/usr/bin/env bash
# Stop processes that start.sh started for RUN_DIR, and nothing else.
#
#   stop.sh RUN_DIR [COMPONENT...] [--purge]
#
# COMPONENT: etcd, kube-apiserver, kube-controller-manager (default: all three, stopped in
# the reverse order of starting). Each recorded PID is signalled only if /proc/PID/cmdline
# shows that program started for this RUN_DIR: SIGTERM, then SIGKILL after 5 seconds
# (TJF_KUBE_STOP_GRACE=N to wait N seconds instead; 0 = SIGKILL at once, like a crash).
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

STOP_ORDER=(kube-controller-manager kube-apiserver etcd)
purge=0
wanted=()
for arg in "$@"; do
  case $arg in
    --purge) purge=1 ;;
    etcd | kube-apiserver | kube-controller-manager) wanted+=("$arg") ;;
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

for c in "${STOP_ORDER[@]}"; do
  for w in "${wanted[@]}"; do
    if [[ $w == "$c" ]]; then
      stop_one "$c"
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
