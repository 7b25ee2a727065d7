#!/usr/bin/env bash
# The runs behind results/transformers/README.md (lth at the commit named there), one thread.
# Usage: bash results/transformers/run.sh <output_root>
set -euo pipefail
out=${1:-runs}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
py=${PYTHON:-python}
# One-shot pruning of the dense ViT on digits: 3 criteria x {50%, 2:4} x {no retraining,
# 100 iterations of fine-tuning}, seeds 0-2 (each run trains its own dense round 0).
for nm in '' '2:4'; do
  $py -m experiments.lottery -m experiment=vit_digits_oneshot output_root="$out" progress=false \
    prune.strategy=magnitude_row,wanda,sparsegpt prune.finetune_duration=0it,100it \
    "prune.nm='$nm'" 'seed=range(0,3)'
done
# IMP with rewinding to iteration 40 against random reinitialisation, 3 rounds (50/25/12.5%).
$py -m experiments.lottery -m experiment=vit_digits output_root="$out" progress=false \
  prune.rounds=3 'seed=range(0,3)'
