#!/usr/bin/env bash
# Check that nothing of RUN_DIR's node is left on the machine after stop.sh: no process in
# its cgroups, no containerd shim of its containerd, no mount under RUN_DIR, no cgroup
# /sys/fs/cgroup/*/tjf-<id>, no bridge tjf<id>, no CNI result of its network, and no process
# of its components. (Its pods' logs are under RUN_DIR/node/log.)
#
#   leftovers.sh RUN_DIR        exit 0 and one line "no leftovers", or exit 1 listing them
set -euo pipefail
(($# == 1)) || { echo "usage: leftovers.sh RUN_DIR" >&2; exit 2; }
[[ -d $1 ]] || { echo "leftovers.sh: $1: no such directory" >&2; exit 1; }
run_dir=$(cd -- "$1" && pwd -P)
NODE_ID=
# shellcheck source=/dev/null
[[ -f $run_dir/cluster.conf ]] && . "$run_dir/cluster.conf"
[[ -n $NODE_ID ]] || { echo "leftovers.sh: $run_dir has no node (cluster.conf has no NODE_ID)" >&2; exit 2; }

found=()
for d in /sys/fs/cgroup/*/"tjf-$NODE_ID"; do
  [[ -d $d ]] && found+=("cgroup $d")
done
sock=$run_dir/node/containerd/containerd.sock
for f in /proc/[0-9]*/cmdline; do
  if tr '\0' '\n' <"$f" 2>/dev/null | grep -qxF -- "$sock" &&
    tr '\0' '\n' <"$f" 2>/dev/null | head -n1 | grep -q 'containerd-shim'; then
    pid=${f#/proc/}
    found+=("containerd shim ${pid%/cmdline}")
  fi
done
while read -r m; do found+=("mount $m"); done < <(awk -v p="$run_dir/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo)
ip link show "tjf$NODE_ID" >/dev/null 2>&1 && found+=("network interface tjf$NODE_ID")
for f in /var/lib/cni/results/"tjf-pods-$NODE_ID"-*; do [[ -e $f ]] && found+=("CNI result $f"); done
for f in "$run_dir"/pids/*.pid; do
  [[ -s $f ]] || continue
  pid=$(<"$f")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$run_dir/" && found+=("process $pid ($(basename "$f" .pid))")
done
if ((${#found[@]})); then
  printf 'leftovers.sh: %s is not clean:\n' "$run_dir" >&2
  printf '  %s\n' "${found[@]}" >&2
  exit 1
fi
echo "leftovers.sh: no leftovers of $run_dir (containers, mounts, cgroups, bridge, processes)" >&2
