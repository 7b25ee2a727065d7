#!/usr/bin/env bash
# The GPU checks of issue #12, in under 8 minutes on one GPU:
#   1. the `gpu` tests (precision keeps pruned weights zero, deterministic resume, BatchNorm
#      replicas on CUDA), ~1-2 min;
#   2. python -m scripts.benchmark --device cuda (sections 1-3 and 6; the CLI start-up
#      sections 4-5 are CPU figures already), written to results/benchmarks/gpu-<date>.json.
# Usage: scripts/gpu_check.sh   (PYTHON=... to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
day=$(date -u +%F)
out=results/benchmarks
mkdir -p "$out"
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA device')"
"$PY" -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"
tests=0
timeout 240 "$PY" -m pytest -q -m gpu tests/ 2>&1 | tee "$out/gpu-$day-tests.txt" || tests=$?
timeout 300 "$PY" -m scripts.benchmark --device cuda --repeats 2 --skip 45 \
    --out "$out/gpu-$day.json" 2>&1 | tee "$out/gpu-$day-table.txt"
exit "$tests"  # the benchmark runs even when a test failed; the exit status is the tests'.
