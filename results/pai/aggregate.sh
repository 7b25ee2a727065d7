#!/usr/bin/env bash
# Tables, figures and score timings of results/pai/ from the runs of run.sh (repository root).
set -euo pipefail
OUT=${OUT:-/tmp/pai/runs}
PY=${PY:-python}
$PY -m scripts.compare_methods "$OUT/pai_mnist1d" --seeds 5 --out results/pai/mnist1d
$PY -m scripts.compare_methods "$OUT/pai_digits" --seeds 5 --out results/pai/digits
rm -f results/pai/score_timing.md
for exp in pai_mnist1d pai_digits; do
  OMP_NUM_THREADS=1 $PY -m scripts.score_timing --experiment $exp --repeats 5 \
    --out results/pai/score_timing.md
done
