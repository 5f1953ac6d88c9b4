#!/usr/bin/env bash
# `make demo`: the farm on one machine, on free loopback ports, in .demo/ under the repository.
# Starts a private redis-server, the ComfyUI test server and two scenefarm-worker processes,
# enqueues the sample scenes of examples/scenes.jsonl with the scenefarm CLI, shows progress and
# where the frames went, then stops everything it started (by PID) and leaves the outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DEMO=$PWD/.demo
BIN_COMFY=$BUILD/tests/comfyui_server/scenefarm-comfyui-test-server

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

free_port() {
  # Bind to port 0 and read what the kernel chose; nothing else of the demo uses the port yet.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60000 -n 1
}
wait_port_file() {
  for _ in $(seq 1 200); do [ -s "$1" ] && return 0; sleep 0.05; done
  echo "demo: $2 did not start; see $DEMO/logs" >&2
  exit 1
}

rm -rf "$DEMO"
mkdir -p "$DEMO/logs" "$DEMO/redis" "$DEMO/comfyui"

REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$DEMO/redis" >"$DEMO/logs/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
echo "redis-server        redis://127.0.0.1:$REDIS_PORT/0 (pid ${pids[-1]})"

"$BIN_COMFY" --port 0 --port-file "$DEMO/comfyui/port" --base-dir "$DEMO/comfyui" \
  >"$DEMO/logs/comfyui.log" 2>&1 &
pids+=($!)
wait_port_file "$DEMO/comfyui/port" "the ComfyUI test server"
COMFY=http://127.0.0.1:$(cat "$DEMO/comfyui/port")
echo "ComfyUI test server $COMFY (pid ${pids[-1]})"

CLI=$BUILD/cli/scenefarm
export SCENEFARM_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0 SCENEFARM_QUEUE=scenes
export SCENEFARM_COMFYUI_URL=$COMFY SCENEFARM_ARTIFACTS_DIR=$DEMO/artifacts
export SCENEFARM_COMFYUI_OUTPUT_DIR=$DEMO/comfyui/output

EXPORTER_PORT=$(free_port)
"$BUILD/exporter/scenefarm-exporter" --listen "127.0.0.1:$EXPORTER_PORT" \
  >"$DEMO/logs/exporter.log" 2>&1 &
pids+=($!)
EXPORTER=http://127.0.0.1:$EXPORTER_PORT
for _ in $(seq 1 100); do curl -sf "$EXPORTER/healthz" >/dev/null 2>&1 && break; sleep 0.05; done
echo "scenefarm-exporter  $EXPORTER/metrics (pid ${pids[-1]})"
echo "web pages           $EXPORTER/ui/ (the run: $EXPORTER/ui/runs/demo-story)"

echo
echo "scenefarm enqueue examples/scenes.jsonl:"
"$CLI" enqueue examples/scenes.jsonl | sed 's/^/  queued /'

for i in 1 2; do
  # Default policy (2 s history polls as a safety net): completion comes from the /ws events.
  "$BUILD/worker/scenefarm-worker" --worker-id "demo-worker-$i" >"$DEMO/logs/worker-$i.log" 2>&1 &
  pids+=($!)
  echo "scenefarm-worker    demo-worker-$i (pid ${pids[-1]}, log .demo/logs/worker-$i.log)"
done

total=$(wc -l <examples/scenes.jsonl)
for _ in $(seq 1 600); do
  st=$("$CLI" status --json)
  done_count=$(jq '.outcomes.succeeded + .outcomes.dead_lettered' <<<"$st")
  printf '\r  %s' "$(jq -r '"pending \(.depth.pending)  leased \(.depth.leased)  succeeded \(.outcomes.succeeded)  dead \(.depth.dead)  workers live \(.workers.live) busy \(.workers.busy)"' <<<"$st")"
  [ "$done_count" -ge "$total" ] && break
  sleep 0.2
done
echo
echo
echo "scenefarm status:"
"$CLI" status | sed 's/^/  /'
echo
echo "scenefarm jobs show scene-01:"
"$CLI" jobs show scene-01 | sed 's/^/  /'
echo
RUN_DIR=$DEMO/artifacts/demo-story
echo "Frames, hard-linked from ComfyUI's output into the run's artifacts: .demo/artifacts/demo-story/"
find "$RUN_DIR" -name '*.png' | sort | head -3 | sed "s|$DEMO/|  .demo/|"
echo "  ... $(find "$RUN_DIR" -name '*.png' | wc -l) frames in $(find "$RUN_DIR" -name telemetry.json | wc -l) scene directories"
for _ in $(seq 1 50); do [ -s "$RUN_DIR/run-summary.txt" ] && break; sleep 0.1; done
echo
echo "Run summary (.demo/artifacts/demo-story/run-summary.txt), first lines:"
head -6 "$RUN_DIR/run-summary.txt" | cut -c1-220 | sed 's/^/  /'
echo
echo "scenefarm validate .demo/artifacts/demo-story:"
"$CLI" validate "$RUN_DIR" | sed 's/^/  /'
echo
echo "A few lines of $EXPORTER/metrics:"
curl -sf "$EXPORTER/metrics" | grep -E '^scenefarm_(queue_depth|scenes_total\{.*(succeeded|dead_lettered)|scene_completions_total|scene_duration_seconds_(count|sum)|scene_frames_(count|sum)|workers_live|gpu_memory_free_bytes|gpu_info|comfyui_up|redis_up|exporter_collector_success)' | sed 's/^/  /'

if [ "${SCENEFARM_DEMO_SCREENSHOTS:-}" = 1 ]; then
  echo
  echo "Screenshots of the web pages (docs/ui.md), headless Chromium:"
  /usr/bin/python3 scripts/ui-screenshots.py "$EXPORTER" demo-story scene-01 docs/ui
fi
