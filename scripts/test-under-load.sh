#!/usr/bin/env bash
# Issue #15 R7's proof: the whole `make test` RUNS times in a row (default 3) while
# `stress-ng --cpu N` (default: one hog per core) keeps every core busy, stopping at the first
# failure. Logs: OUT/run-K.log (default OUT=build/under-load), the load average every minute in
# OUT/load.log, a summary line per run in OUT/summary.log. Not part of `make test` (hours).
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
HOGS=${HOGS:-$(nproc)}
OUT=${OUT:-build/under-load}
mkdir -p "$OUT"
command -v stress-ng > /dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng; }
echo "commit $(git rev-parse --short HEAD), stress-ng --cpu $HOGS, $(nproc) cores, start $(date -u +%FT%TZ)" \
  | tee "$OUT/summary.log"
stress-ng --cpu "$HOGS" --metrics-brief > "$OUT/stress.log" 2>&1 &
stress=$!
( while kill -0 "$stress" 2> /dev/null; do echo "$(date -u +%T) $(cat /proc/loadavg)"; sleep 60; done ) \
  > "$OUT/load.log" &
watcher=$!
trap 'kill "$stress" "$watcher" 2> /dev/null; wait "$stress" 2> /dev/null' EXIT
rc=0
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  make test > "$OUT/run-$i.log" 2>&1
  rc=$?
  echo "run $i: exit $rc, $(( $(date +%s) - start )) s, end $(date -u +%FT%TZ)" | tee -a "$OUT/summary.log"
  [ "$rc" = 0 ] || break
done
exit "$rc"
