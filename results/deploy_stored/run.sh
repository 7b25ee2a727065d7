#!/usr/bin/env bash
# The stored runs behind results/deploy_stored/ and the report comparing them. Run from the
# repository root: bash results/deploy_stored/run.sh  (one thread; ~10 minutes on a shared
# 2-core CPU). Budgets are small on purpose (600 iterations a round on digits).
set -euo pipefail
export OMP_NUM_THREADS=1 WANDB_MODE=disabled
ROOT=${ROOT:-runs/deploy}
PY=${PY:-python}
COMMON=(experiment=lenet_digits model=resnet20 optimizer=sgd optimizer.lr=0.05
        optimizer.momentum=0.9 optimizer.weight_decay=5e-4 train.duration=600it
        train.batch_size=64 train.eval_every=100it 'train.milestones=[450it]'
        prune.rewind=30it prune.output_fraction=0 progress=false output_root=$ROOT)
# 1. IMP (global magnitude, 50% a round, rewind to iteration 30): dense round 0 and 2 tickets.
$PY -m experiments.lottery "${COMMON[@]}" name=deploy_ticket prune.strategy=magnitude_global \
    prune.fraction=0.5 prune.rounds=2 | tee "$ROOT/ticket.log"
# 2. One-shot channel pruning (layer-wise L1, 50% of each group's channels) of the same dense
#    network, retrained with learning-rate rewinding.
$PY -m experiments.lottery "${COMMON[@]}" name=deploy_channels prune.granularity=channel \
    prune.strategy=magnitude_layerwise prune.oneshot=true prune.rounds=1 prune.fraction=0.5 \
    prune.retrain=lr_rewind | tee "$ROOT/channels.log"
CHANNELS=$(grep '^run directory: ' "$ROOT/channels.log" | tail -1 | cut -d' ' -f3)
TICKET=$(grep '^run directory: ' "$ROOT/ticket.log" | tail -1 | cut -d' ' -f3)
# 3. A ResNet-20 student as large as the channel-pruned network, taught by its dense round 0.
$PY -m experiments.distill teacher="$CHANNELS" round=0 params_round=1 optimizer=sgd \
    optimizer.lr=0.05 optimizer.momentum=0.9 optimizer.weight_decay=5e-4 train.duration=600it \
    train.batch_size=64 train.eval_every=100it 'train.milestones=[450it]' progress=false \
    | tee "$ROOT/student.log"
STUDENT=$(grep '^run directory: ' "$ROOT/student.log" | tail -1 | cut -d' ' -f3)
# 4. The report over the stored runs (nothing trained), the index of the runs, an export.
$PY -m scripts.deploy_report --out results/deploy_stored --archs '' --ticket-run "$TICKET" \
    --channel-run "$CHANNELS" --student-run "$STUDENT"
$PY -m scripts.runs "$ROOT" > results/deploy_stored/runs.txt
$PY -m experiments.export run_dir="$TICKET" round=2 quantize=int8 \
    out_dir=results/deploy_stored/export_ticket > /dev/null
cp results/deploy_stored/export_ticket/report.json results/deploy_stored/export_report.json
rm -rf results/deploy_stored/export_ticket
