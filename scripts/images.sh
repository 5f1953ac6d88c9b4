#!/usr/bin/env bash
# `make images`: scenefarm's container images, built with podman (no daemon) and no registry.
#   scripts/images.sh                       every image from source (deploy/docker/Dockerfile)
#   scripts/images.sh --prebuilt BUILD_DIR  the same runtime stages around BUILD_DIR's binaries,
#                                           tagged :prebuilt (what `make compose-test` runs)
#   scripts/images.sh --list                the image names `make images` produces, one a line
# The base images come from `debootstrap --variant=minbase bookworm` (from the Debian mirror apt
# uses here), imported as debian:bookworm, and debian:bookworm-slim with documentation, manual
# pages and locales dropped as Debian's slim images do. podman's storage, cache and settings are
# under build/podman (scripts/podman-env.sh); re-runs reuse the base images and cached layers.
# Each image must stay within MAX_IMAGE_MB (150 MB); a larger one fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
MAX_IMAGE_MB=${MAX_IMAGE_MB:-150}
VERSION=$(sed -n 's/^project(scenefarm VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
# name:Dockerfile target, in build order.
IMAGES=(scenefarm-worker:worker scenefarm-exporter:exporter
        scenefarm-comfyui-test-server:comfyui-test-server scenefarm-redis:redis)

log() { echo "images: $*"; }
die() {
  echo "images: $*" >&2
  exit 1
}

mode=source
prebuilt_dir=""
while [ $# -gt 0 ]; do
  case $1 in
    --list)
      for i in "${IMAGES[@]}"; do echo "${i%%:*}:$VERSION"; done
      exit 0 ;;
    --prebuilt)
      mode=prebuilt
      prebuilt_dir=${2:?--prebuilt needs a build directory}
      shift ;;
    *) die "unknown argument $1 (usage: images.sh [--prebuilt BUILD_DIR] | --list)" ;;
  esac
  shift
done

for tool in podman debootstrap tar; do
  command -v "$tool" >/dev/null || die "$tool is missing: run scripts/install-deps.sh"
done
# shellcheck source=podman-env.sh
source scripts/podman-env.sh

# The Debian mirror apt already uses on this machine (deb822 or one-line sources), else
# debootstrap's default.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/debian.sources; do
    [ -r "$f" ] && awk '/^URIs:/ {print $2; exit}' "$f" && return
  done
  [ -r /etc/apt/sources.list ] &&
    awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list
}

# The image's apt sources: this machine's Debian entries (bookworm, updates, security) when it
# has them in deb822 form; otherwise what debootstrap wrote (bookworm main from the mirror).
write_apt_config() {
  local root=$1
  if [ -r /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
    : >"$root/etc/apt/sources.list"
  fi
  # As Debian's container images: no services started by package scripts, no cached .debs,
  # no translated package lists.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 0755 "$root/usr/sbin/policy-rc.d"
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
  echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin
  find "$root/var/log" -type f -exec truncate -s 0 {} +
}

# What Debian's slim images leave out, for packages installed later too (dpkg path-exclude).
slim_rootfs() {
  local root=$1
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
EOF
  find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda,locale}/*
}

import_rootfs() {
  tar -C "$1" --numeric-owner -cf - . |
    podman import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - "$2" >/dev/null
}

base_images() {
  if podman image exists debian:bookworm && podman image exists debian:bookworm-slim; then
    log "debian:bookworm, debian:bookworm-slim: present"
    return
  fi
  local rootfs=$PODMAN_ROOT/cache/bookworm-rootfs mirror t0=$SECONDS
  mirror=$(debian_mirror || true)
  rm -rf "$rootfs"
  mkdir -p "$PODMAN_ROOT/cache/debs"
  log "debootstrap --variant=minbase bookworm ${mirror:-(default mirror)}"
  # shellcheck disable=SC2086 # an absent mirror is no argument
  debootstrap --variant=minbase --cache-dir="$PODMAN_ROOT/cache/debs" bookworm "$rootfs" $mirror \
    >"$PODMAN_ROOT/cache/debootstrap.log" 2>&1 ||
    die "debootstrap failed; see $PODMAN_ROOT/cache/debootstrap.log"
  write_apt_config "$rootfs"
  import_rootfs "$rootfs" debian:bookworm
  slim_rootfs "$rootfs"
  import_rootfs "$rootfs" debian:bookworm-slim
  rm -rf "$rootfs"
  log "debian:bookworm, debian:bookworm-slim: imported in $((SECONDS - t0)) s"
}

# The prebuilt context: bin/ with the build tree's binaries, stripped (debug info beside, kept
# out of the context).
prebuilt_context() {
  local build ctx=$1/images/context
  build=$(cd "$1" && pwd)
  for b in worker/scenefarm-worker exporter/scenefarm-exporter cli/scenefarm \
           tests/comfyui_server/scenefarm-comfyui-test-server; do
    [ -x "$build/$b" ] || die "$build/$b is missing: build the tree first (make build)"
  done
  rm -rf "$ctx"
  sh deploy/docker/stage-binaries.sh "$build" "$ctx" >&2
  echo debug >"$ctx/.dockerignore"
  echo "$ctx"
}

build_image() {
  local name=$1 target=$2 context=$3 t0=$SECONDS tags size
  if [ "$mode" = prebuilt ]; then
    [ "$target" = redis ] || target=$target-prebuilt
    tags=(-t "$name:prebuilt")
  else
    tags=(-t "$name:$VERSION" -t "$name:latest")
  fi
  log "building $name ($target)"
  # --format docker keeps HEALTHCHECK and STOPSIGNAL; --pull=never: local base images only;
  # host network for apt in RUN steps (the build containers need no network of their own).
  podman build --format docker --pull=never --layers --network host \
    -f "$REPO/deploy/docker/Dockerfile" --target "$target" "${tags[@]}" "$context" \
    >"$PODMAN_ROOT/build-$name.log" 2>&1 ||
    { tail -n 30 "$PODMAN_ROOT/build-$name.log" >&2; die "$name failed; see $PODMAN_ROOT/build-$name.log"; }
  size=$(podman image inspect --format '{{.Size}}' "${tags[1]}")
  log "$name: ${tags[1]} $((size / 1000000)) MB in $((SECONDS - t0)) s"
  [ "$size" -le $((MAX_IMAGE_MB * 1000000)) ] || die "$name is $((size / 1000000)) MB, over $MAX_IMAGE_MB MB"
}

t_all=$SECONDS
base_images
context=$REPO
[ "$mode" = prebuilt ] && context=$(prebuilt_context "$prebuilt_dir")
for i in "${IMAGES[@]}"; do
  build_image "${i%%:*}" "${i#*:}" "$context"
done
log "all images in $((SECONDS - t_all)) s (storage: $PODMAN_ROOT)"
