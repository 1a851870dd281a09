#!/usr/bin/env bash
# Build the container images of the local node, once per machine:
#   bookworm  a Debian bookworm root filesystem made by mmdebstrap from the machine's own
#             apt sources (essential packages, python3, procps), so `python3 -m http.server`
#             and every coreutils command work in a job;
#   pause     the pod sandbox image: Kubernetes' own build/pause/linux/pause.c from the
#             source tarball build.sh downloaded, compiled statically with gcc.
#
#   bash tests/cluster/image.sh
#
# Result in $TJF_CLUSTER_CACHE/image/: NAME.layer.tar.gz (the one layer), NAME.config.json
# (the OCI image config, with the layer's diff_id) and STAMP. start.sh pushes them into the
# run's registry with push_image.py. When STAMP matches, this exits at once.
#
# Needs: mmdebstrap (apt-get install mmdebstrap), gcc with a static libc (libc6-dev), gzip.
set -euo pipefail

script_dir=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
cache=${TJF_CLUSTER_CACHE:-/var/cache/tjf-cluster}
out=$cache/image
# Bump when this script changes what it produces.
RECIPE=tjf-cluster-image/1
PACKAGES=python3,procps

log() { printf '%s image.sh: %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stamp_key() { echo "recipe: $RECIPE packages=$PACKAGES"; }

up_to_date() {
  local n
  [[ -f $out/STAMP && $(head -n1 "$out/STAMP") == "$(stamp_key)" ]] || return 1
  for n in bookworm pause; do
    [[ -s $out/$n.layer.tar.gz && -s $out/$n.config.json ]] || return 1
  done
}

# config NAME CMD_JSON: the image config of NAME's layer (diff_id = sha256 of the plain tar).
write_config() {
  local name=$1 cmd=$2 diff
  diff=$(gzip -dc "$work/$name.layer.tar.gz" | sha256sum | cut -d' ' -f1)
  cat >"$work/$name.config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":$cmd,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff"]},"history":[{"created_by":"tests/cluster/image.sh $RECIPE"}]}
EOF
}

build_bookworm() {
  local sources
  # The machine's own apt sources (deb822 or one-line), so no mirror is named here.
  sources=$(find /etc/apt/sources.list.d -maxdepth 1 -name '*.sources' -print -quit)
  [[ -n $sources ]] || sources=/etc/apt/sources.list
  [[ -s $sources ]] || die "no apt sources found (/etc/apt/sources.list.d/*.sources or /etc/apt/sources.list)"
  log "mmdebstrap: bookworm (essential + $PACKAGES) from $sources (1-2 minutes)"
  mmdebstrap --quiet --variant=essential --include="$PACKAGES" --format=tar \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$work/bookworm.tar" "$sources" >"$work/mmdebstrap.log" 2>&1 ||
    { tail -n 30 "$work/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
  gzip -1 <"$work/bookworm.tar" >"$work/bookworm.layer.tar.gz"
  rm -f "$work/bookworm.tar"
  write_config bookworm '["/bin/bash"]'
}

build_pause() {
  local orig
  orig=$(find "$cache/downloads" -maxdepth 1 -name 'kubernetes_*.orig.tar.gz' -print | sort -V | tail -n1)
  [[ -n $orig ]] || die "no kubernetes source tarball in $cache/downloads: run build.sh first"
  log "pause: compiling build/pause/linux/pause.c from $(basename "$orig")"
  tar -xzf "$orig" -C "$work" --wildcards '*/build/pause/linux/pause.c'
  mkdir -p "$work/pause-root"
  gcc -Os -static -DVERSION=v3.4.1-tjf -o "$work/pause-root/pause" "$(find "$work" -name pause.c -print -quit)"
  strip "$work/pause-root/pause"
  tar -C "$work/pause-root" --owner=0 --group=0 --numeric-owner -cf - pause | gzip -9 >"$work/pause.layer.tar.gz"
  write_config pause '["/pause"]'
}

main() {
  mkdir -p "$cache"
  exec 8>"$cache/.image.lock"
  flock 8
  if up_to_date; then
    log "up to date: $out ($(sed -n 2p "$out/STAMP"))"
    exit 0
  fi
  local t
  for t in mmdebstrap gcc gzip sha256sum; do
    command -v "$t" >/dev/null || die "$t is required (apt-get install mmdebstrap gcc libc6-dev)"
  done
  local start=$SECONDS
  work=$(mktemp -d "$cache/image.new.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  build_pause
  build_bookworm
  {
    stamp_key
    echo "bookworm: $(du -h "$work/bookworm.layer.tar.gz" | cut -f1) compressed, made $(date -u +%FT%TZ) in $((SECONDS - start)) s"
  } >"$work/STAMP"
  rm -rf "$out.old"
  [[ -d $out ]] && mv "$out" "$out.old"
  mkdir -p "$out"
  mv "$work"/{bookworm,pause}.layer.tar.gz "$work"/{bookworm,pause}.config.json "$work/STAMP" "$out/"
  rm -rf "$out.old"
  log "done in $((SECONDS - start)) s: $(sed -n 2p "$out/STAMP")"
}

main "$@"
