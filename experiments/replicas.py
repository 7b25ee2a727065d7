"""``replicas=K`` (or ``group_branches=true``): seeds ``seed`` ... ``seed+K-1`` of one
experiment trained in one process, each round's tickets and controls as one replica group.

Each seed gets the resolved config a single run with that seed would have (so the same hash,
run directory, config.yaml seed and W&B run id); ``replicas`` and ``group_branches`` are not
hashed. Called by ``experiments.lottery`` when ``replicas > 1`` or ``group_branches``.
"""

from __future__ import annotations

from contextlib import ExitStack

from omegaconf import DictConfig

from experiments import setup
from lth.errors import ConfigError, TrainingError
from lth.lottery import ReplicaLottery
from lth.lottery.controls import check_controls, check_trainable
from lth.lottery.replicas import has_work
from lth.lottery.table import format_header, format_row
from lth.store import RunStore
from lth.tracking import NullSink
from lth.train.replicas import check_replica_accel, check_replicable


def check_options(cfg: DictConfig) -> None:
    """ConfigError for what a replica group cannot train (each a torch limitation)."""
    if cfg.replicas < 1:
        raise ConfigError(f"replicas={cfg.replicas} must be at least 1")


def _note(seed: int, record: dict) -> str:
    return f"seed {seed}" + (f", {record['control']}" if "control" in record else "")


def run_replicas(cfg: DictConfig) -> list[RunStore]:
    """Run (or resume) seeds ``cfg.seed`` ... ``cfg.seed + cfg.replicas - 1``; their stores."""
    from experiments.instability import format_instability

    check_options(cfg)
    controls, instability = check_controls(cfg.prune.controls), setup.instability_of(cfg)
    prep = setup.prepare(cfg)
    check_replicable(prep.make_model())  # before any file is written
    check_replica_accel(prep.accel)
    seeds = [cfg.seed + j for j in range(cfg.replicas)]
    cfgs = [setup.with_seed(cfg, s) for s in seeds]
    settings = [setup.settings_from(c, prep.iters_per_epoch) for c in cfgs]
    check_trainable(controls, settings[0], getattr(prep.pruner, "granularity", "weight"))
    with ExitStack() as stack:
        stores = [setup.open_store(c, s, stack) for c, s in zip(cfgs, settings)]
        print(format_header(prep.data.x_val is not None))
        for seed, store in zip(seeds, stores):
            for record in [*store.read_metrics(), *store.read_controls()]:
                print(format_row(record, note=f"{_note(seed, record)}, stored"))
        last = settings[0].last_round
        todo = [has_work(st, last, controls, instability is not None) for st in stores]
        if not any(todo):
            print(f"all {last + 1} rounds of seeds {seeds[0]}..{seeds[-1]} are complete; "
                  "nothing to train")
            return stores
        # W&B only for the seeds with something to train; open_sink replays what is stored.
        lotteries = [setup.build(c, prep, s, st, setup.open_sink(c, st, stack) if work
                                 else NullSink())
                     for c, s, st, work in zip(cfgs, settings, stores, todo)]
        group = ReplicaLottery(lotteries, controls, instability)
        group.run(
            on_round=lambda i, r: print(format_row(r, note=_note(seeds[i], r)), flush=True),
            on_instability=lambda i, r: print(f"seed {seeds[i]}: {format_instability(r)}",
                                              flush=True))
    if group.failed:  # the healthy seeds are complete; each failed run's run.json says why
        raise TrainingError("; ".join(
            f"seed {seeds[i]} stopped ({stores[i].info_path} says why): {why}"
            for i, why in sorted(group.failed.items())) + "; the other seeds went on")
    return stores


HELP = """python -m experiments.replicas [key=value ...]   (as python -m experiments.lottery)

Several seeds of one experiment, or a round's ticket and its controls, trained together as one
replica group (the K models stacked and stepped at once under vmap). Called by
experiments.lottery when replicas > 1 or group_branches=true; this module takes the same
overrides and runs that command.

Keys:
  replicas=<K>                   seeds seed..seed+K-1 in one process (not hashed: each seed
                                 keeps the run directory its single run has)
  group_branches=true|false      a round's ticket and controls (and instability copies) as one
                                 group instead of one after another (not hashed)
  threads=auto|<N>               CPU threads of the process

Faster where per-step overhead dominates (small networks: 100-wide MLPs); no faster for the
default's 500-wide layers on a CPU.

Docs: docs/performance.md (several seeds in one process); docs/config.md.
"""


if __name__ == "__main__":
    import sys

    if {"--help", "-h"} & set(sys.argv[1:]):
        print(HELP, end="")
        sys.exit(0)
    import runpy

    # experiments.lottery calls back into this module: run it as the main module, so that
    # neither imports the other at module level (no import circle)
    runpy.run_module("experiments.lottery", run_name="__main__", alter_sys=True)
