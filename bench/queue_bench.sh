#!/usr/bin/env bash
# Queue benchmark (issue #4): scenes/s through 1 and 4 workers with a renderer that returns at
# once (scenefarm-test-worker), Redis commands per scene, redis-benchmark's rate for the
# commands the scripts use on the same server in the same run, and enqueue of 1,000,000
# scenes through the CLI (seconds, Redis memory per pending scene).
# Usage: bash bench/queue_bench.sh [BUILD_DIR] [SCENES_PER_WORKER_RUN] [ENQUEUE_SCENES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
N=${2:-20000}
BIG=${3:-1000000}
CLI=$BUILD/cli/scenefarm
TW=$BUILD/tests/scenefarm-test-worker
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" >"$WORK/redis.log" 2>&1 &
pids+=($!)
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.05; done
URL=redis://127.0.0.1:$PORT/0
rc() { redis-cli -p "$PORT" "$@"; }
stat() { rc info "$1" | tr -d '\r' | awk -F: -v k="$2" '$1==k {print $2}'; }

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(redis-server --version | awk '{print $3}')"

gen() {  # gen COUNT PREFIX: JSON lines of minimal scenes
  awk -v n="$1" -v p="$2" 'BEGIN { for (i = 0; i < n; i++)
    printf "{\"id\":\"%s%d\",\"run\":\"bench\",\"workflow\":{\"1\":{\"class_type\":\"EmptyImage\",\"inputs\":{}}}}\n", p, i }'
}

through_workers() {  # through_workers WORKERS
  local w=$1
  rc flushall >/dev/null
  gen "$N" "w$w-" >"$WORK/scenes.jsonl"
  "$CLI" --redis-url "$URL" enqueue "$WORK/scenes.jsonl" >/dev/null 2>&1
  rc config resetstat >/dev/null
  local start end
  start=$(date +%s.%N)
  local wp=()
  for i in $(seq 1 "$w"); do
    "$TW" --redis-url "$URL" --worker-id "bench-$i" --idle-poll-seconds 0.01 2>"$WORK/worker-$i.log" &
    wp+=($!)
  done
  until [ "$(rc hget 'sf:{scenes}:stats' succeeded)" = "$N" ]; do sleep 0.02; done
  end=$(date +%s.%N)
  for p in "${wp[@]}"; do kill "$p"; done
  wait "${wp[@]}" 2>/dev/null || true
  local rt evalsha
  # Round trips of the workers' loop connections (each logs them when it stops); the heartbeat
  # connection adds one round trip per worker per heartbeat period, independent of scenes.
  rt=$(cat "$WORK"/worker-*.log | jq -s '[.[] | select(.event == "worker_stopped") | .redis_round_trips] | add')
  evalsha=$(rc info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_evalsha/ {print $3}')
  local all
  all=$(rc info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_/ {s += $3} END {print s}')
  awk -v n="$N" -v w="$w" -v s="$start" -v e="$end" -v c="$rt" -v ev="$evalsha" -v a="$all" 'BEGIN {
    printf "| %d worker(s) | %d | %.2f | %.0f | %.2f | %.2f | %.1f |\n", w, n, e - s, n / (e - s), c / n, ev / n, a / n }'
}

if [ "$N" -gt 0 ]; then  # SCENES_PER_WORKER_RUN=0: the enqueue figure alone
echo
echo "| workers | scenes | seconds | scenes/s | worker round trips/scene | EVALSHA/scene | Redis commands/scene (scripts' inner calls included) |"
echo "|---|---|---|---|---|---|---|"
through_workers 1
through_workers 4

echo
echo "redis-benchmark on the same server (4 clients, no pipelining), the commands the scripts use:"
rc flushall >/dev/null
redis-benchmark -p "$PORT" -c 4 -n 200000 -q -r 100000 hset 'h:__rand_int__' f v 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1 | sed 's/^/  HSET /'
redis-benchmark -p "$PORT" -c 4 -n 200000 -q -r 100000 zadd z __rand_int__ m__rand_int__ 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1 | sed 's/^/  ZADD /'
redis-benchmark -p "$PORT" -c 4 -n 200000 -q xadd s MAXLEN '~' 100000 '*' f v 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1 | sed 's/^/  XADD MAXLEN ~ /'
redis-benchmark -p "$PORT" -c 4 -n 200000 -q -r 100000 hincrby stats __rand_int__ 1 2>/dev/null | tr '\r' '\n' | grep -v '^$' | tail -1 | sed 's/^/  HINCRBY /'

fi

echo
rc flushall >/dev/null
gen "$BIG" "big-" >"$WORK/big.jsonl"
rc config resetstat >/dev/null
before=$(stat memory used_memory)
start=$(date +%s.%N)
"$CLI" --redis-url "$URL" enqueue "$WORK/big.jsonl" >/dev/null 2>"$WORK/enqueue.err"
end=$(date +%s.%N)
after=$(stat memory used_memory)
pending=$(rc zcard 'sf:{scenes}:pending')
calls=$(rc info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_evalsha/ {print $3}')
usec=$(rc info commandstats | tr -d '\r' | awk -F'[:=,]' '/^cmdstat_evalsha/ {print $5}')
awk -v n="$pending" -v s="$start" -v e="$end" -v b="$before" -v a="$after" -v c="$calls" -v u="$usec" 'BEGIN {
  printf "enqueue of %d scenes through the CLI: %.1f s (%.0f scenes/s), Redis memory %.0f bytes per pending scene\n", n, e - s, n / (e - s), (a - b) / n
  printf "  %d script calls (%.0f scenes per call), %.1f s of them inside Redis\n", c, n / c, u / 1e6 }'
