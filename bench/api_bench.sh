#!/usr/bin/env bash
# JSON API benchmark (issue #17): latency p50/p99 of each GET endpoint of scenefarm-exporter's
# /api/ over a queue of SCENES pending scenes (enqueued with the CLI: as many events in the
# stream, capped at 100,000 by the stream's MAXLEN) and 1,000 dead ones, and the longest Redis
# command the requests caused (SLOWLOG over 1 ms), i.e. how long the API held Redis at once.
# Usage: bash bench/api_bench.sh [BUILD_DIR] [SCENES] [REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SCENES=${2:-100000}
REQUESTS=${3:-20}
CLI=$BUILD/cli/scenefarm
EXPORTER=$BUILD/exporter/scenefarm-exporter
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
awk -v n="$SCENES" 'BEGIN { for (i = 0; i < n; i++)
  printf "{\"id\":\"s%d\",\"run\":\"r%d\",\"workflow\":{\"1\":{\"class_type\":\"EmptyImage\",\"inputs\":{}}}}\n", i, i % 50 }' \
  >"$WORK/scenes.jsonl"
"$CLI" --redis-url "$URL" enqueue "$WORK/scenes.jsonl" >/dev/null 2>&1
# 1,000 of them dead-lettered, as fail.lua leaves them (zset + state).
now_ms=$(($(date +%s%N) / 1000000))
for i in $(seq 0 999); do
  echo "ZREM sf:{scenes}:pending s$i"
  echo "ZADD sf:{scenes}:dead $now_ms s$i"
  echo "HSET sf:{scenes}:scene:s$i state dead reason bench"
done | redis-cli -p "$RPORT" --pipe >/dev/null

PORT=$(free_port)
"$EXPORTER" --listen "127.0.0.1:$PORT" --redis-url "$URL" --comfyui-url '' --gpu-source none \
  --log-level warn 2>"$WORK/exporter.log" &
pids+=($!)
until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; do sleep 0.05; done
redis-cli -p "$RPORT" config set slowlog-log-slower-than 1000 >/dev/null
redis-cli -p "$RPORT" slowlog reset >/dev/null

echo "scenes: $SCENES pending (1,000 of them dead), $(redis-cli -p "$RPORT" xlen 'sf:{scenes}:events') events; $REQUESTS requests per endpoint"
printf '%-52s %10s %10s\n' endpoint p50_ms p99_ms
for path in /api/queues "/api/queues/scenes/scenes?state=pending&limit=50" \
  "/api/queues/scenes/scenes?state=pending&limit=50&offset=90000" \
  "/api/queues/scenes/scenes?state=pending&q=r7&limit=50" "/api/queues/scenes/scenes?state=dead" \
  "/api/queues/scenes/scenes?state=done" /api/scenes/s5000 /api/runs /api/runs/r7 /api/workers; do
  for i in $(seq 1 "$REQUESTS"); do
    curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$PORT$path"
  done | sort -n | awk -v p="$path" '{ a[NR] = $1 } END {
    i50 = int((NR + 1) * 0.5); i99 = int(NR * 0.99 + 0.999); if (i99 > NR) i99 = NR
    printf "%-52s %10.1f %10.1f\n", p, a[i50] * 1000, a[i99] * 1000 }'
done
echo "Redis commands over 1 ms during the requests (longest first):"
redis-cli -p "$RPORT" --json slowlog get 20 |
  jq -r '.[] | "  \(.[2]) us  \(.[3] | map(tostring) | join(" ") | .[0:90])"' | sort -k1,1 -rn | head -5
