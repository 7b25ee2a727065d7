#!/bin/bash
# The runs behind results/portable, as they were run (from the repository root, one thread):
#  1. the default experiment, seed 0, reproducible=portable, rounds 0-4 (--rounds 4) and both
#     controls beside rounds 1-4, written as the committed numbers (seed0.json) by
#     scripts.check_machine --write (13 trainings);
#  2. the default experiment's ticket (prune.controls=[]), seeds 0-4, under two kernel
#     settings of this machine: A = its default kernels (ATen AVX2, MKL's own dispatch),
#     B = ATEN_CPU_CAPABILITY=default (ATen's non-vectorised kernels, as on a CPU whose
#     vector kernels round differently). Seed 0 ran rounds 0-2 (prune.rounds=2), seeds 1-4 the
#     dense round only (prune.rounds=0, A and B side by side): the CPU this shared machine
#     could spare (load 10-16) did not fit more. means.md compares the rounds all ran (0).
#  3. the check of part 1 on the machine that wrote it: scripts.check_machine --rounds 2
#     (check-rounds0-2.txt).
set -e
P=${PYTHON:-python}
OUT=${OUT:-/tmp/lth_portable_runs}
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
$P -m scripts.check_machine --write results/portable/seed0.json --rounds 4
run() {  # setting seed rounds
  local extra=()
  [ "$1" = B ] && extra=(ATEN_CPU_CAPABILITY=default)
  env "${extra[@]}" $P -m experiments.lottery seed=$2 prune.controls=[] prune.rounds=$3 \
    progress=false wandb.mode=disabled output_root=$OUT/$1
}
run A 0 2; run B 0 2
for seed in 1 2 3 4; do run A $seed 0; done &
for seed in 1 2 3 4; do run B $seed 0; done
wait
$P results/portable/summarize.py "$OUT" > results/portable/means.md
$P -m scripts.check_machine --rounds 2 | tee results/portable/check-rounds0-2.txt
