#!/usr/bin/env bash
# Purge benchmark (issue #12): how long one script call holds Redis (and so every worker's
# heartbeat) while dead-lettered scenes are purged. DEAD scenes are dead-lettered, then purged
# once in a single script call (what `scenefarm purge` did before) and once through
# `scenefarm purge` (script_batch scenes per call). Redis's latency monitor records the longest
# command (a script call), INFO commandstats the script calls and their time.
# Usage: bash bench/purge_bench.sh [BUILD_DIR] [DEAD]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DEAD=${2:-100000}
CLI=$BUILD/cli/scenefarm
WORK=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK" \
  --latency-monitor-threshold 1 >"$WORK/redis.log" 2>&1 &
pid=$!
until redis-cli -p "$PORT" ping >/dev/null 2>&1; do sleep 0.05; done
rc() { redis-cli -p "$PORT" "$@"; }
echo "machine: $(nproc) cores, $(redis-server --version | awk '{print $3}'), $DEAD dead-lettered scenes"

dead() {  # DEAD dead-lettered scenes (record and place in the dead set), through one pipe
  awk -v n="$DEAD" 'BEGIN { for (i = 0; i < n; i++) {
    printf "HSET sf:{scenes}:scene:d%d state dead run bench attempts 1 reason boom\n", i
    printf "ZADD sf:{scenes}:dead 1000 d%d\n", i } }' | rc --pipe >/dev/null
}
# Script calls since the last reset: how many, the longest and all together (ms).
calls() {
  local n total longest
  read -r n total < <(rc info commandstats | tr -d '\r' |
    awk -F'[:=,]' '/^cmdstat_eval(sha)?:/ {n += $3; t += $5} END {printf "%d %.1f\n", n, t / 1000}')
  longest=$(rc --json latency latest | jq -r '[.[] | select(.[0] == "command") | .[3]] | max // 0')
  echo "$n $longest $total"
}
reset() { rc config resetstat >/dev/null; rc latency reset >/dev/null; }
row() {  # row LABEL: one table row
  read -r n longest total < <(calls)
  printf "| %s | %d | %s | %s |\n" "$1" "$n" "$longest" "$total"
}

echo "| purge | script calls | longest call (ms) | all calls (ms) |"
echo "|---|---|---|---|"
dead
reset
rc eval "$(cat common/queue/lua/lib.lua; echo; cat common/queue/lua/purge.lua)" 0 \
  'sf:{scenes}:' 0 2000 "$DEAD" >/dev/null
row "one call (before)"
[ "$(rc zcard 'sf:{scenes}:dead')" = 0 ] || { echo "not all purged" >&2; exit 1; }
dead
reset
"$CLI" --redis-url "redis://127.0.0.1:$PORT/0" purge --dead --older-than 0s --yes >/dev/null
row "scenefarm purge (batched)"
[ "$(rc zcard 'sf:{scenes}:dead')" = 0 ] || { echo "not all purged" >&2; exit 1; }
