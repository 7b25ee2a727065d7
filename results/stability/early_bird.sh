#!/usr/bin/env bash
# Early-bird detection (You et al. 2020) on MNIST-1D, default model and preset, 5 seeds:
# a mask every 100 it of round 0, window 5, threshold 0.1; round 1 once from the early-bird
# mask (analysis.early_bird_ticket=true, hashed) and once as usual (the end of round 0).
set -euo pipefail
ROOT=${ROOT:-/tmp/stab/eb_runs}
PY=${PY:-python}
export OMP_NUM_THREADS=1
for ticket in false true; do
  nice -n 10 $PY -m experiments.lottery -m experiment=mnist1d_mlp output_root=$ROOT progress=false \
    wandb.mode=disabled prune.rounds=1 seed=0,1,2,3,4 analysis.early_bird_every=100it \
    analysis.early_bird_ticket=$ticket
done
$PY results/stability/early_bird_table.py $ROOT/mnist1d_mlp
