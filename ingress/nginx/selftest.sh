#!/usr/bin/env bash
# Self-test of the local jobs ingress against a stand-in TLS upstream (echo_upstream.py).
# Needs: nginx, python3, curl, openssl. Starts everything under a temp dir, stops it by PID.
#
#   ingress/nginx/selftest.sh            (env: SELFTEST_UP_PORT [18444], SELFTEST_PORT [18445],
#                                         KEEP=1 keeps the temp dir)
set -euo pipefail

HERE=$(cd -- "$(dirname -- "$0")" && pwd -P)
ROOT=$(cd -- "$HERE/../.." && pwd -P)
MINT="$ROOT/certs-dev/mint.sh"
UP_PORT=${SELFTEST_UP_PORT:-18444}
PORT=${SELFTEST_PORT:-18445}
T=$(mktemp -d "${TMPDIR:-/tmp}/ingress-selftest.XXXXXX")
C="$T/certs"
UP_PID=""
pass=0 fail=0

cleanup() {
  "$HERE/stop.sh" "$T/run" >/dev/null 2>&1 || true
  if [[ -n $UP_PID ]]; then kill "$UP_PID" 2>/dev/null || true; wait "$UP_PID" 2>/dev/null || true; fi
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $T"; else rm -rf -- "$T"; fi
}
trap cleanup EXIT

ok()  { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }

"$MINT" all --out "$C" --tool-root "$T/homes" --tools "alice" >/dev/null
"$MINT" all --out "$T/other" --tool-root "$T/other-homes" --tools "alice" >/dev/null   # another CA
"$MINT" client --ca-cert "$C/ca.crt" --ca-key "$C/ca.key" --out "$C/wrong-o" --subj "/O=other/CN=alice" >/dev/null
"$MINT" client --ca-cert "$C/ca.crt" --ca-key "$C/ca.key" --out "$C/odd" --subj '/O=toolforge/CN=a\,b+UID=7' >/dev/null
"$MINT" client --ca-cert "$C/ca.crt" --ca-key "$C/ca.key" --out "$C/openssl-order" --subj "/CN=alice/O=toolforge" >/dev/null

python3 "$HERE/echo_upstream.py" --port "$UP_PORT" --cert "$C/gateway.crt" --key "$C/gateway.key" \
  --client-ca "$C/ca.crt" 2>"$T/upstream.log" &
UP_PID=$!
for _ in $(seq 1 50); do grep -q 'echo-upstream: https' "$T/upstream.log" 2>/dev/null && break; sleep 0.1; done

CERTS_DIR="$C" INGRESS_PORT="$PORT" GATEWAY_UPSTREAM="https://127.0.0.1:$UP_PORT" "$HERE/start.sh" "$T/run"

URL="https://127.0.0.1:$PORT"
ALICE=(--cert "$T/homes/alice/.toolskube/client.crt" --key "$T/homes/alice/.toolskube/client.key")
CURL=(curl -sS --cacert "$C/ca.crt" --max-time 10)

# values of a header (case-insensitive) in the echoed JSON, one per line
hdr() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=sys.argv[2].lower()
for k,v in d["headers"]:
    if k.lower()==n: print(v)' "$1" "$2"; }
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# 1. valid user certificate
code=$("${CURL[@]}" "${ALICE[@]}" -o "$T/r1.json" -w '%{http_code}' "$URL/api/v1/jobs/")
dn=$(hdr "$T/r1.json" ssl-client-subject-dn)
[[ $code == 200 ]] && ok "user cert -> 200" || bad "user cert -> $code"
[[ $dn == "CN=alice,O=toolforge" ]] && ok "ssl-client-subject-dn = '$dn'" || bad "ssl-client-subject-dn = '$dn'"
peer=$(field "$T/r1.json" peer_subject)
[[ $peer == "CN=jobs-ingress,O=toolforge-infra" ]] && ok "upstream saw ingress client cert '$peer'" || bad "upstream peer '$peer'"

# 2. spoofed identity headers from the client
code=$("${CURL[@]}" "${ALICE[@]}" -o "$T/r2.json" -w '%{http_code}' \
  -H 'ssl-client-subject-dn: CN=root,O=toolforge' \
  -H 'SSL-Client-Subject-DN: CN=root2,O=toolforge' \
  -H 'ssl_client_subject_dn: CN=root3,O=toolforge' \
  -H 'Ssl_Client_Subject_Dn: CN=root4,O=toolforge' \
  "$URL/api/v1/jobs/")
vals=$(hdr "$T/r2.json" ssl-client-subject-dn | tr '\n' '|')
under=$(hdr "$T/r2.json" ssl_client_subject_dn | tr '\n' '|')
[[ $code == 200 && $vals == "CN=alice,O=toolforge|" ]] && ok "spoofed header replaced: only '$vals'" || bad "spoof: code=$code values='$vals'"
[[ -z $under ]] && ok "underscore variant dropped" || bad "underscore variant reached upstream: '$under'"
grep -qi root "$T/r2.json" && bad "a spoofed value reached upstream" || ok "no spoofed value anywhere upstream"

# 3. no client certificate
code=$("${CURL[@]}" -o "$T/r3.html" -w '%{http_code}' "$URL/api/v1/jobs/")
[[ $code == 400 ]] && grep -q 'No required SSL certificate' "$T/r3.html" && ok "no cert -> 400 (No required SSL certificate)" || bad "no cert -> $code"

# 4. certificate from another CA
code=$("${CURL[@]}" --cert "$T/other-homes/alice/.toolskube/client.crt" --key "$T/other-homes/alice/.toolskube/client.key" \
  -o "$T/r4.html" -w '%{http_code}' "$URL/api/v1/jobs/" || true)
[[ $code == 400 ]] && ok "foreign-CA cert -> 400 ($(grep -m1 -o 'The SSL certificate error' "$T/r4.html" || true))" || bad "foreign-CA cert -> $code"

# 5. DN formats nginx produces for unusual subjects (the gateway decides what to accept)
for f in wrong-o odd openssl-order; do
  "${CURL[@]}" --cert "$C/$f.crt" --key "$C/$f.key" -o "$T/r5.json" "$URL/x"
  echo "info - subject $(openssl x509 -in "$C/$f.crt" -noout -subject -nameopt RFC2253) -> header '$(hdr "$T/r5.json" ssl-client-subject-dn)'"
done

# 6. body limit
head -c $((1024 * 1024 + 10)) /dev/zero >"$T/big"
code=$("${CURL[@]}" "${ALICE[@]}" -o /dev/null -w '%{http_code}' --data-binary @"$T/big" "$URL/api/v1/jobs/")
[[ $code == 413 ]] && ok "body > 1m -> 413" || bad "body > 1m -> $code"

# 7. streaming is not buffered: first line arrives long before the response ends (3 x 1s)
start=$(date +%s.%N)
first=$("${CURL[@]}" "${ALICE[@]}" -N "$URL/stream?n=3&delay=1" | { IFS= read -r _; date +%s.%N; cat >/dev/null; })
lat=$(python3 -c "print(round($first - $start, 2))")
python3 -c "import sys; sys.exit(0 if $lat < 0.9 else 1)" && ok "streamed: first line after ${lat}s" || bad "first streamed line after ${lat}s (buffered?)"

echo "$pass passed, $fail failed"
((fail == 0))
