#!/bin/bash
# The default experiment's ticket (prune.controls=[]), rounds 0..ROUNDS (default 12), seeds 0-4, under two
# kernel settings of one machine, A (its default kernels) and B (B_ENV, default
# ATEN_CPU_CAPABILITY=avx2: on an AVX-512 CPU, the kernels an AVX2 CPU runs), one thread each,
# A and B as two parallel queues; then the means table. Run from the repository root:
#   bash results/portable/seeds.sh            # -> $OUT/A, $OUT/B, results/portable/means.md
set -e
P=${PYTHON:-python}
OUT=${OUT:-/tmp/lth_portable_seeds}
B_ENV=${B_ENV:-ATEN_CPU_CAPABILITY=avx2}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
ROUNDS=${ROUNDS:-12}
run() {  # setting seed
  local extra=()
  [ "$1" = B ] && extra=($B_ENV)
  env "${extra[@]}" $P -m experiments.lottery seed=$2 prune.controls=[] prune.rounds=$ROUNDS progress=false \
    wandb.mode=disabled output_root=$OUT/$1 > $OUT/$1-seed$2.log 2>&1
}
mkdir -p $OUT
for seed in 0 1 2 3 4; do run A $seed; done &
for seed in 0 1 2 3 4; do run B $seed; done
wait
$P results/portable/summarize.py "$OUT" "$B_ENV" > results/portable/means.md
