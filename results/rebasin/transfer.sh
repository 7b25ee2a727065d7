#!/usr/bin/env bash
# The ticket-transfer table of results/rebasin/README.md: mnist1d_mlp seed 0's tickets of
# rounds 3 and 6 (run.sh) trained on MNIST-1D generated with 10,000 samples instead of 5,000
# (the same generator seed: a larger set of the same task that may share samples with the
# source's), as ticket, random_prune and random_reinit, and the target's dense network.
# Usage: SOURCE=<mnist1d_mlp seed 0 run dir> OUT=/tmp/rebasin/runs bash results/rebasin/transfer.sh
set -euo pipefail
OUT=${OUT:-runs/rebasin}
PY=${PY:-python}
export OMP_NUM_THREADS=1
target=(dataset=mnist1d dataset.num_samples=10000 "output_root=$OUT" progress=false
        wandb.mode=disabled)
for k in 3 6; do
  for v in ticket random_prune random_reinit; do
    $PY -m experiments.transfer source=$SOURCE round=$k variant=$v "${target[@]}"
  done
done
$PY -m experiments.lottery experiment=mnist1d_mlp train.duration=1500it prune.rounds=0 \
  dataset.num_samples=10000 'prune.controls=[]' name=transfer_target_dense "output_root=$OUT" \
  progress=false wandb.mode=disabled
