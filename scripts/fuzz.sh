#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang, with ASan and UBSan) and runs each one.
#   bash scripts/fuzz.sh [SECONDS]      each target for SECONDS (default 30): `make test-fuzz`
#   bash scripts/fuzz.sh runs=N         each target for N executions: `make fuzz-soak` (10,000,000)
# A target starts from its corpus (tests/fuzz/corpus/NAME, left as it is: what a run finds goes
# to a scratch directory). A crash, leak, UB report or timeout stops the script with exit 1; the
# input is kept under $BUILD/fuzz-artifacts/, and once fixed it belongs in the corpus as a
# regression case (every corpus file also runs in every build as ctest fuzz.Replay.NAME).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${FUZZ_BUILD:-build-fuzz}
BUDGET=${1:-30}
case "$BUDGET" in
  runs=*) limit=(-runs="${BUDGET#runs=}") ;;
  *) limit=(-max_total_time="$BUDGET") ;;
esac

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSCENEFARM_FUZZ=ON -DSCENEFARM_BUILD_TESTS=OFF -DSCENEFARM_WERROR=ON >/dev/null
cmake --build "$BUILD" -j "$(nproc)" --target fuzzers

artifacts=$BUILD/fuzz-artifacts
mkdir -p "$artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# quarantine_size_mb: with the default, freed memory held by ASan's quarantine grew past the
# 2 GiB RSS limit in 30 s of fuzz_queue_replies (live heap 25 MB, 2.2 million freed chunks held:
# the RESP server thread frees what the client thread reads); with 64 MB the process stays near
# 230 MB. Leaks are still found: LeakSanitizer runs after each input and at exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
printf '%-15s %12s %10s %8s %s\n' target executions exec/s corpus result
failed=0
for src in tests/fuzz/fuzz_*.cpp; do
  t=$(basename "$src" .cpp); t=${t#fuzz_}
  mkdir -p "$scratch/$t"
  log=$artifacts/$t.log
  rc=0
  "$BUILD/tests/fuzz/fuzz_$t" "$scratch/$t" "tests/fuzz/corpus/$t" "${limit[@]}" \
    -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$t-" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corpus=$(ls "$scratch/$t" | wc -l)
  if [ "$rc" -eq 0 ]; then result=ok; else result="FAILED (exit $rc, log $log)"; failed=1; fi
  printf '%-15s %12s %10s %8s %s\n' "$t" "${runs:-?}" "${rate:-?}" "$corpus" "$result"
  if [ "$rc" -ne 0 ]; then grep -E 'ERROR|runtime error|Test unit written|SUMMARY' "$log" | head -20; fi
done
exit $failed
