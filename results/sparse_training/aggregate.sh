#!/usr/bin/env bash
# Tables and figure of results/sparse_training/ from the runs of run.sh.
set -euo pipefail
OUT=${OUT:-/tmp/sparse_training/runs}
PY=${PY:-python}
$PY -m scripts.compare_sparse "$OUT/dst_mnist1d" --out results/sparse_training
