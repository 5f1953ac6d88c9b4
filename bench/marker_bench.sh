#!/usr/bin/env bash
# Done-marker benchmark (issue #13): ComfyUI time the marker adds per scene, p50/p99, with the
# marker's node run first and last. See bench/marker_bench.py.
# Usage: bash bench/marker_bench.sh [SCENES] [FRAMES] [OUTPUT_PARENT_DIR] [BUILD_DIR]
# (with BUILD_DIR, also on that build's ComfyUI test server in both output orders)
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 bench/marker_bench.py "${1:-200}" "${2:-24}" "${3:-}" "${4:-build}"
