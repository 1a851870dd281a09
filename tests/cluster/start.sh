#!/usr/bin/env bash
# Start (or restart) a local one-node Kubernetes cluster for the integration tests, from
# build.sh's and image.sh's cache, every port on 127.0.0.1:
#   control plane  etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#   node           registry (the node's images), containerd (+ runc, CNI bridge), kubelet
#
#   start.sh RUN_DIR [COMPONENT...]      COMPONENT: one of the names above
#   start.sh RUN_DIR --control-plane     etcd kube-apiserver kube-controller-manager (no pods run)
#   start.sh RUN_DIR --apiserver-only    same as: start.sh RUN_DIR kube-apiserver
#
# Idempotent: every named component (all by default) that is not running is started,
# the others are left alone. A RUN_DIR keeps its CA, certificates, ports and etcd data,
# so after `stop.sh RUN_DIR kube-apiserver` (or a full stop.sh), `start.sh RUN_DIR`
# brings the cluster back as it was. It returns once /readyz is ok, the
# controller-manager has made the "default" ServiceAccount of namespace default and, when
# the kubelet runs, the node is Ready and a probe pod has run to completion.
#
# Environment:
#   TJF_CLUSTER_CACHE       where build.sh put bin/ (default /var/cache/tjf-cluster)
#   TJF_KUBE_PORT           apiserver port for a new RUN_DIR (default: a free port)
#   TJF_KUBE_START_TIMEOUT  seconds to wait for each component (default 120)
#   TJF_APISERVER_EXTRA_ARGS  more kube-apiserver flags, separated by spaces, each one
#                           --name=value (e.g. "--max-requests-inflight=6"); they are added
#                           after start.sh's own, so they win, and hold for this start only
#                           (a restart without them starts the apiserver as usual)
#
# Writes in RUN_DIR: env (source it), admin.kubeconfig, pki/, audit.log,
# audit-policy.yaml, logs/, pids/, cluster.conf (ports and etcd data path), images.yaml
# (the gateway's image list naming the registry's images), node/ (containerd, kubelet, CNI
# and registry state). Outside it: a bridge tjf<hash>, cgroups /sys/fs/cgroup/*/tjf-<hash>,
# and the kubelet's /var/lib/kubelet/device-plugins; stop.sh removes all of them.
set -euo pipefail

usage() { echo "usage: start.sh RUN_DIR [--control-plane | --apiserver-only | COMPONENT...]" >&2; exit 2; }
(($# >= 1)) || usage
[[ $1 != -* ]] || usage

cache=${TJF_CLUSTER_CACHE:-/var/cache/tjf-cluster}
bin=$cache/bin
timeout=${TJF_KUBE_START_TIMEOUT:-120}
host=127.0.0.1
ALL_COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler registry containerd kubelet)
NODE_NAME=127.0.0.1 # kubelet takes a node name that is an IP as its address (the node is loopback only)

log() { printf '%s start.sh: %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { date +%s%3N; }

mkdir -p -- "$1"
run_dir=$(cd -- "$1" && pwd -P)
shift
wanted=()
for arg in "$@"; do
  case $arg in
    --apiserver-only) wanted+=(kube-apiserver) ;;
    --control-plane) wanted+=(etcd kube-apiserver kube-controller-manager) ;;
    etcd | kube-apiserver | kube-controller-manager | kube-scheduler | registry | containerd | kubelet) wanted+=("$arg") ;;
    *) usage ;;
  esac
done
((${#wanted[@]})) || wanted=("${ALL_COMPONENTS[@]}")

for c in "${ALL_COMPONENTS[@]}" ctr runc containerd-shim-runc-v2 cni/bridge cni/host-local cni/loopback; do
  [[ -x $bin/$c ]] || die "$bin/$c is missing: run tests/cluster/build.sh first"
done
for t in openssl curl setsid base64 python3 ip pgrep ps umount flock; do
  command -v "$t" >/dev/null || die "$t is required"
done
# Every address here is loopback: never through a proxy (curl, python, the daemons).
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
read -ra apiserver_extra <<<"${TJF_APISERVER_EXTRA_ARGS:-}"
for arg in "${apiserver_extra[@]}"; do
  [[ $arg == --?*=* ]] || die "TJF_APISERVER_EXTRA_ARGS: '$arg' is not --name=value"
done
# The node is written for cgroup v1 (the kubelet's cgroup root in each hierarchy).
if [[ $(stat -fc %T /sys/fs/cgroup 2>/dev/null) == cgroup2fs ]]; then
  die "this machine has a unified cgroup v2 hierarchy; the local node needs cgroup v1 (or the hybrid layout)"
fi

pki=$run_dir/pki
logs=$run_dir/logs
pids=$run_dir/pids
conf=$run_dir/cluster.conf
mkdir -p "$pki" "$logs" "$pids"
chmod 700 "$pki"

# Serialise concurrent start.sh/stop.sh runs on the same RUN_DIR.
exec 8>"$run_dir/.lock"
flock 8

# If this run fails, stop what it started (and only that), so no half cluster is left.
script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
started=()
on_exit() {
  local rc=$?
  if ((rc != 0 && ${#started[@]})); then
    exec 8>&- # stop.sh takes the same lock
    log "stopping what this run started: ${started[*]}"
    bash "$script_dir/stop.sh" "$run_dir" "${started[@]}" || true
  fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- ports and paths
port_in_use() { (exec 3<>"/dev/tcp/$host/$1") 2>/dev/null; }
free_port() {
  local p _
  for _ in $(seq 200); do
    # Below the usual ephemeral range (32768+) so outgoing connections don't take it.
    p=$((10000 + RANDOM % 22000))
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  die "found no free port on $host"
}

if [[ -f $conf ]]; then
  # shellcheck source=/dev/null
  . "$conf"
  if [[ -n ${TJF_KUBE_PORT:-} && $TJF_KUBE_PORT != "$KUBE_PORT" ]]; then
    die "$run_dir already uses apiserver port $KUBE_PORT (TJF_KUBE_PORT=$TJF_KUBE_PORT); use a new RUN_DIR"
  fi
else
  KUBE_PORT=${TJF_KUBE_PORT:-$(free_port)}
  [[ $KUBE_PORT =~ ^[0-9]+$ ]] || die "TJF_KUBE_PORT must be a port number"
  ETCD_PORT=$(free_port)
  ETCD_PEER_PORT=$(free_port)
  while [[ $ETCD_PORT == "$KUBE_PORT" || $ETCD_PEER_PORT == "$KUBE_PORT" || $ETCD_PEER_PORT == "$ETCD_PORT" ]]; do
    ETCD_PORT=$(free_port)
    ETCD_PEER_PORT=$(free_port)
  done
  # etcd's data in RAM when possible: much faster fsyncs. The name is tied to RUN_DIR.
  if [[ -d /dev/shm && -w /dev/shm ]]; then
    ETCD_DATA=/dev/shm/tjf-cluster-$(printf '%s' "$run_dir" | sha256sum | cut -c1-16)/etcd
  else
    ETCD_DATA=$run_dir/etcd-data
  fi
  cat >"$conf" <<EOF
# Written by tests/cluster/start.sh when this RUN_DIR was created; reused on restarts.
KUBE_PORT=$KUBE_PORT
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
ETCD_DATA=$ETCD_DATA
EOF
fi
# Node settings, added to the cluster.conf of a RUN_DIR made before the node existed.
if [[ -z ${REGISTRY_PORT:-} ]]; then
  REGISTRY_PORT=$(free_port)
  KUBELET_PORT=$(free_port)
  KUBELET_HEALTHZ_PORT=$(free_port)
  NODE_ID=$(printf '%s' "$run_dir" | sha256sum | cut -c1-8)
  cat >>"$conf" <<EOF
REGISTRY_PORT=$REGISTRY_PORT
KUBELET_PORT=$KUBELET_PORT
KUBELET_HEALTHZ_PORT=$KUBELET_HEALTHZ_PORT
NODE_ID=$NODE_ID
EOF
fi
mkdir -p "$ETCD_DATA"
chmod 700 "$ETCD_DATA"
[[ $ETCD_DATA == "$run_dir"/* ]] || ln -sfn "$ETCD_DATA" "$run_dir/etcd-data"
kube_url=https://$host:$KUBE_PORT
etcd_url=http://$host:$ETCD_PORT
registry=$host:$REGISTRY_PORT
node_dir=$run_dir/node
containerd_sock=$node_dir/containerd/containerd.sock
bridge=tjf$NODE_ID
cgroup_root=/tjf-$NODE_ID
# The pods' network: a bridge without an address on the host, no gateway, no masquerade, no
# default route in the pod (ip_forward stays as it is): pods reach each other and nothing else.
POD_SUBNET=10.213.0.0/24

# ---------------------------------------------------------------- PKI
# One CA signs the apiserver's serving certificate and every client certificate.
# RSA 2048 keys in PKCS#8 PEM, usable by openssl, rustls, rcgen, Go, ...
new_key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.tmp" 2>/dev/null && chmod 600 "$1.tmp" && mv "$1.tmp" "$1"; }

issue() { # issue NAME SUBJECT EXTENSION_LINES...: pki/NAME.crt for pki/NAME.key, signed by the CA
  local name=$1 subject=$2
  shift 2
  [[ -s $pki/$name.crt ]] && return 0
  printf '%s\n' "$@" >"$pki/$name.ext"
  openssl req -new -key "$pki/$name.key" -subj "$subject" |
    openssl x509 -req -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
      -days 3650 -sha256 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.ext"
}

make_pki() {
  local name keygen=() pid
  # RSA key generation is the slow part: make the missing keys in parallel.
  for name in ca apiserver admin kube-controller-manager sa kube-scheduler node kubelet-serving apiserver-kubelet-client; do
    [[ -s $pki/$name.key ]] && continue
    rm -f "$pki/$name.crt"
    new_key "$pki/$name.key" &
    keygen+=($!)
  done
  for pid in "${keygen[@]}"; do wait "$pid" || die "openssl could not generate a key in $pki"; done
  if [[ ! -s $pki/ca.crt ]]; then
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=tjf-cluster-ca" -days 3650 -sha256 \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
      -out "$pki/ca.crt"
    rm -f "$pki/apiserver.crt" "$pki/admin.crt" "$pki/kube-controller-manager.crt" \
      "$pki/kube-scheduler.crt" "$pki/node.crt" "$pki/kubelet-serving.crt" "$pki/apiserver-kubelet-client.crt"
  fi
  local client=("basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment"
    "extendedKeyUsage=clientAuth")
  issue apiserver "/CN=kube-apiserver" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  issue admin "/O=system:masters/CN=tjf-admin" "${client[@]}"
  issue kube-controller-manager "/CN=system:kube-controller-manager" "${client[@]}"
  issue kube-scheduler "/CN=system:kube-scheduler" "${client[@]}"
  # The kubelet: its client identity for the Node authorizer, and its serving certificate,
  # which the apiserver verifies (--kubelet-certificate-authority) when it fetches logs.
  issue node "/O=system:nodes/CN=system:node:$NODE_NAME" "${client[@]}"
  issue kubelet-serving "/CN=$NODE_NAME" \
    "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1"
  # The apiserver's client certificate to the kubelet, which authorises it by webhook.
  issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "${client[@]}"
  [[ -s $pki/sa.pub ]] || openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
}

kubeconfig() { # kubeconfig FILE CERT_NAME USER_NAME
  local file=$1 cert=$2 user=$3
  (
    umask 077
    cat >"$file.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: tjf-cluster
  cluster:
    server: $kube_url
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$pki/$cert.crt")
    client-key-data: $(base64 -w0 "$pki/$cert.key")
contexts:
- name: $user
  context:
    cluster: tjf-cluster
    user: $user
current-context: $user
EOF
    mv "$file.tmp" "$file"
  )
}

audit_policy() {
  cat >"$run_dir/audit-policy.yaml" <<'EOF'
# Who did what to which object, without request or response bodies (level Metadata),
# for every request except these high-volume reads.
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# Reads of bookkeeping objects that controllers poll and watch all the time.
- level: None
  verbs: ["get", "list", "watch"]
  resources:
  - group: ""
    resources: ["events", "endpoints"]
  - group: "events.k8s.io"
    resources: ["events"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
  - group: "discovery.k8s.io"
    resources: ["endpointslices"]
# The apiserver's own loopback reads (bootstrap and internal controllers).
- level: None
  users: ["system:apiserver"]
  verbs: ["get", "list", "watch"]
# Health probes, API discovery, OpenAPI documents, /version.
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/api", "/api/*", "/apis", "/apis/*", "/openapi/*", "/version"]
- level: Metadata
EOF
}

# ---------------------------------------------------------------- processes
pid_of() { [[ -s $pids/$1.pid ]] && cat "$pids/$1.pid"; }

# What identifies our process of COMPONENT in /proc/PID/cmdline besides the program path:
# the RUN_DIR, or for etcd its data directory (whose name is derived from the RUN_DIR).
marker() { if [[ $1 == etcd ]]; then echo "--data-dir=$ETCD_DATA"; else echo "$run_dir/"; fi; }

# running COMPONENT: the recorded PID is alive and is that program, started for this RUN_DIR.
running() {
  local pid cmd
  pid=$(pid_of "$1") || return 1
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmd=$(tr '\0' '\n' <"/proc/$pid/cmdline") || return 1
  [[ $(head -n1 <<<"$cmd") == */"$1" ]] && grep -qF -- "$(marker "$1")" <<<"$cmd"
}

launch() { # launch COMPONENT ARGS...: start in its own session, output to logs/COMPONENT.log
  local c=$1 pid
  shift
  local port
  for port in "${ports_of[@]}"; do
    port_in_use "$port" && die "$host:$port is already taken; cannot start $c (see $conf)"
  done
  printf '\n===== %s start.sh: starting %s\n' "$(date '+%F %T')" "$c" >>"$logs/$c.log"
  # fd 8 holds the RUN_DIR lock: the daemon must not inherit it.
  setsid "$bin/$c" "$@" </dev/null >>"$logs/$c.log" 2>&1 8>&- &
  pid=$!
  echo "$pid" >"$pids/$c.pid"
  started+=("$c")
  sleep 0.1
  running "$c" || { tail -n 20 "$logs/$c.log" >&2; die "$c (pid $pid) exited at once"; }
  log "started $c (pid $pid)"
}

await() { # await COMPONENT DESCRIPTION CHECK...: poll CHECK until it succeeds
  local c=$1 what=$2 deadline=$((SECONDS + timeout))
  shift 2
  until "$@" >/dev/null 2>&1; do
    running "$c" || { tail -n 30 "$logs/$c.log" >&2; die "$c died while waiting for $what (log: $logs/$c.log)"; }
    ((SECONDS < deadline)) || { tail -n 30 "$logs/$c.log" >&2; die "timed out after ${timeout}s waiting for $what"; }
    sleep 0.2
  done
}

admin_curl() { curl --noproxy '*' -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
etcd_healthy() { curl --noproxy '*' -fsS --max-time 2 "$etcd_url/health" | grep -q '"health":"true"'; }
apiserver_ready() { [[ $(admin_curl "$kube_url/readyz") == ok ]]; }
default_sa_ready() {
  # The ServiceAccount controller creates it; the token controller then adds its secret.
  admin_curl "$kube_url/api/v1/namespaces/default/serviceaccounts/default" | grep -q '"secrets"'
}

start_etcd() {
  ports_of=("$ETCD_PORT" "$ETCD_PEER_PORT")
  # A single-member cluster; on a restart the member found in --data-dir is reused
  # and the --initial-* flags are ignored.
  launch etcd \
    --name=tjf \
    --data-dir="$ETCD_DATA" \
    --listen-client-urls="$etcd_url" --advertise-client-urls="$etcd_url" \
    --listen-peer-urls="http://$host:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://$host:$ETCD_PEER_PORT" \
    --initial-cluster="tjf=http://$host:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --logger=zap --log-outputs=stderr
}

start_apiserver() {
  ports_of=("$KUBE_PORT")
  launch kube-apiserver \
    --bind-address=$host --advertise-address=$host \
    --secure-port="$KUBE_PORT" --insecure-port=0 \
    --etcd-servers="$etcd_url" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --cert-dir="$pki" \
    --client-ca-file="$pki/ca.crt" \
    --anonymous-auth=false \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,NodeRestriction,ResourceQuota \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --feature-gates=TTLAfterFinished=true \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc \
    --service-cluster-ip-range=10.0.0.0/24 \
    --endpoint-reconciler-type=none \
    --audit-policy-file="$run_dir/audit-policy.yaml" \
    --audit-log-path="$run_dir/audit.log" \
    --audit-log-format=json --audit-log-mode=blocking --audit-log-maxsize=0 \
    --profiling=false \
    "${apiserver_extra[@]}"
}

start_controller_manager() {
  ports_of=()
  # Serves nothing (--port=0 --secure-port=0); single instance, so no leader election.
  launch kube-controller-manager \
    --kubeconfig="$run_dir/kube-controller-manager.kubeconfig" \
    --bind-address=$host --port=0 --secure-port=0 \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --feature-gates=TTLAfterFinished=true \
    --profiling=false
}

start_scheduler() {
  ports_of=()
  launch kube-scheduler \
    --kubeconfig="$run_dir/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$run_dir/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$run_dir/kube-scheduler.kubeconfig" \
    --bind-address=$host --port=0 --secure-port=0 \
    --leader-elect=false \
    --profiling=false
}

node_files() {
  mkdir -p "$node_dir"/{registry,containerd/certs.d/_default,cni/net.d,cni/ipam,kubelet,kubelet-plugins}
  # The registry: plain HTTP on loopback (containerd is told so below); storage per RUN_DIR.
  cat >"$node_dir/registry.yml" <<EOF
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $node_dir/registry}
  delete: {enabled: true}
http:
  addr: $registry
  secret: tjf-$NODE_ID
EOF
  # Every registry name resolves to the local one (the _default host), so an image reference
  # of any registry is pulled from 127.0.0.1 and no name is ever looked up elsewhere.
  cat >"$node_dir/containerd/certs.d/_default/hosts.toml" <<EOF
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
  skip_verify = true
EOF
  mkdir -p "$node_dir/containerd/certs.d/$registry"
  cp "$node_dir/containerd/certs.d/_default/hosts.toml" "$node_dir/containerd/certs.d/$registry/hosts.toml"
  cat >"$node_dir/containerd.toml" <<EOF
version = 2
root = "$node_dir/containerd/root"
state = "$node_dir/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$containerd_sock"
[ttrpc]
  address = "$containerd_sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$registry/pause:3.4.1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  # this machine refuses a lower oom_score_adj than the caller's own (kubelet asks -998 for sandboxes)
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  max_container_log_line_size = 16384
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$bin/runc"
        Root = "$node_dir/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$bin/cni"
    conf_dir = "$node_dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$node_dir/containerd/certs.d"
EOF
  cat >"$node_dir/cni/net.d/10-tjf.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "tjf-pods-$NODE_ID",
  "plugins": [{
    "type": "bridge",
    "bridge": "$bridge",
    "isGateway": false,
    "isDefaultGateway": false,
    "ipMasq": false,
    "hairpinMode": false,
    "ipam": {"type": "host-local", "dataDir": "$node_dir/cni/ipam", "ranges": [[{"subnet": "$POD_SUBNET"}]]}
  }, {
    "type": "tuning",
    "sysctl": {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
  }]
}
EOF
  # A pod's 127.0.0.1 is its own loopback: a name lookup in a pod goes nowhere.
  echo "nameserver 127.0.0.1" >"$node_dir/resolv.conf"
  cat >"$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $host
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: $host
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true, cacheTTL: 30s}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
  webhook: {cacheAuthorizedTTL: 30s, cacheUnauthorizedTTL: 5s}
cgroupDriver: cgroupfs
cgroupRoot: $cgroup_root
cgroupsPerQOS: true
failSwapOn: false
resolvConf: $node_dir/resolv.conf
makeIPTablesUtilChains: false
serializeImagePulls: false
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
nodeStatusUpdateFrequency: 10s
syncFrequency: 15s
containerLogMaxSize: 10Mi
containerLogMaxFiles: 3
maxPods: 110
EOF
}

# The kubelet's cgroup root must exist in every v1 hierarchy (cpuset needs its cpus and mems).
make_cgroup_root() {
  local d
  for d in /sys/fs/cgroup/*/; do
    [[ -f ${d}cgroup.procs && $d != /sys/fs/cgroup/unified/ ]] || continue
    mkdir -p "$d${cgroup_root#/}"
    if [[ -f ${d}cpuset.cpus ]]; then
      cat "${d}cpuset.cpus" >"$d${cgroup_root#/}/cpuset.cpus"
      cat "${d}cpuset.mems" >"$d${cgroup_root#/}/cpuset.mems"
    fi
  done
}

start_registry() {
  ports_of=("$REGISTRY_PORT")
  node_files
  launch registry serve "$node_dir/registry.yml"
}

registry_up() { curl --noproxy '*' -fsS --max-time 2 "http://$registry/v2/" >/dev/null; }

push_images() {
  local images=$cache/image
  [[ -s $images/STAMP ]] || die "no node images in $images: run tests/cluster/image.sh first"
  python3 "$script_dir/push_image.py" "http://$registry" "$images" pause pause:3.4.1
  # The one root filesystem under the names the tests' and the stack's image list use.
  python3 "$script_dir/push_image.py" "http://$registry" "$images" bookworm \
    toolforge-bookworm-sssd:latest toolforge-python311-sssd-base:latest toolforge-bullseye-sssd:latest
  cat >"$run_dir/images.yaml.tmp" <<EOF
# Written by tests/cluster/start.sh: the gateway's image list (JOBS_GATEWAY_IMAGES_FILE),
# naming the images of this cluster's registry (one Debian bookworm root filesystem).
bookworm:
  state: stable
  aliases: [tf-bookworm]
  variants:
    jobs-framework: {image: $registry/toolforge-bookworm-sssd}
bullseye:
  state: deprecated
  aliases: [tf-bullseye-std]
  variants:
    jobs-framework: {image: $registry/toolforge-bullseye-sssd}
python3.11:
  state: stable
  aliases: [tf-python311]
  variants:
    jobs-framework: {image: $registry/toolforge-python311-sssd-base}
EOF
  mv "$run_dir/images.yaml.tmp" "$run_dir/images.yaml"
}

start_containerd() {
  ports_of=()
  node_files
  mkdir -p "$node_dir/containerd"
  # The shim is found on PATH; runc by its full path (containerd.toml).
  PATH=$bin:$PATH launch containerd --config "$node_dir/containerd.toml"
}

containerd_up() { "$bin/ctr" --address "$containerd_sock" version; }

# The pods' bridge, made before the CNI plugin would: no address of the host's on it, not
# even an IPv6 link-local one (and the pods have IPv6 off: the tuning plugin).
make_bridge() {
  ip link show "$bridge" >/dev/null 2>&1 || ip link add "$bridge" type bridge
  ip link set "$bridge" addrgenmode none 2>/dev/null || true
  if [[ -w /proc/sys/net/ipv6/conf/$bridge/disable_ipv6 ]]; then
    echo 1 >"/proc/sys/net/ipv6/conf/$bridge/disable_ipv6"
  fi
  ip link set "$bridge" up
}

start_kubelet() {
  ports_of=("$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT")
  node_files
  make_cgroup_root
  make_bridge
  mkdir -p "$node_dir/log"
  # the patched kubelet (kubelet_local_patch.py): pod logs under RUN_DIR/node/log, and the
  # machine's kernel settings left alone
  TJF_KUBELET_LOG_ROOT=$node_dir/log TJF_KUBELET_KEEP_SYSCTLS=1 launch kubelet \
    --config="$node_dir/kubelet.yaml" \
    --kubeconfig="$run_dir/kubelet.kubeconfig" \
    --container-runtime=remote \
    --container-runtime-endpoint="unix://$containerd_sock" \
    --runtime-request-timeout=5m \
    --root-dir="$node_dir/kubelet" \
    --volume-plugin-dir="$node_dir/kubelet-plugins" \
    --cert-dir="$pki" \
    --hostname-override="$NODE_NAME" \
    --register-node=true \
    --v=1
}

kubelet_healthy() { [[ $(curl --noproxy '*' -fsS --max-time 2 "http://$host:$KUBELET_HEALTHZ_PORT/healthz") == ok ]]; }
node_ready() {
  admin_curl "$kube_url/api/v1/nodes/$NODE_NAME" |
    python3 -c 'import json,sys; n=json.load(sys.stdin); sys.exit(0 if any(c["type"]=="Ready" and c["status"]=="True" for c in n["status"]["conditions"]) else 1)'
}

# A pod that runs to completion shows that scheduling, image pulls, the sandbox, CNI and runc
# all work. It runs in namespace default and is deleted afterwards.
probe_pod() {
  local name=tjf-node-probe phase deadline=$((SECONDS + timeout))
  admin_curl -X DELETE "$kube_url/api/v1/namespaces/default/pods/$name?gracePeriodSeconds=0" >/dev/null 2>&1 || true
  while admin_curl "$kube_url/api/v1/namespaces/default/pods/$name" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "the old probe pod does not go away"
    sleep 0.2
  done
  admin_curl -X POST -H 'Content-Type: application/json' "$kube_url/api/v1/namespaces/default/pods" \
    -d "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"$name\"},\"spec\":{\"restartPolicy\":\"Never\",\"automountServiceAccountToken\":false,\"containers\":[{\"name\":\"probe\",\"image\":\"$registry/toolforge-bookworm-sssd:latest\",\"command\":[\"python3\",\"-c\",\"print('tjf node ok')\"]}]}}" >/dev/null
  while :; do
    phase=$(admin_curl "$kube_url/api/v1/namespaces/default/pods/$name" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("status",{}).get("phase",""))' || true)
    [[ $phase == Succeeded ]] && break
    [[ $phase == Failed ]] && die "the probe pod failed: $(admin_curl "$kube_url/api/v1/namespaces/default/pods/$name")"
    running kubelet || die "the kubelet died while the probe pod ran (log: $logs/kubelet.log)"
    ((SECONDS < deadline)) || { tail -n 30 "$logs/kubelet.log" >&2; die "timed out after ${timeout}s waiting for the probe pod (phase '$phase')"; }
    sleep 0.3
  done
  [[ $(admin_curl "$kube_url/api/v1/namespaces/default/pods/$name/log") == "tjf node ok" ]] ||
    die "the probe pod's log (through the apiserver and the kubelet) is not 'tjf node ok'"
  admin_curl -X DELETE "$kube_url/api/v1/namespaces/default/pods/$name?gracePeriodSeconds=0" >/dev/null
}

write_env() {
  {
    printf '# Written by tests/cluster/start.sh; use: . %q\n' "$run_dir/env"
    printf 'export TJF_KUBE_URL=%q\n' "$kube_url"
    printf 'export TJF_KUBE_CA=%q\n' "$pki/ca.crt"
    printf 'export TJF_KUBE_CA_KEY=%q\n' "$pki/ca.key"
    printf 'export TJF_KUBE_ADMIN_KUBECONFIG=%q\n' "$run_dir/admin.kubeconfig"
    printf 'export TJF_KUBE_ADMIN_CERT=%q\n' "$pki/admin.crt"
    printf 'export TJF_KUBE_ADMIN_KEY=%q\n' "$pki/admin.key"
    printf 'export TJF_KUBE_AUDIT_LOG=%q\n' "$run_dir/audit.log"
    printf 'export TJF_KUBE_RUN_DIR=%q\n' "$run_dir"
    printf 'export KUBECONFIG=%q\n' "$run_dir/admin.kubeconfig"
    printf 'export TJF_REGISTRY=%q\n' "$registry"
    # the image list exists once the registry has started (not with --control-plane)
    if [[ -s $run_dir/images.yaml ]]; then printf 'export TJF_IMAGES_FILE=%q\n' "$run_dir/images.yaml"; fi
    printf 'export TJF_NODE_NAME=%q\n' "$NODE_NAME"
    if running kubelet; then printf 'export TJF_NODE=1\n'; else printf 'export TJF_NODE=\n'; fi
  } >"$run_dir/env.tmp"
  mv "$run_dir/env.tmp" "$run_dir/env"
}

wanted_has() { local c; for c in "${wanted[@]}"; do [[ $c == "$1" ]] && return 0; done; return 1; }

t0=$(now_ms)
make_pki
kubeconfig "$run_dir/admin.kubeconfig" admin tjf-admin
kubeconfig "$run_dir/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
kubeconfig "$run_dir/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
kubeconfig "$run_dir/kubelet.kubeconfig" node "system:node:$NODE_NAME"
audit_policy
timing="pki $(($(now_ms) - t0)) ms"

for c in "${ALL_COMPONENTS[@]}"; do
  if running "$c"; then
    log "$c is already running (pid $(pid_of "$c"))"
    continue
  fi
  wanted_has "$c" || continue
  t=$(now_ms)
  case $c in
    etcd)
      start_etcd
      await etcd "etcd health" etcd_healthy
      ;;
    kube-apiserver)
      running etcd || log "warning: etcd is not running; kube-apiserver cannot get ready without it"
      start_apiserver
      await kube-apiserver "kube-apiserver /readyz" apiserver_ready
      ;;
    kube-controller-manager)
      start_controller_manager
      ;;
    kube-scheduler)
      start_scheduler
      ;;
    registry)
      start_registry
      await registry "the registry" registry_up
      push_images
      ;;
    containerd)
      start_containerd
      await containerd "containerd's API" containerd_up
      ;;
    kubelet)
      running containerd || die "the kubelet needs containerd: start.sh $run_dir containerd kubelet"
      start_kubelet
      await kubelet "the kubelet's /healthz" kubelet_healthy
      ;;
  esac
  timing+=", $c $(($(now_ms) - t)) ms"
done

# Whatever was (re)started, report success only once the running parts are ready.
t=$(now_ms)
if running etcd; then await etcd "etcd health" etcd_healthy; fi
if running kube-apiserver; then await kube-apiserver "kube-apiserver /readyz" apiserver_ready; fi
if running kube-apiserver && running kube-controller-manager; then
  await kube-controller-manager "the default ServiceAccount in namespace default" default_sa_ready
fi
if running kubelet; then
  await kubelet "node $NODE_NAME Ready" node_ready
  running registry && [[ -s $run_dir/images.yaml ]] || die "the node needs the registry: start.sh $run_dir registry"
  running kube-scheduler || die "the node needs kube-scheduler to run pods: start.sh $run_dir kube-scheduler"
  probe_pod
fi
timing+=", final readiness $(($(now_ms) - t)) ms"
write_env

for c in "${ALL_COMPONENTS[@]}"; do
  running "$c" || log "note: $c is not running"
done
log "cluster at $kube_url is up after $(($(now_ms) - t0)) ms ($timing)"
log "use it with: . $run_dir/env      stop it with: tests/cluster/stop.sh $run_dir"
