"""``replicas=K``: seeds ``seed`` ... ``seed+K-1`` of one experiment trained in one process.

Each seed gets the resolved config a single run with that seed would have (so the same hash,
run directory, config.yaml seed and W&B run id); ``replicas`` itself is not hashed. Called by
``experiments.lottery`` when ``replicas > 1``.
"""

from __future__ import annotations

import copy
from contextlib import ExitStack

from omegaconf import DictConfig

from experiments.lottery import open_sink, open_store, prepare, settings_from
from lth.errors import ConfigError
from lth.lottery import Lottery, ReplicaLottery, RunStore
from lth.lottery.table import format_header, format_row
from lth.tracking import NullSink
from lth.train.replicas import check_replicable


def with_seed(cfg: DictConfig, seed: int) -> DictConfig:
    """A copy of ``cfg`` with ``seed`` replaced."""
    out = copy.deepcopy(cfg)
    out.seed = seed
    return out


def run_replicas(cfg: DictConfig) -> list[RunStore]:
    """Run (or resume) seeds ``cfg.seed`` ... ``cfg.seed + cfg.replicas - 1``; their stores."""
    if cfg.replicas < 1:
        raise ConfigError(f"replicas={cfg.replicas} must be at least 1")
    if cfg.prune.controls:
        raise ConfigError("replicas>1 does not train controls; run prune.controls with "
                          "replicas=1 (or add them later: experiments.control)")
    if cfg.prune.granularity != "weight":
        raise ConfigError("replicas>1 supports prune.granularity=weight only; run channel "
                          "pruning with replicas=1")
    prep = prepare(cfg)
    check_replicable(prep.make_model())  # before any file is written
    seeds = [cfg.seed + j for j in range(cfg.replicas)]
    cfgs = [with_seed(cfg, s) for s in seeds]
    with ExitStack() as locks:
        lotteries = []
        for c in cfgs:
            settings = settings_from(c, prep.iters_per_epoch)
            lotteries.append(Lottery(settings, prep.data, prep.make_model, prep.make_optimizer,
                                     prep.lr_factor, open_store(c, settings, locks), NullSink(),
                                     prep.device, progress=cfg.progress))
        _run_group(cfgs, seeds, lotteries)
    return [lot.store for lot in lotteries]


def _run_group(cfgs: list[DictConfig], seeds: list[int], lotteries: list[Lottery]) -> None:
    """Train the pending rounds of every seed together (with their run directories locked)."""
    group = ReplicaLottery(lotteries)
    print(format_header())
    for seed, lot in zip(seeds, lotteries):
        for record in lot.store.read_metrics():
            print(format_row(record, note=f"seed {seed}, stored"))
    if not group.pending_rounds():
        print(f"all {cfgs[0].prune.rounds + 1} rounds of seeds {seeds[0]}..{seeds[-1]} are "
              "complete; nothing to train")
        return
    try:
        for c, lot in zip(cfgs, lotteries):
            if lot.pending_rounds():
                lot.sink = open_sink(c, lot.store)
                for record in lot.store.read_metrics():  # see experiments.lottery.run
                    lot.sink.log_round(record)
        group.run(on_round=lambda i, r: print(format_row(r, note=f"seed {seeds[i]}"),
                                              flush=True))
    finally:
        for lot in lotteries:
            lot.sink.close()
