#!/usr/bin/env bash
# Stop the jobs ingress nginx started by start.sh RUN_DIR (by the PID in RUN_DIR/nginx.pid).
#
#   ingress/nginx/stop.sh RUN_DIR
set -euo pipefail

die() { echo "stop.sh: error: $*" >&2; exit 1; }
(($# == 1)) || die "usage: $0 RUN_DIR"
RUN_DIR=$1
PIDFILE="$RUN_DIR/nginx.pid"

if [[ ! -s $PIDFILE ]]; then
  echo "jobs ingress: not running (no $PIDFILE)"
  exit 0
fi
pid=$(cat "$PIDFILE")
[[ $pid =~ ^[0-9]+$ ]] || die "garbage in $PIDFILE"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "jobs ingress: stale pid file ($pid), removing"
  rm -f -- "$PIDFILE"
  exit 0
fi
# make sure the pid really is an nginx master before signalling it
comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
[[ $comm == nginx* ]] || die "pid $pid from $PIDFILE is '$comm', not nginx; not touching it"

kill -QUIT "$pid"            # graceful shutdown: master + workers
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"          # fast shutdown (e.g. a long log stream still open)
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
fi
if kill -0 "$pid" 2>/dev/null; then
  die "nginx master $pid did not exit"
fi
rm -f -- "$PIDFILE"
echo "jobs ingress: stopped (pid $pid)"
