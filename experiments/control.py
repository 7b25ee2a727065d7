"""Controls on an existing run: ``python -m experiments.control run_dir=<dir> control=<name>``.

Trains ``random_reinit``, ``random_prune`` or ``invert`` (lth.lottery.controls) beside
completed rounds of a stored run, reading everything else from the run's config.yaml, like
open_lth's branches.
``rounds=[3,5]`` picks rounds (default: every completed round >= 1); stored controls are
skipped, so rerunning the command does nothing more.
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


def run(cfg: DictConfig) -> Path:
    """Train the requested controls of the run ``cfg.run_dir``; returns the run directory."""
    from experiments import setup
    from experiments.stored import branch_run, prepared
    from lth.lottery.controls import (
        check_controls,
        check_trainable,
        pending_controls,
        run_control,
    )
    from lth.lottery.table import format_header, format_row

    names = check_controls([cfg.control] if isinstance(cfg.control, str) else cfg.control)
    opened = branch_run(cfg)  # checked (kind, schema, hash) before anything is written
    stored = opened.cfg
    prep, settings = prepared(opened)
    check_trainable(names, settings, getattr(prep.pruner, "granularity", "weight"),
                    list(cfg.rounds) or None)
    with ExitStack() as stack:
        store = setup.open_store(stored, settings, stack)
        pairs = pending_controls(store, names, list(cfg.rounds) or None)
        print(format_header(prep.data.x_val is not None))
        if not pairs:
            print("the requested controls are stored; nothing to train")
            return store.root
        lottery = setup.build(stored, prep, settings, store, setup.open_sink(stored, store, stack))
        for k, name in pairs:
            print(format_row(run_control(lottery, k, name), note=name), flush=True)
    return store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="control")
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
