#!/usr/bin/env bash
# Build the binaries of the local test cluster: kube-apiserver, kube-controller-manager,
# kube-scheduler and kubelet (Kubernetes v1.20.2, with CronJob also served as batch/v1),
# etcd 3.4, and the node's runtime (containerd, runc, CNI plugins) and image registry,
# using only Debian bookworm's archive through apt.
#
#   bash tests/cluster/build.sh
#
# Result: $TJF_CLUSTER_CACHE/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,
# kubelet,etcd,containerd,containerd-shim-runc-v2,ctr,runc,registry,cni/,STAMP}
# The first run takes about 9 minutes on 2 cores; later runs see a matching STAMP and
# return at once. Then it runs image.sh (the node's images, cached the same way). See
# README.md beside this file.
#
# Environment:
#   TJF_CLUSTER_CACHE            cache directory (default /var/cache/tjf-cluster)
#   TJF_CLUSTER_KEEP_BUILD_TREE  1 = keep $CACHE/tree (sources + Go build cache, ~2.5 GB)
#                                after the build, for debugging (default: removed)
#
# Where things come from (Debian bookworm, main):
#   source package kubernetes 1.20.5+really1.20.2-*: its orig tarball is upstream v1.20.2,
#     vendor/ included (the Debian patches only concern kubectl and are not used)
#   golang-1.19-go, golang-1.19-src: the Go toolchain (unpacked, never installed)
#   etcd-server: etcd 3.4 (unpacked, never installed, so no system service appears)
#   golang-github-modern-go-reflect2-dev, golang-github-json-iterator-go-dev: replace
#     the copies vendored by v1.20 (reflect2 1.0.1, json-iterator 1.1.10), which make
#     every JSON request body crash the apiserver when built with Go >= 1.18
#   protobuf-compiler, libprotoc32, libprotobuf32, golang-golang-x-tools (goimports):
#     needed by go-to-protobuf, to regenerate protobuf code after the CronJob backport
#   containerd, runc, containernetworking-plugins, docker-registry: the node's container
#     runtime, CNI plugins and the local image registry (unpacked, never installed)
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
backport=$script_dir/cronjob_v1_backport.py
kubelet_patch=$script_dir/kubelet_local_patch.py

cache=${TJF_CLUSTER_CACHE:-/var/cache/tjf-cluster}
keep_tree=${TJF_CLUSTER_KEEP_BUILD_TREE:-0}

# Bump RECIPE whenever this script changes what it produces; the backport's hash is
# part of the stamp key too, so editing the backport also triggers a rebuild.
RECIPE=tjf-cluster-build/3
VERSION_SUFFIX=+tjf.cronjob-v1
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet)
# Node runtime binaries copied from Debian's packages: bin/NAME <- the package's path.
RUNTIME=(containerd:/usr/bin/containerd containerd-shim-runc-v2:/usr/bin/containerd-shim-runc-v2
  ctr:/usr/bin/ctr runc:/usr/sbin/runc registry:/usr/bin/docker-registry
  cni/bridge:/usr/lib/cni/bridge cni/host-local:/usr/lib/cni/host-local cni/loopback:/usr/lib/cni/loopback
  cni/tuning:/usr/lib/cni/tuning)
DEBS=(golang-1.19-go golang-1.19-src etcd-server
  golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev
  protobuf-compiler libprotoc32 libprotobuf32 golang-golang-x-tools
  containerd runc containernetworking-plugins docker-registry)

bin=$cache/bin
downloads=$cache/downloads
aptdir=$cache/apt
logs=$cache/logs
tree=$cache/tree

log() { printf '%s build.sh: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp_key() {
  local sum patch
  sum=$(sha256sum <"$backport" | cut -d' ' -f1)
  patch=$(sha256sum <"$kubelet_patch" | cut -d' ' -f1)
  echo "recipe: $RECIPE backport-sha256=$sum kubelet-patch-sha256=$patch"
}

up_to_date() {
  local c
  [[ -f $bin/STAMP ]] || return 1
  [[ $(head -n1 "$bin/STAMP") == "$(stamp_key)" ]] || return 1
  for c in "${COMPONENTS[@]}" etcd "${RUNTIME[@]%%:*}"; do
    [[ -x $bin/$c && -s $bin/$c ]] || return 1
  done
}

child=
cleanup() {
  local rc=$?
  if [[ -n $child ]] && kill -0 "$child" 2>/dev/null; then
    kill "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  rm -rf "$bin.new"
  if [[ -d $tree && $keep_tree != 1 ]]; then
    rm -rf "$tree"
  fi
  if [[ $rc != 0 ]]; then
    log "build failed (exit $rc); logs are in $logs/"
  fi
}

# run_logged LABEL LOGFILE CMD...: run CMD with its output in LOGFILE, reporting every 30 s.
run_logged() {
  local label=$1 logfile=$2 t0=$SECONDS next rc=0
  shift 2
  "$@" >"$logfile" 2>&1 &
  child=$!
  next=$((t0 + 30))
  while kill -0 "$child" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)); then
      log "  ... $label still running ($((SECONDS - t0)) s)"
      next=$((next + 30))
    fi
  done
  wait "$child" || rc=$?
  child=
  if ((rc != 0)); then
    tail -n 40 "$logfile" >&2 || true
    die "$label failed (exit $rc), full log: $logfile"
  fi
  log "$label: done in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------- downloads
apt_private() {
  apt-get -qq \
    -o Dir::Etc::SourceList=/dev/null \
    -o Dir::Etc::SourceParts="$aptdir/sources.list.d" \
    -o Dir::Etc::Preferences=/dev/null \
    -o Dir::Etc::PreferencesParts="$aptdir/preferences.d" \
    -o Dir::State::Lists="$aptdir/lists" \
    -o Dir::Cache="$aptdir/cache" \
    -o APT::Sandbox::User=root \
    -o Acquire::Languages=none \
    "$@"
}

fetch() {
  local keyring=/usr/share/keyrings/debian-archive-keyring.gpg pkg missing=()
  [[ -f $keyring ]] || die "$keyring is missing (apt-get install debian-archive-keyring)"
  mkdir -p "$downloads" "$aptdir"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial}
  cat >"$aptdir/sources.list.d/bookworm.sources" <<EOF
# Private to tests/cluster/build.sh; the system's apt configuration is not touched.
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: $keyring

Types: deb deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: $keyring
EOF
  for pkg in "${DEBS[@]}"; do
    compgen -G "$downloads/${pkg}_*.deb" >/dev/null || missing+=("$pkg")
  done
  local need_source=1
  compgen -G "$downloads/kubernetes_*.orig.tar.gz" >/dev/null && need_source=0
  if ((${#missing[@]} == 0 && need_source == 0)); then
    log "downloads: all cached in $downloads"
    return
  fi
  log "apt: refreshing private package lists (bookworm main, deb + deb-src)"
  apt_private update
  # Download into a scratch directory and move complete files only.
  local incoming=$downloads/incoming
  rm -rf "$incoming"
  mkdir -p "$incoming"
  if ((need_source)); then
    log "apt: fetching source package kubernetes"
    (cd "$incoming" && apt_private source --download-only kubernetes)
  fi
  if ((${#missing[@]})); then
    log "apt: fetching ${missing[*]}"
    (cd "$incoming" && apt_private download "${missing[@]}")
  fi
  mv "$incoming"/* "$downloads"/
  rmdir "$incoming"
  rm -rf "$aptdir/lists" "$aptdir/cache"  # ~50 MB; refreshed again only if a download is missing
  log "downloads: $(du -sh "$downloads" | cut -f1) in $downloads"
}

newest() { # newest GLOB...: the highest-versioned existing file matching
  local f
  f=$(printf '%s\n' "$@" | sort -V | tail -n1)
  [[ -e $f ]] || die "nothing matches $1"
  echo "$f"
}

# ---------------------------------------------------------------- unpacking
sysroot=$tree/sysroot
gopath=$tree/gopath
k8s=$gopath/src/k8s.io/kubernetes # the source tree, seen at its GOPATH import path

unpack() {
  local pkg orig
  rm -rf "$tree"
  mkdir -p "$sysroot" "$gopath/src/k8s.io" "$tree/tools"
  for pkg in "${DEBS[@]}"; do
    dpkg-deb -x "$(newest "$downloads/${pkg}"_*.deb)" "$sysroot"
  done
  orig=$(newest "$downloads"/kubernetes_*.orig.tar.gz)
  log "unpacking $(basename "$orig")"
  tar -xzf "$orig" -C "$tree"
  src=$(find "$tree" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' -print -quit)
  [[ -n $src && -d $src/vendor/k8s.io ]] || die "$(basename "$orig") has no kubernetes-*/vendor tree"
  k8s_version=v${src##*/kubernetes-}
  [[ $k8s_version == v1.20.* ]] || die "expected Kubernetes v1.20.x, the Debian source has $k8s_version"
  ln -s "$src" "$k8s"
  orig_name=$(basename "$orig")
}

# Replace a vendored Go package's sources with Debian's packaged copy of it.
use_debian_copy() {
  local pkg=$1 from=$sysroot/usr/share/gocode/src/$1 to=$k8s/vendor/$1 f
  [[ -d $from && -d $to ]] || die "cannot replace vendor/$pkg"
  find "$to" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
  for f in "$from"/*.go "$from"/*.s; do
    [[ -e $f && $f != *_test.go ]] && cp "$f" "$to/"
  done
  return 0
}

setup_go() {
  export GOROOT=$sysroot/usr/lib/go-1.19
  [[ -x $GOROOT/bin/go ]] || die "Go toolchain missing after unpacking"
  # GOPATH mode, as upstream's v1.20 build scripts use; offline; static binaries.
  export GOPATH=$gopath GOCACHE=$tree/gocache GO111MODULE=off GOPROXY=off GOFLAGS=-buildvcs=false
  export GOENV=off GOTOOLCHAIN=local CGO_ENABLED=0
  export PATH=$tree/tools:$GOROOT/bin:$PATH
  log "toolchain: $(go version)"
}

# Upstream's Makefile.generated_files finds generator inputs by comment tags: every .go
# file (staging/ seen as vendor/, vendor/ itself excluded) having a "// +k8s:" line is a
# tag file; a directory takes part if one of its tag files mentions "+k8s:TAG=".
tag_files=
tagged_packages() { # tagged_packages TAG [EXCLUDED_PREFIX...]: k8s.io/kubernetes/... import paths
  local tag=$1 prefix
  shift
  if [[ -z $tag_files ]]; then
    tag_files=$tree/tag-files
    (cd "$k8s" && find -H . \( -path ./vendor -o -path './_*' -o -path './.*' \) -prune -o -type f -name '*.go' -print0 |
      { xargs -0 grep -l '^// *+k8s:' || true; } >"$tag_files")
  fi
  (cd "$k8s" && tr '\n' '\0' <"$tag_files" | { xargs -0 grep -l -e "+k8s:$tag=" || true; }) |
    sed -e 's|/[^/]*$||' -e 's|^\./staging/src/|vendor/|' -e 's|^\./||' -e 's|^|k8s.io/kubernetes/|' |
    LC_ALL=C sort -u |
    while IFS= read -r pkg; do
      for prefix in "$@"; do [[ $pkg == "$prefix"* ]] && continue 2; done
      echo "$pkg"
    done
}
joined() { paste -sd, -; }

run_in_tree() { cd "$k8s" && "$@"; }

# ---------------------------------------------------------------- CronJob backport
run_generators() { # HEADER DEFAULTER_PEERS CONVERSION_DIRS (runs in the background, see run_logged)
  cd "$k8s"
  deepcopy-gen --logtostderr -h "$1" -O zz_generated.deepcopy \
    -i k8s.io/kubernetes/vendor/k8s.io/api/batch/v1 --bounding-dirs k8s.io/kubernetes,k8s.io/api
  # '-' marks packages that are inputs only; nothing but batch/v1 is rewritten.
  go-to-protobuf --go-header-file hack/boilerplate/boilerplate.generatego.txt \
    --proto-import "$PWD/vendor" --proto-import "$PWD/third_party/protobuf" \
    --apimachinery-packages -k8s.io/apimachinery/pkg/util/intstr,-k8s.io/apimachinery/pkg/api/resource,-k8s.io/apimachinery/pkg/runtime/schema,-k8s.io/apimachinery/pkg/runtime,-k8s.io/apimachinery/pkg/apis/meta/v1 \
    --packages -k8s.io/api/core/v1,k8s.io/api/batch/v1
  defaulter-gen --logtostderr -h "$1" -O zz_generated.defaults \
    -i k8s.io/kubernetes/pkg/apis/batch/v1 --extra-peer-dirs "$2"
  conversion-gen --logtostderr -h "$1" -O zz_generated.conversion \
    -i k8s.io/kubernetes/pkg/apis/batch/v1 \
    --extra-peer-dirs k8s.io/kubernetes/pkg/apis/core,k8s.io/kubernetes/pkg/apis/core/v1,k8s.io/api/core/v1 \
    --extra-dirs "$3"
}

backport_cronjob() {
  local tools=$tree/tools lib
  log "backport: batch/v1 CronJob source edits"
  python3 "$backport" "$src" >&2
  log "backport: building the vendored code generators"
  (cd "$k8s" && for g in deepcopy-gen defaulter-gen conversion-gen go-to-protobuf go-to-protobuf/protoc-gen-gogo; do
    go build -o "$tools/${g##*/}" "./vendor/k8s.io/code-generator/cmd/$g"
  done)
  # go-to-protobuf runs protoc, goimports and gofmt from PATH.
  lib=$(dirname "$(find "$sysroot" -name 'libprotoc.so.*' -print -quit)")
  cat >"$tools/protoc" <<EOF
#!/bin/sh
LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$sysroot/usr/bin/protoc" "\$@"
EOF
  chmod +x "$tools/protoc"
  ln -sf "$sysroot/usr/bin/goimports" "$tools/goimports"
  log "backport: $(protoc --version), regenerating deepcopy, protobuf, defaulters, conversions"
  local header=vendor/k8s.io/code-generator/hack/boilerplate.go.txt
  local defaulter_peers conversion_dirs
  defaulter_peers=$(tagged_packages defaulter-gen | joined)
  conversion_dirs=$(tagged_packages conversion-gen | joined)
  run_logged "code generation" "$logs/codegen.log" \
    run_generators "$header" "$defaulter_peers" "$conversion_dirs"
  # The generators succeed silently when they find nothing to do: check they did it.
  local want
  for want in \
    'staging/src/k8s.io/api/batch/v1/zz_generated.deepcopy.go:func (in \*CronJob) DeepCopyObject' \
    'staging/src/k8s.io/api/batch/v1/generated.pb.go:func (m \*CronJob) Unmarshal' \
    'staging/src/k8s.io/api/batch/v1/generated.proto:^message CronJobSpec' \
    'pkg/apis/batch/v1/zz_generated.defaults.go:func SetObjectDefaults_CronJob' \
    'pkg/apis/batch/v1/zz_generated.conversion.go:func Convert_v1_CronJob_To_batch_CronJob'; do
    grep -q "${want#*:}" "$src/${want%%:*}" || die "code generation produced no '${want#*:}' in ${want%%:*}"
  done
}

# ---------------------------------------------------------------- openapi
generate_openapi() {
  # pkg/generated/openapi is not part of the release tarball; upstream's Makefile makes it.
  local dirs report=$tree/openapi-violations.report
  (cd "$k8s" && go build -o "$tree/tools/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen)
  dirs=$(tagged_packages openapi-gen k8s.io/kubernetes/vendor/k8s.io/code-generator/ k8s.io/kubernetes/vendor/k8s.io/sample-apiserver/ | joined)
  run_logged "openapi-gen" "$logs/openapi-gen.log" run_in_tree \
    openapi-gen --logtostderr -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
    -i "$dirs" -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi -r "$report"
  # Upstream fails the build when the API rule report differs from the known exceptions.
  if ! diff <(LC_ALL=C sort "$report") <(LC_ALL=C sort "$src/api/api-rules/violation_exceptions.list") >"$logs/openapi-rules.diff"; then
    cat "$logs/openapi-rules.diff" >&2
    die "openapi-gen's API rule report differs from api/api-rules/violation_exceptions.list"
  fi
  grep -q '"k8s.io/api/batch/v1.CronJob"' "$src/pkg/generated/openapi/zz_generated.openapi.go" ||
    die "no OpenAPI definition for batch/v1 CronJob"
}

# ---------------------------------------------------------------- compile
compile() {
  local ldflags=(-s -w) commit major minor kv c
  commit=$(sed -n 's/^[[:space:]]*gitCommit[[:space:]]*=[[:space:]]*"\([0-9a-f]\{40\}\)".*/\1/p' \
    "$src/staging/src/k8s.io/component-base/version/base.go")
  [[ -n $commit ]] || die "cannot read gitCommit from component-base/version/base.go"
  major=${k8s_version#v}
  minor=${major#*.}
  major=${major%%.*}
  minor=${minor%%.*}
  full_version=$k8s_version$VERSION_SUFFIX
  # Both version packages must be stamped: /version is served from client-go's copy.
  for kv in "gitVersion=$full_version" "gitMajor=$major" "gitMinor=$minor" "gitCommit=$commit" \
    "gitTreeState=dirty" "buildDate=$(date -u -r "$src/go.mod" +%Y-%m-%dT%H:%M:%SZ)"; do
    ldflags+=(-X "k8s.io/kubernetes/vendor/k8s.io/component-base/version.$kv"
      -X "k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version.$kv")
  done
  rm -rf "$bin.new"
  mkdir -p "$bin.new"
  for c in "${COMPONENTS[@]}"; do
    log "compiling $c $full_version$([[ $c == kube-apiserver ]] && echo ' (3-4 minutes on 2 cores)')"
    run_logged "go build $c" "$logs/go-build-$c.log" \
      run_in_tree go build -trimpath -ldflags "${ldflags[*]}" -o "$bin.new/$c" "./cmd/$c"
  done
  cp "$sysroot/usr/bin/etcd" "$bin.new/etcd"
  local r
  mkdir -p "$bin.new/cni"
  for r in "${RUNTIME[@]}"; do
    [[ -x $sysroot${r#*:} ]] || die "${r#*:} is missing from the unpacked runtime packages"
    cp "$sysroot${r#*:}" "$bin.new/${r%%:*}"
  done
}

install_bin() {
  local c v
  {
    stamp_key
    for c in "${COMPONENTS[@]}"; do
      v=$("$bin.new/$c" --version)
      echo "$c: ${v#Kubernetes } from Debian source $orig_name"
    done
    v=$("$bin.new/etcd" --version | sed -n 's/^etcd Version: //p')
    echo "etcd: $v from $(basename "$(newest "$downloads"/etcd-server_*.deb)")"
    echo "go: $(go env GOVERSION) from $(basename "$(newest "$downloads"/golang-1.19-go_*.deb)")"
    echo "vendor swaps: $(basename "$(newest "$downloads"/golang-github-modern-go-reflect2-dev_*.deb)"), $(basename "$(newest "$downloads"/golang-github-json-iterator-go-dev_*.deb)")"
    echo "backport: CronJob served as batch/v1 (tests/cluster/cronjob_v1_backport.py)"
    echo "kubelet: TJF_KUBELET_LOG_ROOT, TJF_KUBELET_KEEP_SYSCTLS (tests/cluster/kubelet_local_patch.py)"
    for v in containerd runc containernetworking-plugins docker-registry; do
      echo "runtime: $(basename "$(newest "$downloads/${v}"_*.deb)")"
    done
    echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) in $((SECONDS - build_start)) s"
  } >"$bin.new/STAMP"
  rm -rf "$bin"
  mv "$bin.new" "$bin"
}

main() {
  command -v flock >/dev/null || die "flock is required (util-linux)"
  [[ -f $backport && -f $kubelet_patch ]] || die "$backport or $kubelet_patch is missing"
  if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
    die "cannot write to $cache: run as root, or set TJF_CLUSTER_CACHE to a writable directory"
  fi
  exec 8>"$cache/.build.lock"
  if ! flock -n 8; then
    log "another build.sh is working on $cache; waiting for it"
    flock 8
  fi
  if up_to_date; then
    log "up to date: $bin ($(sed -n 2p "$bin/STAMP"))"
    exec 8>&-
    exec bash "$script_dir/image.sh"
  fi

  local t
  for t in apt-get dpkg-deb tar python3 sha256sum; do
    command -v "$t" >/dev/null || die "$t is required"
  done
  build_start=$SECONDS
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$logs"
  log "building into $cache (first build takes ~5 minutes; logs in $logs/)"
  fetch
  unpack
  setup_go
  use_debian_copy github.com/modern-go/reflect2
  use_debian_copy github.com/json-iterator/go
  backport_cronjob
  log "kubelet: pod log directories and kernel settings of a local node (kubelet_local_patch.py)"
  python3 "$kubelet_patch" "$src" >&2
  generate_openapi
  compile
  install_bin
  log "done in $((SECONDS - build_start)) s; $(du -sh "$bin" | cut -f1) in $bin:"
  sed 's/^/    /' "$bin/STAMP" >&2
  if [[ $keep_tree != 1 ]]; then
    log "removing the build tree ($(du -sh "$tree" | cut -f1))"
  fi
  # the node's images (their own stamp; about 2 minutes the first time)
  bash "$script_dir/image.sh"
}

main "$@"
