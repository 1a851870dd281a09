#!/usr/bin/env bash
# Mint development certificates for jobs-gateway.
#
#   mint.sh all    --out DIR [--ca-cert F --ca-key F] [--tool-root ROOT --tools "alice bob"]
#                  [--kube-url URL] [--kube-ca F] [--days N] [--key-alg ec|rsa] [--force]
#   mint.sh tool   --ca-cert F --ca-key F --tool-root ROOT [--kube-url URL] [--kube-ca F]
#                  [--days N] [--key-alg ec|rsa] NAME
#   mint.sh client (--ca-cert F --ca-key F | --ca DIR) --out PREFIX --subj "/O=y/CN=x"
#                  [--days N] [--not-before YYYYMMDDHHMMSSZ] [--not-after YYYYMMDDHHMMSSZ]
#                  [--key-alg ec|rsa] [--server]
#
# Only paths are printed, never key material. See certs-dev/README.md.
set -euo pipefail
umask 022

PROG=$(basename "$0")
OPENSSL=${OPENSSL:-openssl}

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$*"; }

usage() {
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

# ---------------------------------------------------------------- helpers

abspath() {
  # absolute path of a (possibly not yet existing) file, without resolving symlinks of the leaf
  local p=$1 d b
  d=$(dirname -- "$p"); b=$(basename -- "$p")
  mkdir -p -- "$d"
  d=$(cd -- "$d" && pwd -P)
  printf '%s/%s\n' "$d" "$b"
}

# temp dir for intermediate files (CSRs, ext files); removed on exit
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mint.XXXXXX")
cleanup() { rm -rf -- "$WORK"; }
trap cleanup EXIT

KEY_ALG=${KEY_ALG:-ec}
genkey() { # genkey OUTFILE  -> PKCS#8 PEM private key, mode 0600
  local out=$1
  ( umask 077
    case "$KEY_ALG" in
      ec)  "$OPENSSL" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
             -pkeyopt ec_param_enc:named_curve -out "$out" 2>/dev/null ;;
      rsa) "$OPENSSL" genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$out" 2>/dev/null ;;
      *)   die "unknown --key-alg '$KEY_ALG' (ec|rsa)" ;;
    esac )
  chmod 0600 "$out"
}

# Install SRC at DEST atomically: copy to a temp file in DEST's directory, then rename.
install_atomic() { # install_atomic SRC DEST MODE
  local src=$1 dest=$2 mode=$3 dir tmp
  dir=$(dirname -- "$dest")
  mkdir -p -- "$dir"
  tmp=$(mktemp "$dir/.$(basename -- "$dest").tmp.XXXXXX")
  chmod "$mode" "$tmp"
  cat -- "$src" >"$tmp"
  if [[ -n "${CHOWN_TO:-}" ]]; then chown "$CHOWN_TO" "$tmp" 2>/dev/null || true; fi
  mv -f -- "$tmp" "$dest"
}

serial() { echo "0x$("$OPENSSL" rand -hex 16)"; }

# Write an extension section for a leaf certificate.
leaf_ext() { # leaf_ext FILE server|client [SAN]
  local f=$1 kind=$2 san=${3:-}
  {
    echo "[ext]"
    echo "basicConstraints = critical, CA:FALSE"
    echo "subjectKeyIdentifier = hash"
    echo "authorityKeyIdentifier = keyid, issuer"
    if [[ $kind == server ]]; then
      echo "keyUsage = critical, digitalSignature, keyEncipherment"
      echo "extendedKeyUsage = serverAuth"
    else
      echo "keyUsage = critical, digitalSignature, keyEncipherment"
      echo "extendedKeyUsage = clientAuth"
    fi
    if [[ -n $san ]]; then echo "subjectAltName = $san"; fi
  } >"$f"
}

# sign_leaf CA_CERT CA_KEY KEYFILE SUBJ DAYS KIND SAN OUTCERT [MULTIVALUE]
sign_leaf() {
  local cacrt=$1 cakey=$2 key=$3 subj=$4 days=$5 kind=$6 san=$7 out=$8 mv=${9:-}
  local csr="$WORK/req.csr" ext="$WORK/ext.cnf" cnf="$WORK/req.cnf"
  # minimal req config so the system openssl.cnf cannot inject extensions
  printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n' >"$cnf"
  local mvopt=()
  if [[ -n $mv ]]; then mvopt=(-multivalue-rdn); fi
  "$OPENSSL" req -new -config "$cnf" -key "$key" -subj "$subj" "${mvopt[@]}" -utf8 -out "$csr" \
    || die "cannot create CSR for '$subj'"
  leaf_ext "$ext" "$kind" "$san"
  if [[ -n $NOT_BEFORE || -n $NOT_AFTER ]]; then
    sign_with_window "$cacrt" "$cakey" "$csr" "$ext" "$days" "$out" \
      || die "cannot sign certificate for '$subj' with $cacrt (validity $NOT_BEFORE..$NOT_AFTER)"
    return 0
  fi
  "$OPENSSL" x509 -req -in "$csr" -CA "$cacrt" -CAkey "$cakey" -set_serial "$(serial)" \
    -days "$days" -sha256 -extfile "$ext" -extensions ext -out "$out" 2>/dev/null \
    || die "cannot sign certificate for '$subj' with $cacrt"
}

# YYYYMMDDHHMMSSZ -> seconds since the epoch (GNU date)
gt_to_epoch() {
  local t=$1
  date -u -d "${t:0:4}-${t:4:2}-${t:6:2} ${t:8:2}:${t:10:2}:${t:12:2}" +%s
}
epoch_to_gt() { date -u -d "@$1" +%Y%m%d%H%M%SZ; }

# sign_with_window CA_CERT CA_KEY CSR EXTFILE DAYS OUTCERT
# OpenSSL 3.0's `x509 -req` cannot set notBefore; `openssl ca` can (-startdate/-enddate). It
# needs a database: a throwaway one in $WORK. The subject is copied from the CSR unchanged
# (-preserveDN and an empty policy), so odd test subjects survive as they are.
sign_with_window() {
  local cacrt=$1 cakey=$2 csr=$3 ext=$4 days=$5 out=$6
  local db="$WORK/ca-db" start end
  rm -rf -- "$db"; mkdir -p -- "$db/new"
  : >"$db/index.txt"
  "$OPENSSL" rand -hex 16 >"$db/serial"
  start=${NOT_BEFORE:-$(epoch_to_gt "$(date -u +%s)")}
  if [[ -n $NOT_AFTER ]]; then
    end=$NOT_AFTER
  else
    end=$(epoch_to_gt $(( $(gt_to_epoch "$start") + days * 86400 )))
  fi
  (( $(gt_to_epoch "$start") <= $(gt_to_epoch "$end") )) \
    || { echo "$PROG: --not-before $start is after --not-after $end" >&2; return 1; }
  {
    echo "[ca]"
    echo "default_ca = throwaway"
    echo "[throwaway]"
    echo "database = $db/index.txt"
    echo "serial = $db/serial"
    echo "new_certs_dir = $db/new"
    echo "default_md = sha256"
    echo "policy = anything"
    echo "unique_subject = no"
    echo "email_in_dn = no"
    echo "preserve = yes"
    echo "copy_extensions = none"
    echo "[anything]"
    cat -- "$ext"
  } >"$db/ca.cnf"
  "$OPENSSL" ca -batch -notext -utf8 -preserveDN -config "$db/ca.cnf" -cert "$cacrt" \
    -keyfile "$cakey" -in "$csr" -startdate "$start" -enddate "$end" -extensions ext \
    -out "$out" >/dev/null 2>"$db/err" \
    || { cat -- "$db/err" >&2; return 1; }
}

pubkey_of_cert() { "$OPENSSL" x509 -in "$1" -noout -pubkey 2>/dev/null; }
pubkey_of_key()  { "$OPENSSL" pkey -in "$1" -pubout 2>/dev/null; }

# cert_ok CERT KEY CA [SUBJECT_RFC2253]: cert/key pair exists, matches, chains to CA,
# is valid for at least another 7 days and (optionally) has the expected subject.
cert_ok() {
  local crt=$1 key=$2 ca=$3 want=${4:-}
  [[ -s $crt && -s $key ]] || return 1
  "$OPENSSL" x509 -in "$crt" -noout -checkend $((7*86400)) >/dev/null 2>&1 || return 1
  "$OPENSSL" verify -CAfile "$ca" "$crt" >/dev/null 2>&1 || return 1
  [[ "$(pubkey_of_cert "$crt")" == "$(pubkey_of_key "$key")" ]] || return 1
  if [[ -n $want ]]; then
    local got
    got=$("$OPENSSL" x509 -in "$crt" -noout -subject -nameopt RFC2253 2>/dev/null) || return 1
    [[ "${got#subject=}" == "$want" ]] || return 1
  fi
  return 0
}

check_ca() { # check_ca CERT KEY
  [[ -s $1 ]] || die "CA certificate '$1' not found"
  [[ -s $2 ]] || die "CA key '$2' not found"
  [[ "$(pubkey_of_cert "$1")" == "$(pubkey_of_key "$2")" ]] \
    || die "CA key '$2' does not match CA certificate '$1'"
}

valid_tool_name() {
  [[ $1 =~ ^[a-z0-9][a-z0-9._-]{0,62}$ && $1 != *..* ]]
}

# ---------------------------------------------------------------- building blocks

make_ca() { # make_ca CERT KEY
  local crt=$1 key=$2 cnf="$WORK/ca.cnf" k="$WORK/ca.key" c="$WORK/ca.crt"
  cat >"$cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca_ext
[dn]
O = toolforge-dev
CN = jobs-gateway dev CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign, digitalSignature
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  genkey "$k"
  "$OPENSSL" req -x509 -new -config "$cnf" -key "$k" -days 3650 -sha256 \
    -set_serial "$(serial)" -out "$c" 2>/dev/null || die "cannot create CA"
  install_atomic "$k" "$key" 0600
  install_atomic "$c" "$crt" 0644
}

# mint_pair CA_CERT CA_KEY OUTCRT OUTKEY SUBJ DAYS KIND SAN [MULTIVALUE]
# Key is renamed into place first, certificate second (watchers of the cert see a matching key).
mint_pair() {
  local cacrt=$1 cakey=$2 outcrt=$3 outkey=$4 subj=$5 days=$6 kind=$7 san=$8 mv=${9:-}
  local k="$WORK/leaf.key" c="$WORK/leaf.crt"
  rm -f -- "$k" "$c"
  genkey "$k"
  sign_leaf "$cacrt" "$cakey" "$k" "$subj" "$days" "$kind" "$san" "$c" "$mv"
  install_atomic "$k" "$outkey" 0600
  install_atomic "$c" "$outcrt" 0644
}

kubeconfig_text() { # kubeconfig_text NAME SERVER CA_ABS CRT_ABS KEY_ABS
  local name=$1 server=$2 ca=$3 crt=$4 key=$5
  cat <<EOF
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: ${ca}
    server: ${server}
  name: toolforge
contexts:
- context:
    cluster: toolforge
    namespace: tool-${name}
    user: tf-${name}
  name: toolforge
current-context: toolforge
preferences: {}
users:
- name: tf-${name}
  user:
    client-certificate: ${crt}
    client-key: ${key}
EOF
}

# mint_tool CA_CERT CA_KEY ROOT NAME KUBE_URL KUBE_CA DAYS REUSE(0|1)
mint_tool() {
  local cacrt=$1 cakey=$2 root=$3 name=$4 url=$5 kubeca=$6 days=$7 reuse=$8
  valid_tool_name "$name" || die "invalid tool name '$name'"
  mkdir -p -- "$root"
  root=$(cd -- "$root" && pwd -P)
  local home="$root/$name"
  local dir="$home/.toolskube" crt="$home/.toolskube/client.crt" key="$home/.toolskube/client.key"
  local kc="$home/.kube/config"
  mkdir -p -- "$dir" "$home/.kube"
  # files inherit the owner of an existing home (like a real tool home); only effective as root
  CHOWN_TO=""
  if [[ $(id -u) == 0 ]]; then CHOWN_TO=$(stat -c '%u:%g' -- "$home"); fi
  if [[ $reuse == 1 ]] && cert_ok "$crt" "$key" "$cacrt" "CN=${name},O=toolforge"; then
    say "kept   $crt"
    say "kept   $key"
  else
    # Go/Kubernetes order (O before CN) so RFC 2253 renders "CN=<name>,O=toolforge"
    mint_pair "$cacrt" "$cakey" "$crt" "$key" "/O=toolforge/CN=${name}" "$days" client ""
    say "wrote  $key"
    say "wrote  $crt"
  fi
  kubeconfig_text "$name" "$url" "$kubeca" "$crt" "$key" >"$WORK/kubeconfig"
  if [[ $reuse == 1 && -f $kc ]] && cmp -s "$WORK/kubeconfig" "$kc"; then
    say "kept   $kc"
  else
    install_atomic "$WORK/kubeconfig" "$kc" 0600
    say "wrote  $kc"
  fi
  CHOWN_TO=""
}

# ---------------------------------------------------------------- subcommands

CA_CERT="" CA_KEY="" OUT="" TOOL_ROOT="" TOOLS="" KUBE_URL="https://127.0.0.1:6443" KUBE_CA=""
DAYS="" FORCE=0 SUBJ="" SERVER=0 NAMES=() NOT_BEFORE="" NOT_AFTER="" CA_DIR=""

parse_args() {
  while (($#)); do
    case "$1" in
      --ca-cert)   CA_CERT=${2:?}; shift 2 ;;
      --ca-key)    CA_KEY=${2:?}; shift 2 ;;
      --out)       OUT=${2:?}; shift 2 ;;
      --tool-root) TOOL_ROOT=${2:?}; shift 2 ;;
      --tools)     TOOLS=${2-}; shift 2 ;;
      --kube-url)  KUBE_URL=${2:?}; shift 2 ;;
      --kube-ca)   KUBE_CA=${2:?}; shift 2 ;;
      --days)      DAYS=${2:?}; shift 2 ;;
      --key-alg)   KEY_ALG=${2:?}; shift 2 ;;
      --subj)      SUBJ=${2:?}; shift 2 ;;
      --not-before) NOT_BEFORE=${2:?}; shift 2 ;;
      --not-after) NOT_AFTER=${2:?}; shift 2 ;;
      --ca)        CA_DIR=${2:?}; shift 2 ;;
      --server)    SERVER=1; shift ;;
      --force)     FORCE=1; shift ;;
      -h|--help)   usage 0 ;;
      --)          shift; NAMES+=("$@"); break ;;
      -*)          die "unknown option '$1'" ;;
      *)           NAMES+=("$1"); shift ;;
    esac
  done
  if [[ -n $DAYS && ! $DAYS =~ ^[0-9]+$ ]]; then die "--days must be a number"; fi
  # --days 0 is allowed: gives an already-expiring certificate for tests
  local t
  for t in "$NOT_BEFORE" "$NOT_AFTER"; do
    [[ -z $t ]] && continue
    [[ $t =~ ^[0-9]{14}Z$ ]] || die "--not-before/--not-after take YYYYMMDDHHMMSSZ (UTC), not '$t'"
    gt_to_epoch "$t" >/dev/null 2>&1 || die "not a valid time: '$t'"
  done
  return 0
}

cmd_all() {
  parse_args "$@"
  [[ -n $OUT ]] || die "all: --out DIR is required"
  ((${#NAMES[@]} == 0)) || die "all: unexpected argument '${NAMES[0]}'"
  if [[ -n $TOOLS && -z $TOOL_ROOT ]]; then die "all: --tools needs --tool-root"; fi
  mkdir -p -- "$OUT"
  OUT=$(cd -- "$OUT" && pwd -P)
  local days=${DAYS:-825} reuse=$((1 - FORCE))
  local ca="$OUT/ca.crt" cakey
  if [[ -n $CA_CERT || -n $CA_KEY ]]; then
    [[ -n $CA_CERT && -n $CA_KEY ]] || die "all: give both --ca-cert and --ca-key"
    check_ca "$CA_CERT" "$CA_KEY"
    CA_CERT=$(abspath "$CA_CERT"); CA_KEY=$(abspath "$CA_KEY")
    cakey=$CA_KEY
    if [[ "$CA_CERT" != "$ca" ]]; then
      if [[ -f $ca ]] && cmp -s "$CA_CERT" "$ca"; then
        say "kept   $ca"
      else
        install_atomic "$CA_CERT" "$ca" 0644
        say "wrote  $ca (copy of $CA_CERT)"
      fi
    fi
  else
    cakey="$OUT/ca.key"
    if [[ $FORCE == 0 && -s $ca && -s $cakey ]] \
       && "$OPENSSL" x509 -in "$ca" -noout -checkend $((30*86400)) >/dev/null 2>&1 \
       && [[ "$(pubkey_of_cert "$ca")" == "$(pubkey_of_key "$cakey")" ]]; then
      say "kept   $ca"
      say "kept   $cakey"
    else
      make_ca "$ca" "$cakey"
      reuse=0   # new CA: everything below must be re-signed
      say "wrote  $cakey"
      say "wrote  $ca"
    fi
  fi

  if [[ $reuse == 1 ]] && cert_ok "$OUT/gateway.crt" "$OUT/gateway.key" "$ca" "CN=jobs-gateway"; then
    say "kept   $OUT/gateway.crt"
    say "kept   $OUT/gateway.key"
  else
    mint_pair "$ca" "$cakey" "$OUT/gateway.crt" "$OUT/gateway.key" "/CN=jobs-gateway" "$days" \
      server "DNS:localhost, IP:127.0.0.1"
    say "wrote  $OUT/gateway.key"
    say "wrote  $OUT/gateway.crt"
  fi

  if [[ $reuse == 1 ]] && cert_ok "$OUT/ingress-client.crt" "$OUT/ingress-client.key" "$ca" \
       "CN=jobs-ingress,O=toolforge-infra"; then
    say "kept   $OUT/ingress-client.crt"
    say "kept   $OUT/ingress-client.key"
  else
    mint_pair "$ca" "$cakey" "$OUT/ingress-client.crt" "$OUT/ingress-client.key" \
      "/O=toolforge-infra/CN=jobs-ingress" "$days" client ""
    say "wrote  $OUT/ingress-client.key"
    say "wrote  $OUT/ingress-client.crt"
  fi

  if [[ -n $TOOLS ]]; then
    local kubeca=${KUBE_CA:-$ca} t
    kubeca=$(abspath "$kubeca")
    for t in $TOOLS; do
      mint_tool "$ca" "$cakey" "$TOOL_ROOT" "$t" "$KUBE_URL" "$kubeca" "$days" "$reuse"
    done
  fi
}

cmd_tool() {
  parse_args "$@"
  [[ -n $CA_CERT && -n $CA_KEY ]] || die "tool: --ca-cert and --ca-key are required"
  [[ -n $TOOL_ROOT ]] || die "tool: --tool-root is required"
  ((${#NAMES[@]} >= 1)) || die "tool: NAME is required"
  check_ca "$CA_CERT" "$CA_KEY"
  local kubeca=${KUBE_CA:-$CA_CERT} n
  kubeca=$(abspath "$kubeca")
  for n in "${NAMES[@]}"; do
    mint_tool "$CA_CERT" "$CA_KEY" "$TOOL_ROOT" "$n" "$KUBE_URL" "$kubeca" "${DAYS:-365}" 0
  done
}

cmd_client() {
  parse_args "$@"
  if [[ -n $CA_DIR ]]; then
    # another CA (e.g. one the gateway does not trust): DIR/ca.crt + DIR/ca.key, made if missing
    [[ -z $CA_CERT && -z $CA_KEY ]] || die "client: give either --ca DIR or --ca-cert/--ca-key"
    mkdir -p -- "$CA_DIR"
    CA_CERT="$CA_DIR/ca.crt"; CA_KEY="$CA_DIR/ca.key"
    if [[ ! -s $CA_CERT || ! -s $CA_KEY ]]; then
      make_ca "$CA_CERT" "$CA_KEY"
      say "wrote  $(abspath "$CA_KEY")"
      say "wrote  $(abspath "$CA_CERT")"
    fi
  fi
  [[ -n $CA_CERT && -n $CA_KEY ]] || die "client: --ca-cert and --ca-key (or --ca DIR) are required"
  [[ -n $OUT ]] || die "client: --out PREFIX is required"
  [[ -n $SUBJ ]] || die "client: --subj is required"
  ((${#NAMES[@]} == 0)) || die "client: unexpected argument '${NAMES[0]}'"
  check_ca "$CA_CERT" "$CA_KEY"
  local mv="" kind=client san=""
  if [[ $SUBJ == *+* ]]; then mv=1; fi
  if [[ $SERVER == 1 ]]; then kind=server; san="DNS:localhost, IP:127.0.0.1"; fi
  mint_pair "$CA_CERT" "$CA_KEY" "$OUT.crt" "$OUT.key" "$SUBJ" "${DAYS:-365}" "$kind" "$san" "$mv"
  say "wrote  $(abspath "$OUT.key")"
  say "wrote  $(abspath "$OUT.crt")"
}

(($#)) || usage 2
sub=$1; shift
case "$sub" in
  all)    cmd_all "$@" ;;
  tool)   cmd_tool "$@" ;;
  client) cmd_client "$@" ;;
  -h|--help|help) usage 0 ;;
  *) die "unknown subcommand '$sub' (all|tool|client)" ;;
esac
