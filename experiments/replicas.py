"""``replicas=K``: seeds ``seed`` ... ``seed+K-1`` of one experiment trained in one process.

Each seed gets the resolved config a single run with that seed would have (so the same hash,
run directory, config.yaml seed and W&B run id); ``replicas`` itself is not hashed. Called by
``experiments.lottery`` when ``replicas > 1``.
"""

from __future__ import annotations

from contextlib import ExitStack

from omegaconf import DictConfig

from experiments import setup
from lth.errors import ConfigError
from lth.lottery import Lottery, ReplicaLottery
from lth.lottery.table import format_header, format_row
from lth.store import RunStore
from lth.tracking import NullSink
from lth.train.replicas import check_replicable


def check_options(cfg: DictConfig) -> None:
    """ConfigError for the options a replica group cannot train."""
    if cfg.replicas < 1:
        raise ConfigError(f"replicas={cfg.replicas} must be at least 1")
    if cfg.prune.controls:
        raise ConfigError("replicas>1 does not train controls; run prune.controls with "
                          "replicas=1 (or add them later: experiments.control)")
    if cfg.analysis.early_bird_every != "0it":
        raise ConfigError("replicas>1 does not detect early-bird tickets; run "
                          "analysis.early_bird_every with replicas=1")
    if cfg.analysis.instability:
        raise ConfigError("replicas>1 does not run analysis.instability; add it afterwards "
                          "to each seed's run: python -m experiments.instability run_dir=<dir>")
    if cfg.train.precision != "fp32" or cfg.train.compile:
        raise ConfigError("replicas>1 trains in fp32 without compile: set train.precision=fp32 "
                          "and train.compile=false, or replicas=1")
    if cfg.prune.granularity != "weight":
        raise ConfigError("replicas>1 supports prune.granularity=weight only; run channel "
                          "pruning with replicas=1")


def run_replicas(cfg: DictConfig) -> list[RunStore]:
    """Run (or resume) seeds ``cfg.seed`` ... ``cfg.seed + cfg.replicas - 1``; their stores."""
    check_options(cfg)
    prep = setup.prepare(cfg)
    check_replicable(prep.make_model())  # before any file is written
    seeds = [cfg.seed + j for j in range(cfg.replicas)]
    cfgs = [setup.with_seed(cfg, s) for s in seeds]
    settings = [setup.settings_from(c, prep.iters_per_epoch) for c in cfgs]
    with ExitStack() as stack:
        stores = [setup.open_store(c, s, stack) for c, s in zip(cfgs, settings)]
        print(format_header())
        for seed, store in zip(seeds, stores):
            for record in store.read_metrics():
                print(format_row(record, note=f"seed {seed}, stored"))
        pending = [st.pending_rounds(s.last_round) for s, st in zip(settings, stores)]
        if not any(pending):
            print(f"all {cfg.prune.rounds + 1} rounds of seeds {seeds[0]}..{seeds[-1]} are "
                  "complete; nothing to train")
            return stores
        # W&B only for the seeds with rounds to train; open_sink replays their stored rounds.
        lotteries = [setup.build(c, prep, s, st, setup.open_sink(c, st, stack) if todo
                                 else NullSink())
                     for c, s, st, todo in zip(cfgs, settings, stores, pending)]
        _train(seeds, lotteries)
    return stores


def _train(seeds: list[int], lotteries: list[Lottery]) -> None:
    """Train the pending rounds of every seed together, printing a row per round."""
    ReplicaLottery(lotteries).run(
        on_round=lambda i, r: print(format_row(r, note=f"seed {seeds[i]}"), flush=True))
