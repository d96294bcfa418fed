#!/usr/bin/env bash
# CPU decode benchmark: Wan 2.1 (random weights: the speed does not depend on them) against the
# other decoders at a small shape, all in one process so the speedups share the same conditions.
# Usage: scripts/bench_cpu.sh [DECODERS] [FRAMES] [HxW] [REPEATS]
#   e.g. scripts/bench_cpu.sh wan2.1,mini-wan,wan2.1-tiny 9 64x64 3
# Add --json to the command below for machine-readable output. mini-wan needs its trained weights
# (data/checkpoints/mini-wan); drop it from the list if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
DECODERS="${1:-wan2.1,wan2.1-tiny}"
FRAMES="${2:-9}"
SIZE="${3:-64x64}"
REPEATS="${4:-3}"
exec python -m lab bench --decoders "$DECODERS" --weights random --device cpu --frames "$FRAMES" \
    --size "$SIZE" --repeats "$REPEATS" --warmup 1
