#!/usr/bin/env bash
# The runs behind results/sparse_training/ (from the repository root): MNIST-1D's MLP
# 40-100-100-10 with the pai_mnist1d recipe (Adam 2e-3, batch 100) shortened to 1500 iterations
# per training (a shared 2-core CPU), seeds 0-2
# trained together (replicas=3), at 10, 5 and 2% density: IMP (global magnitude, rewind to
# init, schedule 20/10/5/2% with random_prune beside every round), SNIP at init, and the
# sparse trainings static (ERK), SET (ERK), RigL (ERK and uniform) and GMP (uniform and ERK).
set -euo pipefail
OUT=${OUT:-/tmp/sparse_training/runs}
PY=${PY:-python}
common=(experiment=pai_mnist1d name=dst_mnist1d output_root="$OUT" wandb.mode=disabled
        progress=false replicas=3 seed=0 train.duration=1500it)
run() { OMP_NUM_THREADS=1 $PY -m experiments.lottery "$@" "${common[@]}"; }
run -m sparse.method=rigl,set,static sparse.distribution=erk sparse.density=0.1,0.05,0.02
run -m sparse.method=rigl,gmp sparse.distribution=uniform sparse.density=0.1,0.05,0.02
run prune.at_init=false prune.strategy=magnitude_global 'prune.schedule=[0.2,0.1,0.05,0.02]' \
  prune.rounds=4 'prune.controls=[random_prune]'
run prune.at_init=true prune.strategy=snip 'prune.schedule=[0.1,0.05,0.02]' prune.rounds=3 \
  'prune.controls=[]'
run -m sparse.method=gmp sparse.distribution=erk sparse.density=0.1,0.05,0.02
