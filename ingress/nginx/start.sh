#!/usr/bin/env bash
# Render nginx.conf.tmpl into RUN_DIR and start a local jobs ingress (nginx, daemonised).
#
#   ingress/nginx/start.sh RUN_DIR
#
# Environment (defaults in brackets; CERTS_DIR, if set, supplies the certificate defaults
# using the file names written by certs-dev/mint.sh all --out CERTS_DIR):
#   INGRESS_PORT        [8445]                    listen port (always 127.0.0.1 unless LISTEN_ADDR)
#   GATEWAY_UPSTREAM    [https://127.0.0.1:8444]  the gateway's ingress listener
#   GATEWAY_UPSTREAMS   [$GATEWAY_UPSTREAM]       several replicas' ingress listeners
#                                                 (https://HOST:PORT, space-separated); a
#                                                 tool's requests go to one of them
#                                                 (hash of the verified subject DN)
#   INGRESS_SERVER_CERT [$CERTS_DIR/gateway.crt]  nginx's own server certificate
#   INGRESS_SERVER_KEY  [$CERTS_DIR/gateway.key]
#   CLIENT_CA           [$CERTS_DIR/ca.crt]       CA that signs user (tool) certificates
#   INGRESS_CLIENT_CERT [$CERTS_DIR/ingress-client.crt]  presented to the gateway
#   INGRESS_CLIENT_KEY  [$CERTS_DIR/ingress-client.key]
#   UPSTREAM_CA         [$CLIENT_CA]              CA that signs the gateway's server cert
#   UPSTREAM_SSL_NAME   [localhost]               name checked against the gateway cert SAN
#   NGINX_BIN           [nginx]                   nginx binary (not NGINX: nginx itself
#                                                 reads that variable for inherited sockets)
#   NGINX_USER          [unset]                   worker user when run as root (nginx default: nobody)
#   ERROR_LOG_LEVEL     [notice]
#
# Prints RUN_DIR/nginx.pid's PID on success. Stop with ingress/nginx/stop.sh RUN_DIR.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "$0")" && pwd -P)
die() { echo "start.sh: error: $*" >&2; exit 1; }

(($# == 1)) || die "usage: $0 RUN_DIR"
mkdir -p -- "$1"
RUN_DIR=$(cd -- "$1" && pwd -P)

unset NGINX
NGINX_BIN=${NGINX_BIN:-nginx}
command -v "$NGINX_BIN" >/dev/null 2>&1 || die "nginx not found (Debian: apt-get install -y nginx)"

CERTS_DIR=${CERTS_DIR:-}
cd_default() { [[ -n $CERTS_DIR ]] && echo "$CERTS_DIR/$1" || echo ""; }
INGRESS_PORT=${INGRESS_PORT:-8445}
LISTEN_ADDR=${LISTEN_ADDR:-127.0.0.1}
GATEWAY_UPSTREAM=${GATEWAY_UPSTREAM:-https://127.0.0.1:8444}
INGRESS_SERVER_CERT=${INGRESS_SERVER_CERT:-$(cd_default gateway.crt)}
INGRESS_SERVER_KEY=${INGRESS_SERVER_KEY:-$(cd_default gateway.key)}
CLIENT_CA=${CLIENT_CA:-$(cd_default ca.crt)}
INGRESS_CLIENT_CERT=${INGRESS_CLIENT_CERT:-$(cd_default ingress-client.crt)}
INGRESS_CLIENT_KEY=${INGRESS_CLIENT_KEY:-$(cd_default ingress-client.key)}
UPSTREAM_CA=${UPSTREAM_CA:-$CLIENT_CA}
UPSTREAM_SSL_NAME=${UPSTREAM_SSL_NAME:-localhost}
ERROR_LOG_LEVEL=${ERROR_LOG_LEVEL:-notice}

[[ $INGRESS_PORT =~ ^[0-9]+$ ]] || die "INGRESS_PORT must be a number"
GATEWAY_UPSTREAMS=${GATEWAY_UPSTREAMS:-$GATEWAY_UPSTREAM}
UPSTREAM_SERVERS=""
read -r -a upstreams <<<"$GATEWAY_UPSTREAMS"
for u in "${upstreams[@]}"; do
  [[ $u =~ ^https://([A-Za-z0-9.-]+:[0-9]+)/?$ ]] || die "GATEWAY_UPSTREAM(S): '$u' is not https://HOST:PORT"
  UPSTREAM_SERVERS+="server ${BASH_REMATCH[1]};"
done
[[ -n $UPSTREAM_SERVERS ]] || die "GATEWAY_UPSTREAMS is empty"
[[ $UPSTREAM_SSL_NAME =~ ^[A-Za-z0-9.:-]+$ ]] || die "bad UPSTREAM_SSL_NAME"

# all file paths: must exist, made absolute, no characters that would break the config
abs_file() { # abs_file VARNAME
  local v=$1 p=${!1}
  [[ -n $p ]] || die "$v is not set (set it, or CERTS_DIR)"
  [[ -r $p ]] || die "$v: cannot read '$p'"
  p="$(cd -- "$(dirname -- "$p")" && pwd -P)/$(basename -- "$p")"
  [[ $p =~ ^[A-Za-z0-9_./@+-]+$ ]] || die "$v: unsupported characters in path '$p'"
  printf -v "$v" '%s' "$p"
}
for v in INGRESS_SERVER_CERT INGRESS_SERVER_KEY CLIENT_CA INGRESS_CLIENT_CERT INGRESS_CLIENT_KEY UPSTREAM_CA; do
  abs_file "$v"
done
[[ $RUN_DIR =~ ^[A-Za-z0-9_./@+-]+$ ]] || die "unsupported characters in RUN_DIR '$RUN_DIR'"

PIDFILE="$RUN_DIR/nginx.pid"
if [[ -s $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  die "nginx already running in $RUN_DIR (pid $(cat "$PIDFILE")); run stop.sh first"
fi

USER_DIRECTIVE=""
if [[ $(id -u) == 0 && -n ${NGINX_USER:-} ]]; then
  [[ $NGINX_USER =~ ^[A-Za-z0-9_.-]+( [A-Za-z0-9_.-]+)?$ ]] || die "bad NGINX_USER"
  USER_DIRECTIVE="user $NGINX_USER;"
fi

mkdir -p -- "$RUN_DIR/tmp"
CONF="$RUN_DIR/nginx.conf"
sed -e "s#@RUN_DIR@#$RUN_DIR#g" \
    -e "s#@USER_DIRECTIVE@#$USER_DIRECTIVE#g" \
    -e "s#@ERROR_LOG_LEVEL@#$ERROR_LOG_LEVEL#g" \
    -e "s#@LISTEN_ADDR@#$LISTEN_ADDR#g" \
    -e "s#@INGRESS_PORT@#$INGRESS_PORT#g" \
    -e "s#@UPSTREAM_SERVERS@#$UPSTREAM_SERVERS#g" \
    -e "s#@INGRESS_SERVER_CERT@#$INGRESS_SERVER_CERT#g" \
    -e "s#@INGRESS_SERVER_KEY@#$INGRESS_SERVER_KEY#g" \
    -e "s#@CLIENT_CA@#$CLIENT_CA#g" \
    -e "s#@INGRESS_CLIENT_CERT@#$INGRESS_CLIENT_CERT#g" \
    -e "s#@INGRESS_CLIENT_KEY@#$INGRESS_CLIENT_KEY#g" \
    -e "s#@UPSTREAM_CA@#$UPSTREAM_CA#g" \
    -e "s#@UPSTREAM_SSL_NAME@#$UPSTREAM_SSL_NAME#g" \
    "$HERE/nginx.conf.tmpl" >"$CONF.tmp"
if grep -n '@[A-Z][A-Z_]*@' "$CONF.tmp" >&2; then die "unrendered placeholder in $CONF.tmp"; fi
mv -f -- "$CONF.tmp" "$CONF"

# -p: prefix, -e: startup error log (before error_log is parsed), -c: our config only
"$NGINX_BIN" -p "$RUN_DIR/" -e "$RUN_DIR/error.log" -c "$CONF" -t -q || die "config test failed (see above, $CONF)"
"$NGINX_BIN" -p "$RUN_DIR/" -e "$RUN_DIR/error.log" -c "$CONF" || die "nginx failed to start (see $RUN_DIR/error.log)"

# daemon on: the master writes its pid file after forking; wait briefly for it
for _ in $(seq 1 50); do
  [[ -s $PIDFILE ]] && break
  sleep 0.1
done
[[ -s $PIDFILE ]] || die "no pid file after start (see $RUN_DIR/error.log)"
pid=$(cat "$PIDFILE")
kill -0 "$pid" 2>/dev/null || die "nginx (pid $pid) is not running (see $RUN_DIR/error.log)"
echo "jobs ingress: https://$LISTEN_ADDR:$INGRESS_PORT -> $GATEWAY_UPSTREAMS (pid $pid, config $CONF)"
