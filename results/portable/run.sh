#!/bin/bash
# The runs behind results/portable (run from the repository root, one thread each):
#  1. the default experiment, seed 0, reproducible=portable, rounds 0-4 (--rounds 4) and both
#     controls beside rounds 1-4, written as the committed numbers (seed0.json) by
#     scripts.check_machine --write;
#  2. the default experiment's ticket (prune.controls=[], prune.rounds=1: the CPU this shared
#     machine could spare did not fit all 12 rounds), seeds 0-4, under two kernel
#     settings of this machine: A = its default kernels (ATen AVX2, MKL's own dispatch),
#     B = ATEN_CPU_CAPABILITY=default (ATen's non-vectorised kernels, as on a CPU whose
#     vector kernels round differently); seeds interleaved A, B, A, B, ...
set -e
P=${PYTHON:-python}
OUT=${OUT:-/tmp/lth_portable_runs}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
[ -n "$SKIP_SEED0" ] || $P -m scripts.check_machine --write results/portable/seed0.json --rounds 4
for seed in 0 1 2 3 4; do
  for setting in A B; do
    if [ $setting = B ]; then extra="ATEN_CPU_CAPABILITY=default"; else extra=""; fi
    env $extra $P -m experiments.lottery seed=$seed prune.controls=[] prune.rounds=1 \
      progress=false \
      wandb.mode=disabled output_root=$OUT/$setting
  done
done
