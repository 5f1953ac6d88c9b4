# Sourced by scripts/images.sh and scripts/compose-test.sh: podman with the project's settings
# (deploy/docker/podman/), all of its state under $PODMAN_ROOT (default build/podman), nothing
# read from or written to /etc/containers, no registry consulted.
#   [PODMAN_ROOT=DIR] source scripts/podman-env.sh
# Exports CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF, TMPDIR and
# PODMAN_ROOT; writes the two configuration files with the absolute root filled in.
_sf_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# (No positional parameter: a sourced script would see its caller's.)
PODMAN_ROOT=${PODMAN_ROOT:-$_sf_repo/build/podman}
mkdir -p "$PODMAN_ROOT"/{storage,run,tmp,networks,cache}
PODMAN_ROOT=$(cd "$PODMAN_ROOT" && pwd)
for _sf_f in containers.conf storage.conf; do
  sed "s|@ROOT@|$PODMAN_ROOT|g" "$_sf_repo/deploy/docker/podman/$_sf_f.in" >"$PODMAN_ROOT/$_sf_f.new"
  mv "$PODMAN_ROOT/$_sf_f.new" "$PODMAN_ROOT/$_sf_f"
done
export PODMAN_ROOT
export CONTAINERS_CONF=$PODMAN_ROOT/containers.conf
export CONTAINERS_STORAGE_CONF=$PODMAN_ROOT/storage.conf
export CONTAINERS_REGISTRIES_CONF=$_sf_repo/deploy/docker/podman/registries.conf
# podman build keeps its large temporary files (layer tarballs) in TMPDIR.
export TMPDIR=$PODMAN_ROOT/tmp
unset _sf_repo _sf_f
