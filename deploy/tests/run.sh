#!/usr/bin/env bash
# The deploy checks CI runs: the done-marker custom node's tests, docker-compose config, the
# systemd units through systemd-analyze verify, the Kubernetes manifests offline.
# Usage: bash deploy/tests/run.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

"$PY" -m unittest discover -s comfyui/custom_nodes/scenefarm_done_marker/tests

docker-compose -f docker-compose.yml config -q
echo "docker-compose: config valid"

# The units as installed, with ExecStart pointed at this build's binaries (verify checks them).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in systemd/*.service; do
  sed -e "s|/usr/local/bin/scenefarm-worker|$BUILD/worker/scenefarm-worker|" \
      -e "s|/usr/local/bin/scenefarm-exporter|$BUILD/exporter/scenefarm-exporter|" "$f" >"$tmp/$(basename "$f")"
done
cp "$tmp/scenefarm-worker@.service" "$tmp/scenefarm-worker@gpu0.service"
out=$(systemd-analyze verify "$tmp/scenefarm-worker@gpu0.service" "$tmp/scenefarm-exporter.service" 2>&1)
if [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
echo "systemd: units verified"

"$PY" tests/check_kubernetes.py
echo "deploy: all checks passed"
