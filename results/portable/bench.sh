#!/bin/bash
# Cost of reproducible=portable: the default experiment's dense round (seed 0, 1500
# iterations; prune.rounds=0, no controls), interleaved: default with 1 thread, default with
# torch's own thread count (2 here), portable (1 thread, pinned kernels); REPS times each.
# Prints the round's training time (wall_s in metrics.jsonl: start-up excluded) per run and
# the medians' ratios. Run from the repository root.
P=${PYTHON:-python}
OUT=${OUT:-/tmp/lth_portable_bench}
REPS=${REPS:-3}
rm -rf "$OUT"; mkdir -p "$OUT"
declare -A times
for rep in $(seq "$REPS"); do
  for mode in default-1t default-2t portable; do
    case $mode in
      default-1t) env=(OMP_NUM_THREADS=1); args=();;
      default-2t) env=(); args=();;
      portable) env=(); args=(reproducible=portable);;
    esac
    dir=$OUT/$mode-$rep
    env -u OMP_NUM_THREADS "${env[@]}" $P -m experiments.lottery prune.rounds=0 \
      prune.controls=[] progress=false wandb.mode=disabled output_root=$dir "${args[@]}" \
      > "$dir.log" 2>&1 || { echo "$mode failed: $(tail -1 $dir.log)"; exit 1; }
    t=$($P -c "import json,glob;print(json.loads(open(glob.glob('$dir/*/*/metrics.jsonl')[0]).readline())['wall_s'])")
    times[$mode]="${times[$mode]} $t"
    echo "rep $rep  $mode  ${t}s"
  done
done
$P - "${times[default-1t]}" "${times[default-2t]}" "${times[portable]}" <<'PY'
import statistics, sys
names = ["default-1t", "default-2t", "portable"]
med = {n: statistics.median(map(float, a.split())) for n, a in zip(names, sys.argv[1:])}
for n in names:
    print(f"{n:<11} median {med[n]:.2f} s   portable / {n}: {med['portable'] / med[n]:.2f}")
PY
