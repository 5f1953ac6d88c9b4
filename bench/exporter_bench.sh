#!/usr/bin/env bash
# Exporter benchmark (issue #6), one run, side by side on the same redis-server:
#  P4: scrape latency p50/p99 of GET /metrics;
#  P5: resident memory (VmRSS) after the scrapes;
# for scenefarm-exporter and Debian's prometheus-redis-exporter reading the same keys
# (-check-keys 'sf:*': the size of every scenefarm key), with 1,000 workers' state and 10 queues
# written through the queue protocol (scenefarm enqueue, worker heartbeats, outcome counters).
# Usage: bash bench/exporter_bench.sh [BUILD_DIR] [SCRAPES]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SCRAPES=${2:-200}
CLI=$BUILD/cli/scenefarm
EXPORTER=$BUILD/exporter/scenefarm-exporter
if ! command -v prometheus-redis-exporter >/dev/null; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q --no-install-recommends prometheus-redis-exporter >/dev/null
fi
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

# 10 queues of 100 pending scenes each, through the CLI (the queue protocol's own scripts).
for q in $(seq 0 9); do
  awk -v q="$q" 'BEGIN { for (i = 0; i < 100; i++)
    printf "{\"id\":\"q%d-%d\",\"run\":\"r%d\",\"workflow\":{\"1\":{\"class_type\":\"EmptyImage\",\"inputs\":{}}}}\n", q, i, i % 5 }' |
    "$CLI" --redis-url "$URL" --queue "queue$q" enqueue - >/dev/null 2>&1
done
# 1,000 workers: heartbeats (the workers zset) and their hashes; outcome counters and histogram
# buckets as the ack script writes them.
now_ms=$(($(date +%s%N) / 1000000))
{
  for w in $(seq 1 1000); do
    echo "ZADD sf:workers $now_ms worker-$w"
    echo "HSET sf:worker:worker-$w host bench pid $w busy $((w % 2)) scene q0-$((w % 100)) heartbeat_at $now_ms"
  done
  for q in $(seq 0 9); do
    p="sf:{queue$q}:"
    echo "HSET ${p}stats succeeded 5000 failed 120 retried 100 dead_lettered 20 completion_done_marker 4700 completion_forced_copy 300 exit_success 5000 frames 120000"
    for h in duration end_to_end; do echo "HSET ${p}h:$h 30 1000 45 2500 60 1200 120 300 +Inf 0 sum 240000 count 5000"; done
    echo "HSET ${p}h:queue_wait 0.1 4000 1 900 10 100 sum 1200 count 5000"
    echo "HSET ${p}h:done_marker_wait 0.1 4000 1 600 10 100 sum 700 count 4700"
    echo "HSET ${p}h:frames 22 100 24 4900 sum 119900 count 5000"
  done
} | redis-cli -p "$RPORT" --pipe >/dev/null
keys=$(rc dbsize)

SF_PORT=$(free_port)
"$EXPORTER" --listen "127.0.0.1:$SF_PORT" --redis-url "$URL" --comfyui-url '' --gpu-source none \
  --log-level warn 2>"$WORK/sf.log" &
sf_pid=$!
pids+=($sf_pid)
RE_PORT=$(free_port)
prometheus-redis-exporter -redis.addr "$URL" -web.listen-address "127.0.0.1:$RE_PORT" \
  -check-keys 'sf:*' >"$WORK/re.log" 2>&1 &
re_pid=$!
pids+=($re_pid)
for p in "$SF_PORT" "$RE_PORT"; do
  until curl -sf "http://127.0.0.1:$p/metrics" >/dev/null 2>&1; do sleep 0.1; done
done

percentile() { sort -n | awk -v p="$1" '{ a[NR] = $1 } END { i = int(p / 100 * NR + 0.999999); if (i < 1) i = 1; printf "%.1f", a[i] }'; }
measure() {  # measure NAME PORT PID
  local name=$1 port=$2 pid=$3
  : >"$WORK/$name.t"
  for _ in $(seq 1 "$SCRAPES"); do
    curl -s -o "$WORK/$name.out" -w '%{time_total}\n' "http://127.0.0.1:$port/metrics" | awk '{ printf "%.3f\n", $1 * 1000 }' >>"$WORK/$name.t"
  done
  local series rss
  series=$(grep -vc '^#' "$WORK/$name.out")
  rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  printf '| %s | %d | %s | %s | %s | %s |\n' "$name" "$SCRAPES" "$(percentile 50 <"$WORK/$name.t")" \
    "$(percentile 99 <"$WORK/$name.t")" "$series" "$rss"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); redis $(redis-server --version | awk '{print $3}'); $keys keys (1,000 workers, 10 queues)"
echo
echo "| exporter | scrapes | P4 scrape p50 ms | P4 p99 ms | series | P5 RSS MiB |"
echo "|---|---|---|---|---|---|"
measure scenefarm-exporter "$SF_PORT" "$sf_pid"
measure "prometheus-redis-exporter (-check-keys 'sf:*')" "$RE_PORT" "$re_pid"
