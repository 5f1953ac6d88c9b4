#!/usr/bin/env bash
# `make compose-test`: deploy/docker-compose.yml end to end, as a user runs it, on a machine with
# no Docker daemon and no registry: docker-compose (v1, Debian's) talks to `podman system
# service`; images from `scripts/images.sh --prebuilt BUILD_DIR` (this build's binaries in the
# Dockerfile's runtime stages); deploy/docker-compose.test.yml swaps in the project's ComfyUI
# stand-in and Debian's redis-server. Steps:
#   up --scale worker=3 (workers wait for a healthy ComfyUI) -> the healthchecks as declared are
#   what the containers run, and pass -> scenes enqueued by the CLI in a container -> succeeded,
#   frames in the artifacts volume owned by the worker's uid, `scenefarm validate` passes ->
#   /metrics scraped over the compose network -> ComfyUI killed, brought back by its restart
#   policy -> a worker stopped by compose mid-render drains, nothing lost -> compose stop -> down,
#   and nothing of the project left.
#   bash scripts/compose-test.sh [BUILD_DIR]      (BUILD_DIR defaults to build)
# Every wait is for a condition, bounded by a deadline; the whole run by COMPOSE_TEST_SECONDS.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(cd "${1:-build}" && pwd)
# shellcheck source=podman-env.sh
source scripts/podman-env.sh
PROJECT=sfct$$
WORK=$BUILD/compose-test
SOCK=$PODMAN_ROOT/compose-test-$$.sock
export DOCKER_HOST=unix://$SOCK COMPOSE_HTTP_TIMEOUT=300
# Each compose command is bounded too, should the API hang.
COMPOSE=(timeout 300 docker-compose --ansi never -p "$PROJECT" -f deploy/docker-compose.yml
         -f deploy/docker-compose.test.yml)
LIMIT=$((SECONDS + ${COMPOSE_TEST_SECONDS:-900}))
T0=$SECONDS
pids=()

step() { echo "compose-test: [$((SECONDS - T0)) s] $*"; }
fail() {
  echo "compose-test: FAILED: $*" >&2
  "${COMPOSE[@]}" ps >&2 2>/dev/null || true
  echo "compose-test: status: $(status_json 2>&1 | tr -d '\n')" >&2
  "${COMPOSE[@]}" logs --tail 30 >"$WORK/logs.txt" 2>&1 || true
  tail -n 60 "$WORK/logs.txt" >&2 || true
  echo "compose-test: logs in $WORK" >&2
  exit 1
}
# wait_until WHAT SECONDS CMD...: runs CMD every second until it succeeds.
wait_until() {
  local what=$1 end=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$end" ] && [ "$SECONDS" -lt "$LIMIT" ] || fail "timed out waiting for $what"
    sleep 1
  done
}

cleanup() {
  set +e
  if [ -S "$SOCK" ]; then
    "${COMPOSE[@]}" down -v --remove-orphans -t 30 >"$WORK/down.log" 2>&1 ||
      echo "compose-test: compose down failed (see $WORK/down.log)" >&2
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -f "$SOCK"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

not_exercised() {
  echo "compose-test: not exercised here (docs/deploy.md):"
  echo "  - the GPU reservation of the comfyui service: no GPU on this machine, and podman's Docker"
  echo "    API ignores device requests; the ComfyUI stand-in needs none"
  echo "  - podman's healthcheck timers: podman runs none without systemd; this test runs each"
  echo "    container's healthcheck with scripts/podman-healthchecks.sh, as the timers would"
  echo "  - prometheus, alertmanager, grafana: their images come from a registry; ctest"
  echo "    MonitoringE2E runs the same configuration with Debian's prometheus and alertmanager"
}

start_podman_service() {
  mkdir -p "$WORK"
  rm -f "$WORK"/*.log "$WORK"/*.txt "$WORK"/*.json "$WORK"/*.jsonl
  podman system service --time=0 "unix://$SOCK" >"$WORK/podman-service.log" 2>&1 &
  pids+=($!)
  wait_until "podman system service" 60 test -S "$SOCK"
  wait_until "the podman API" 60 curl -sf --unix-socket "$SOCK" http://podman/_ping
  scripts/podman-healthchecks.sh "$PROJECT" 2 "${COMPOSE_TEST_SECONDS:-900}" &
  pids+=($!)
}

# scenes.jsonl: N scenes of run R, FRAMES frames of MS ms each.
write_scenes() {
  local run=$1 n=$2 frames=$3 ms=$4 i
  for i in $(seq 1 "$n"); do
    printf '{"id": "%s-%02d", "run": "%s", "expected_frames": %d, "workflow": {"1": {"class_type": "ScenefarmTestSource", "inputs": {"frames": %d, "width": 32, "height": 32, "render_ms_per_frame": %d, "seed": %d}}, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "%s/%s-%02d"}}}}\n' \
      "$run" "$i" "$run" "$frames" "$frames" "$ms" "$i" "$run" "$run" "$i"
  done >"$WORK/$run.jsonl"
}

# The CLI in a worker container, the scenes on its standard input. (A one-off `compose run`
# container fails under podman 4.3: docker-compose v1 gives it links, which podman refuses.)
enqueue() {
  "${COMPOSE[@]}" exec -T worker scenefarm enqueue - <"$WORK/$1.jsonl" >"$WORK/enqueue-$1.txt" 2>&1 ||
    { cat "$WORK/enqueue-$1.txt" >&2; fail "enqueue $1 through the CLI in a container"; }
  [ "$(grep -c "^$1-[0-9]*\$" "$WORK/enqueue-$1.txt")" -eq "$(wc -l <"$WORK/$1.jsonl")" ] ||
    fail "enqueue $1 printed $(cat "$WORK/enqueue-$1.txt")"
}

# Polled often, so through podman exec: a docker-compose process per poll is seconds of CPU.
status_json() { timeout 60 podman exec "${PROJECT}_exporter_1" scenefarm status --json; }
# status_is JQ_EXPR: the queue's status satisfies the expression.
status_is() { status_json | jq -e "$1" >/dev/null; }

main() {
  step "images (scripts/images.sh --prebuilt $BUILD)"
  scripts/images.sh --prebuilt "$BUILD"
  not_exercised
  start_podman_service
  step "compose up --scale worker=3 redis comfyui exporter worker"
  "${COMPOSE[@]}" up -d --no-build --scale worker=3 redis comfyui exporter worker \
    >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; fail "compose up"; }
  check_healthchecks
  check_render_and_artifacts
  check_metrics
  check_comfyui_restart
  check_drain
  step "compose stop"
  "${COMPOSE[@]}" stop -t 150 >"$WORK/stop.log" 2>&1 || fail "compose stop"
  for c in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" \
               --filter label=com.docker.compose.service=worker --format '{{.Names}}'); do
    [ "$(podman inspect --format '{{.State.ExitCode}}' "$c")" = 0 ] || fail "$c exited non-zero"
  done
  step "compose down -v"
  "${COMPOSE[@]}" down -v --remove-orphans -t 30 >"$WORK/down.log" 2>&1 || fail "compose down"
  check_nothing_left
  step "passed in $((SECONDS - T0)) s"
}

source scripts/compose-test-checks.sh
main
