"""Instability on an existing run: ``python -m experiments.instability run_dir=<dir>``.

For each requested completed round (``rounds=[0,3]``; default: every completed round), trains
two copies from the round's start weights with different data orders and stores the error
barrier of the straight path between them (lth.lottery.instability; Frankle et al. 2020),
holding the run's lock. The ticket's files are not touched; stored analyses are skipped and an
interrupted copy resumes from its checkpoint, so rerunning the command does nothing more.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiments.errors import report_errors
from experiments.schema import register

register()


def format_instability(record: dict) -> str:
    """One line per analysed round: density, spawn point, the barriers, BN reset."""
    bn = ", BatchNorm statistics recomputed per α" if record["bn_reset"] else ""
    return (f"round {record['round']:>2}  density {100 * record['density']:6.2f}%  spawn at "
            f"it {record['spawn_iter']}  barrier test {record['barrier_test']:6.2f} pp  "
            f"train {record['barrier_train']:6.2f} pp  copies' test error "
            f"{record['copy_test_err'][0]:.2f}% / {record['copy_test_err'][1]:.2f}%{bn}")


def run(cfg: DictConfig) -> Path:
    """Analyse the requested rounds of the run ``cfg.run_dir``; returns the run directory."""
    from experiments import setup
    from experiments.stored import branch_run, prepared
    from lth.lottery.instability import (
        InstabilityOptions,
        check_spawn,
        pending_instability,
        run_instability,
    )

    options = InstabilityOptions(cfg.alpha_points, cfg.train_samples, cfg.bn_reset)
    opened = branch_run(cfg)  # checked (kind, schema, hash) before anything is written
    pending_instability(opened.store, list(cfg.rounds) or None)  # fail before the data is loaded
    stored = opened.cfg
    prep, settings = prepared(opened)
    with ExitStack() as stack:
        store = setup.open_store(stored, settings, stack)
        rounds = pending_instability(store, list(cfg.rounds) or None)
        if not rounds:
            print("the requested instability analyses are stored; nothing to train")
            return store.root
        lottery = setup.build(stored, prep, settings, store, setup.open_sink(stored, store, stack))
        for k in rounds:
            check_spawn(lottery, k)  # every round's start weights before any training
        for k in rounds:
            print(format_instability(run_instability(lottery, k, options)), flush=True)
    return store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="instability")
@report_errors
def main(cfg: DictConfig) -> None:
    from experiments.portable import pin_for
    from experiments.stored import branch_run

    pin_for(branch_run(cfg).cfg)  # a portable run's branches are portable: before torch loads
    from lth.train.preempt import handle_preemption

    with handle_preemption():  # SIGTERM / Submitit's SIGUSR2: checkpoint at once, then exit
        print(f"run directory: {run(cfg)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
