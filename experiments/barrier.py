"""The barrier between two seeds: ``python -m experiments.barrier run_a=<dir> run_b=<dir>``.

For each requested round both runs completed (``rounds=[0]``, the dense networks, by
default), evaluates the straight path between A's and B's trained networks and the path
between A and B aligned to A by weight matching (lth.lottery.seed_barrier), and stores both
barriers in B's run directory, holding B's lock. Nothing is trained; a stored analysis is
skipped, so rerunning the command does nothing more.
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


def format_barrier(record: dict) -> str:
    """One line per analysed round: both barriers and the endpoints' errors."""
    bn = ", BatchNorm statistics recomputed per α" if record["bn_reset"] else ""
    return (f"round {record['round']:>2}  barrier test {record['barrier_test_before']:6.2f} pp"
            f" -> {record['barrier_test_after']:6.2f} pp aligned  train "
            f"{record['barrier_train_before']:6.2f} -> {record['barrier_train_after']:6.2f} pp"
            f"  test error A {record['test_err_a']:.2f}% / B {record['test_err_b']:.2f}%{bn}")


def run(cfg: DictConfig) -> Path:
    """Analyse the requested rounds of the pair (run_a, run_b); returns B's run directory."""
    from experiments.pairs import build_b, match_options, open_pair
    from lth.lottery.pairs import both_completed
    from lth.lottery.seed_barrier import BarrierOptions, pending_barriers, run_barrier

    other, b = open_pair(cfg)  # both checked (kind, schema, hash, architecture) first
    options = BarrierOptions(cfg.alpha_points, cfg.train_samples, cfg.bn_reset,
                             match_options(cfg))
    rounds = both_completed(other, b.store, list(cfg.rounds) or None)
    if not pending_barriers(other, b.store, rounds, options):
        print("the requested barriers are stored; nothing to compute")
        return b.store.root
    with ExitStack() as stack:
        lottery = build_b(b, stack)
        for k in pending_barriers(other, lottery.store, rounds, options):
            print(format_barrier(run_barrier(lottery, other, k, options)), flush=True)
    return b.store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="barrier")
@report_errors
def main(cfg: DictConfig) -> None:
    print(f"run directory: {run(cfg)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
