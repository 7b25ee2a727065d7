#!/usr/bin/env bash
# The runs behind results/pai/ (from the repository root): every method at 50/20/10/5/2%, with
# the random_prune and invert controls, on MNIST-1D and digits, seeds 0-4. About
# 1-3 min per MNIST-1D run directory and 0.5-1 min per digits one (16 trainings each) on a
# shared 2-core CPU, one thread.
set -euo pipefail
OUT=${OUT:-/tmp/pai/runs}
PY=${PY:-python}
common=(output_root="$OUT" wandb.mode=disabled progress=false)
for spec in pai_mnist1d:5 pai_digits:5; do
  exp=${spec%:*}; seeds=${spec#*:}
  OMP_NUM_THREADS=1 nice -n 10 $PY -m experiments.lottery -m experiment=$exp "${common[@]}" \
    prune.strategy=snip,grasp,synflow,magnitude_init,random "seed=range(0,$seeds)"
  OMP_NUM_THREADS=1 nice -n 10 $PY -m experiments.lottery -m experiment=$exp "${common[@]}" \
    prune.at_init=false prune.strategy=magnitude_global "seed=range(0,$seeds)"
done
