#!/usr/bin/env bash
# Render benchmark (issue #5), one run, side by side:
#  P1: time from the ComfyUI test server finishing a prompt (its execution_success timestamp in
#      /history) to the scene's ack in Redis (finished_at, Redis TIME), p50/p99, with the worker
#      following /ws events vs polling /history only, both at the seed's 2 s poll interval.
#  P2: ComfyUI's idle gap between consecutive scenes on one worker (execution_start of scene n+1
#      minus execution_success of scene n), with pipelining on (depth 1) and off (depth 0).
# Everything on loopback: a private redis-server, the ComfyUI test server, one scenefarm-worker.
# Usage: bash bench/render_bench.sh [BUILD_DIR] [SCENES] [RENDER_MS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-40}
RENDER_MS=${3:-500}
CLI=$BUILD/cli/scenefarm
WORKER=$BUILD/worker/scenefarm-worker
COMFY_BIN=$BUILD/tests/comfyui_server/scenefarm-comfyui-test-server
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.05; done
URL=redis://127.0.0.1:$RPORT/0
rc() { redis-cli -p "$RPORT" "$@"; }

mkdir -p "$WORK/comfy"
"$COMFY_BIN" --port 0 --port-file "$WORK/comfy/port" --base-dir "$WORK/comfy" >"$WORK/comfy.log" 2>&1 &
pids+=($!)
until [ -s "$WORK/comfy/port" ]; do sleep 0.05; done
COMFY=http://127.0.0.1:$(cat "$WORK/comfy/port")

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); $N scenes of 2 frames x $((RENDER_MS / 2)) ms per mode"

gen() {  # gen PREFIX: N scenes, each a distinct seed so ComfyUI's cache cannot skip the render
  awk -v n="$N" -v p="$1" -v ms="$((RENDER_MS / 2))" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"id\":\"%s%03d\",\"run\":\"%s\",\"workflow\":{\"1\":{\"class_type\":\"ScenefarmTestSource\",\"inputs\":{\"frames\":2,\"width\":64,\"height\":64,\"render_ms_per_frame\":%d,\"seed\":%d}},\"2\":{\"class_type\":\"SaveImage\",\"inputs\":{\"images\":[\"1\",0],\"filename_prefix\":\"x\"}}}}\n", p, i, p, ms, i }'
}

percentile() {  # percentile P < numbers
  sort -n | awk -v p="$1" '{ a[NR] = $1 } END { if (NR == 0) { print "n/a"; exit }
    i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; if (i > NR) i = NR; printf "%.0f", a[i] }'
}

run_mode() {  # run_mode NAME WEBSOCKET PIPELINE_DEPTH
  local name=$1 ws=$2 depth=$3
  rc flushall >/dev/null
  curl -s -X POST "$COMFY/history" -d '{"clear": true}' >/dev/null
  gen "$name-" >"$WORK/$name.jsonl"
  "$CLI" --redis-url "$URL" enqueue "$WORK/$name.jsonl" >/dev/null
  local start end
  start=$(date +%s.%N)
  SCENEFARM_COMFYUI_WEBSOCKET=$ws "$WORKER" --redis-url "$URL" --comfyui-url "$COMFY" \
    --comfyui-output-dir "$WORK/comfy/output" --artifacts-dir "$WORK/artifacts" \
    --worker-id "bench-$name" --pipeline-depth "$depth" --idle-poll-seconds 0.05 \
    --scene-history-poll-interval-seconds 2 --stability-window-seconds 0.2 \
    2>"$WORK/worker-$name.log" &
  local wp=$!
  until [ "$(rc hget 'sf:{scenes}:stats' succeeded)" = "$N" ]; do sleep 0.1; done
  end=$(date +%s.%N)
  kill "$wp"
  wait "$wp" 2>/dev/null || true
  # Per scene: ComfyUI's finish (ms) and the ack (ms), and ComfyUI's start of the prompt.
  : >"$WORK/$name.times"
  for i in $(seq -f '%03g' 0 $((N - 1))); do
    local id=$name-$i
    local h
    h=$(curl -s "$COMFY/history/$id-a1")
    local fin st ack
    fin=$(jq -r --arg p "$id-a1" '.[$p].status.messages[] | select(.[0] == "execution_success") | .[1].timestamp' <<<"$h")
    st=$(jq -r --arg p "$id-a1" '.[$p].status.messages[] | select(.[0] == "execution_start") | .[1].timestamp' <<<"$h")
    ack=$(rc hget "sf:{scenes}:scene:$id" finished_at)
    echo "$st $fin $ack" >>"$WORK/$name.times"
  done
  local p1_50 p1_99 gap_50 gap_99 gap_sum
  p1_50=$(awk '{ print $3 - $2 }' "$WORK/$name.times" | percentile 50)
  p1_99=$(awk '{ print $3 - $2 }' "$WORK/$name.times" | percentile 99)
  sort -n "$WORK/$name.times" | awk 'NR > 1 { print $1 - prev } { prev = $2 }' >"$WORK/$name.gaps"
  gap_50=$(percentile 50 <"$WORK/$name.gaps")
  gap_99=$(percentile 99 <"$WORK/$name.gaps")
  gap_sum=$(awk '{ s += $1 } END { printf "%.1f", s / 1000 }' "$WORK/$name.gaps")
  awk -v n="$N" -v name="$name" -v ws="$ws" -v d="$depth" -v s="$start" -v e="$end" \
    -v a="$p1_50" -v b="$p1_99" -v c="$gap_50" -v g="$gap_99" -v t="$gap_sum" 'BEGIN {
    printf "| %s | %s | %d | %d | %s | %s | %s | %s | %s | %.1f |\n", name, ws == 1 ? "events + polls" : "polls only", d, n, a, b, c, g, t, e - s }'
}

echo
echo "| mode | completion | pipeline depth | scenes | P1 finish→ack p50 ms | P1 p99 ms | P2 idle gap p50 ms | P2 p99 ms | idle total s | wall s |"
echo "|---|---|---|---|---|---|---|---|---|---|"
run_mode ws 1 1
run_mode poll 0 1
run_mode ws-nopipe 1 0
run_mode poll-nopipe 0 0
