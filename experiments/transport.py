"""Mask transport: ``python -m experiments.transport run_a=<dir> run_b=<dir> [rounds=[k]]``.

Trains run A's ticket masks of the requested rounds (default: every round >= 1 both runs
completed), permuted into run B's coordinates by weight matching of their dense networks,
from B's rewind point, beside A's unpermuted mask and a random mask of the same layer
densities (lth.lottery.transport), as branches of B's rounds, holding B's lock. B's own
ticket is its round; stored branches are skipped and an interrupted one resumes.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import hydra
from omegaconf import DictConfig

from experiments.errors import report_errors
from experiments.pair_schema import register

register()


def run(cfg: DictConfig) -> Path:
    """Train the pair's pending transported masks; returns B's run directory."""
    from experiments.pairs import build_b, match_options, open_pair
    from lth.lottery.pairs import both_completed
    from lth.lottery.table import format_header, format_row
    from lth.lottery.transport import (
        check_retrain,
        check_variants,
        pending_transport,
        run_transport,
    )

    variants = check_variants(cfg.variants)
    other, b = open_pair(cfg)  # both checked (kind, schema, hash, architecture) first
    match = match_options(cfg)
    check_retrain(b.cfg.prune.retrain)
    rounds = both_completed(other, b.store, list(cfg.rounds) or None, first=1)
    print(format_header())
    if not pending_transport(b.store, other, rounds, variants, match):
        print("the requested transported masks are stored; nothing to train")
        return b.store.root
    with ExitStack() as stack:
        lottery = build_b(b, stack)
        for k, variant in pending_transport(lottery.store, other, rounds, variants, match):
            record = run_transport(lottery, other, k, variant, match)
            print(format_row(record, note=f"{variant} (B's ticket "
                                          f"{100 * record['ticket_test_acc']:.2f}%)"),
                  flush=True)
    return b.store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="transport")
@report_errors
def main(cfg: DictConfig) -> None:
    from lth.train.preempt import handle_preemption

    with handle_preemption():  # SIGTERM / Submitit's SIGUSR2: checkpoint at once, then exit
        print(f"run directory: {run(cfg)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
