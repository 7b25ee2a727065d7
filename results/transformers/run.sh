#!/usr/bin/env bash
# The runs behind results/transformers/README.md (lth at the commit named there), one thread
# each, W&B off. Usage: bash results/transformers/run.sh <output_root>
set -euo pipefail
out=${1:-runs}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
py=${PYTHON:-python}
oneshot() {
  $py -m experiments.lottery -m experiment=vit_digits_oneshot output_root="$out" progress=false \
    prune.strategy=magnitude_row,wanda,sparsegpt 'seed=range(0,3)' "$@"
}
# One-shot pruning of the dense ViT on digits (each run trains its own dense round 0):
oneshot prune.finetune_duration=0it,100it                          # 50%, unstructured
oneshot prune.finetune_duration=0it,100it "prune.nm='2:4'"         # 2:4
oneshot prune.finetune_duration=0it 'prune.schedule=[0.2]'         # 20%, no retraining
# IMP with rewinding to iteration 40 against random reinitialisation, 3 rounds (50/25/12.5%).
$py -m experiments.lottery -m experiment=vit_digits output_root="$out" progress=false \
  prune.rounds=3 'seed=range(0,3)'
$py -m scripts.oneshot_table "$out" --out results/transformers
