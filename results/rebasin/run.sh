#!/usr/bin/env bash
# The runs behind results/rebasin/README.md, one process at a time on one thread.
# Usage: OUT=/tmp/rebasin/runs bash results/rebasin/run.sh   (from the repository root)
set -euo pipefail
OUT=${OUT:-runs/rebasin}
PY=${PY:-python}
export OMP_NUM_THREADS=1
common=(progress=false wandb.mode=disabled "output_root=$OUT" "prune.controls=[]")
mlp=(experiment=mnist1d_mlp train.duration=1500it)
dir() { $PY -m experiments.lottery "$@" | sed -n 's/^run directory: //p'; }

# 1. mnist1d_mlp (40-100-100-10, global magnitude pruning), 3 seeds, 6 rounds (to 27.6%)
for s in 0 1 2; do m[$s]=$(dir "${mlp[@]}" prune.rounds=6 seed=$s "${common[@]}"); done
for p in "0 1" "1 2" "2 0"; do
  set -- $p
  $PY -m experiments.barrier run_a=${m[$1]} run_b=${m[$2]} 'rounds=[0,3,6]' wandb_mode=disabled
  $PY -m experiments.transport run_a=${m[$1]} run_b=${m[$2]} 'rounds=[3,6]' progress=false \
    wandb_mode=disabled
done
# 2. width: dense mnist1d_mlp networks of hidden width 25 and 400 (100 is above), 2 seeds
for w in 25 400; do
  a=$(dir "${mlp[@]}" prune.rounds=0 "model.hidden=[$w,$w]" seed=0 "${common[@]}")
  b=$(dir "${mlp[@]}" prune.rounds=0 "model.hidden=[$w,$w]" seed=1 "${common[@]}")
  $PY -m experiments.barrier run_a=$a run_b=$b wandb_mode=disabled
done
# 3. the default network (mnist1d_lottery: residual 40-500-500-10), dense, 3 seeds
for s in 0 1 2; do d[$s]=$(dir prune.rounds=0 seed=$s "${common[@]}"); done
for p in "0 1" "1 2" "2 0"; do
  set -- $p
  $PY -m experiments.barrier run_a=${d[$1]} run_b=${d[$2]} wandb_mode=disabled
done
# 4. the default network's tickets: seeds 0 and 1 extended to 4 rounds (prune.rounds is not
#    hashed: the dense runs above resume), their round-4 masks transported both ways
for s in 0 1; do d[$s]=$(dir prune.rounds=4 seed=$s "${common[@]}"); done
$PY -m experiments.barrier run_a=${d[0]} run_b=${d[1]} 'rounds=[4]' wandb_mode=disabled
for p in "0 1" "1 0"; do
  set -- $p
  $PY -m experiments.transport run_a=${d[$1]} run_b=${d[$2]} 'rounds=[4]' progress=false \
    wandb_mode=disabled
done
