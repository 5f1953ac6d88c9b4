#!/usr/bin/env bash
# The deploy checks that need no container (ctest runs them; `make compose-test` runs the stack):
# the done-marker custom node's tests; the compose files as docker-compose and podman-compose
# read them (check_compose.py); the systemd units through systemd-analyze verify, with
# sysusers/tmpfiles applied to a scratch root, and check_systemd.py; the Kubernetes manifests
# against the Kubernetes client's schema and scenefarm's needs (check_kubernetes.py).
# Usage: bash deploy/tests/run.sh BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$PY" -m unittest discover -s comfyui/custom_nodes/scenefarm_done_marker/tests

# Compose: the file alone, with the test override, and as podman-compose substitutes it; the
# variables a user may set are unset here, as on a fresh machine.
unset COMFYUI_IMAGE SCENEFARM_LLM_URL
bash ../scripts/images.sh --list >"$tmp/images.txt"
docker-compose -f docker-compose.yml config >"$tmp/compose.yml"
docker-compose -f docker-compose.yml -f docker-compose.test.yml config >"$tmp/compose-test.yml"
# podman-compose 1.0.3 has no `config`: its --dry-run prints the podman command lines, with a
# podman that only tells its version, so nothing is created.
printf '#!/bin/sh\n[ "$1" = --version ] && echo "podman version 4.3.1"\nexit 0\n' >"$tmp/podman"
chmod +x "$tmp/podman"
podman-compose --podman-path "$tmp/podman" --dry-run -p sfcheck -f docker-compose.yml up -d \
  >"$tmp/podman-compose.txt" 2>&1 || { cat "$tmp/podman-compose.txt" >&2; exit 1; }
grep -q -- '--name=sfcheck_worker_1' "$tmp/podman-compose.txt" ||
  { cat "$tmp/podman-compose.txt" >&2; exit 1; }
"$PY" tests/check_compose.py "$tmp/compose.yml" "$tmp/compose-test.yml" "$tmp/podman-compose.txt" \
  "$tmp/images.txt"

# systemd: the units as installed, ExecStart pointed at this build's binaries (verify checks
# that they exist), each template as an instance.
mkdir "$tmp/units"
for f in systemd/*.service systemd/*.timer; do
  sed -e "s|/usr/local/bin/scenefarm-worker|$BUILD/worker/scenefarm-worker|" \
      -e "s|/usr/local/bin/scenefarm-exporter|$BUILD/exporter/scenefarm-exporter|" \
      -e "s|/usr/local/bin/scenefarm |$BUILD/cli/scenefarm |" \
      -e "s|/opt/comfyui/venv/bin/python|$PY|" "$f" >"$tmp/units/$(basename "$f")"
done
for t in "$tmp"/units/*@.*; do cp "$t" "${t/@./@gpu0.}"; done
units=()
for u in "$tmp"/units/*; do [[ $u == *@.* ]] || units+=("$u"); done
out=$(systemd-analyze verify "${units[@]}" 2>&1)
if [ -n "$out" ]; then
  echo "$out" >&2
  exit 1
fi
echo "systemd: ${#units[@]} units verified"
# The users and directories, created in a scratch root as on a host.
mkdir -p "$tmp/root/etc"
systemd-sysusers --root="$tmp/root" "$PWD/systemd/scenefarm.sysusers" >/dev/null
grep -q '^comfyui:[^:]*:[0-9]*:'"$(awk -F: '$1 == "scenefarm" {print $3}' "$tmp/root/etc/group")"':' \
  "$tmp/root/etc/passwd" || { echo "sysusers: comfyui is not in group scenefarm" >&2; exit 1; }
systemd-tmpfiles --root="$tmp/root" --create "$PWD/systemd/scenefarm.tmpfiles"
gid=$(awk -F: '$1 == "scenefarm" {print $3}' "$tmp/root/etc/group")
[ "$(stat -c '%a %g' "$tmp/root/var/lib/comfyui/output")" = "2775 $gid" ] ||
  { echo "tmpfiles: /var/lib/comfyui/output is not 2775 of group scenefarm" >&2; exit 1; }
echo "systemd: sysusers and tmpfiles applied to a scratch root"
"$PY" tests/check_systemd.py

"$PY" tests/check_kubernetes.py "$tmp/images.txt"
echo "deploy: all checks passed"
