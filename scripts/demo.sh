#!/usr/bin/env bash
# `make demo`: the farm on one machine, on free loopback ports, in .demo/ under the repository.
# Starts a private redis-server and the ComfyUI test server, renders the sample scenes of
# examples/scenes.jsonl, shows progress and where the frames went, then stops everything it
# started (by PID) and leaves the outputs in place.
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

# The queue, worker and exporter issues replace this direct submission with
# `scenefarm enqueue` and scenefarm-worker processes.
echo
echo "Submitting $(wc -l <examples/scenes.jsonl) scenes of examples/scenes.jsonl to ComfyUI:"
while IFS= read -r scene; do
  id=$(jq -r .id <<<"$scene")
  jq -c --arg id "$id" '{prompt: .workflow, prompt_id: $id, client_id: "demo"}' <<<"$scene" |
    curl -sf -H 'Content-Type: application/json' --data-binary @- "$COMFY/prompt" >/dev/null
  echo "  queued $id"
done <examples/scenes.jsonl

total=$(wc -l <examples/scenes.jsonl)
for _ in $(seq 1 600); do
  done_count=$(curl -sf "$COMFY/history" | jq 'length')
  remaining=$(curl -sf "$COMFY/prompt" | jq '.exec_info.queue_remaining')
  printf '\r  rendered %d/%d, queue_remaining %d ' "$done_count" "$total" "$remaining"
  [ "$done_count" -ge "$total" ] && break
  sleep 0.2
done
echo
echo
echo "Frames: $DEMO/comfyui/output/demo-story/"
ls "$DEMO/comfyui/output/demo-story" | head -5
echo "  ... $(ls "$DEMO/comfyui/output/demo-story" | wc -l) files"
echo
echo "GPU as ComfyUI reports it (/system_stats):"
curl -sf "$COMFY/system_stats" | jq -c '.devices[] | {name, vram_total, vram_free}'
