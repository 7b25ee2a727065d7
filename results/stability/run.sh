#!/usr/bin/env bash
# The commands behind results/stability/ (run from the repository root on a CPU).
# Tickets: IMP with weight rewinding, a rewind sweep, 5 seeds per rewind point (replicas=5:
# the 5 seeds in one process). Instability: the dense round 0 and two pruned rounds (densities)
# of every run, 30 α points.
set -euo pipefail
ROOT=${ROOT:-/tmp/stab/runs}
PY=${PY:-python}
export OMP_NUM_THREADS=1

# MNIST-1D: experiment=mnist1d_mlp (MLP 40-100-100-10, 3000 it and 20% per round; the default
# until issue 13).
nice -n 10 $PY -m experiments.lottery -m experiment=mnist1d_mlp output_root=$ROOT progress=false \
  wandb.mode=disabled \
  replicas=5 prune.rounds=8 prune.rewind=0it,50it,200it,1000it
for run in $ROOT/mnist1d_mlp/*/; do
  nice -n 10 $PY -m experiments.instability run_dir=$run 'rounds=[0,4,8]' progress=false \
    wandb_mode=disabled
done

# LeNet-300-100 on digits (1000 it per round, so the latest rewind point is 500 it).
nice -n 10 $PY -m experiments.lottery -m experiment=lenet_digits output_root=$ROOT \
  progress=false wandb.mode=disabled replicas=5 prune.rounds=4 \
  prune.rewind=0it,50it,200it,500it
for run in $ROOT/lenet_digits/*/; do
  nice -n 10 $PY -m experiments.instability run_dir=$run 'rounds=[0,2,4]' progress=false \
    wandb_mode=disabled
done

# Tables and figures.
for exp in mnist1d_mlp lenet_digits; do
  $PY -m scripts.aggregate $ROOT/$exp --out results/stability/$exp --instability
  $PY -m scripts.masks $ROOT/$exp --out results/stability/$exp/masks
done
