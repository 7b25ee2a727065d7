"""Iterative magnitude pruning: ``python -m experiments.lottery [overrides]``.

Composes conf/config.yaml, then trains, prunes, rewinds and retrains round after round into
the run directory ``<output_root>/<name>/<config hash>/``. Rerunning resumes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors
from experiments.schema import register

if TYPE_CHECKING:
    import torch

    from lth.data import Dataset
    from lth.lottery import Lottery, LotterySettings, RunStore
    from lth.tracking import Sink
    from lth.train.schedule import LRFactor

# torch and lth are imported where they are used: `--help` and composing a config
# (`--cfg job`) then take Hydra's time alone, not torch's.
register()


def settings_from(cfg: DictConfig, iters_per_epoch: int) -> LotterySettings:
    """The loop's settings, with every duration turned into iterations."""
    from lth.lottery import LotterySettings
    from lth.pruning import PruneRates
    from lth.train import parse_duration

    t, p = cfg.train, cfg.prune

    def it(key: str, value: str) -> int:
        return parse_duration(value, iters_per_epoch, key)

    return LotterySettings(
        seed=cfg.seed, rounds=p.rounds, iterations=it("train.duration", t.duration),
        batch_size=t.batch_size, rewind_iter=it("prune.rewind", p.rewind),
        strategy=p.strategy,
        rates=PruneRates(p.fraction, p.conv_fraction, p.output_fraction),
        retrain=p.retrain, finetune_iters=it("prune.finetune_duration", p.finetune_duration),
        eval_every=it("train.eval_every", t.eval_every), include_bias=p.prune_bias,
        checkpoint_every=it("train.checkpoint_every", t.checkpoint_every),
        oneshot=p.oneshot, schedule=tuple(p.schedule),
    )


@dataclass
class Prepared:
    """What every seed of an experiment shares: device, data and how to build things."""

    device: torch.device
    data: Dataset
    iters_per_epoch: int
    lr_factor: LRFactor
    make_model: Callable[[], torch.nn.Module]
    make_optimizer: Callable[..., torch.optim.Optimizer]


def prepare(cfg: DictConfig) -> Prepared:
    """Check the config, load the data and build the factories (no files written)."""
    from experiments.common import (
        load_data,
        model_factory,
        optimizer_factory,
        resolve_device,
        to_dict,
    )
    from lth.errors import ConfigError
    from lth.pruning import PruneRates
    from lth.pruning.structured import check_granularity
    from lth.train import parse_duration, step_schedule

    to_dict(cfg)  # resolves every value: a missing one fails before the data loads
    device = resolve_device(cfg.device)
    # Validate the cheap parts before loading data.
    PruneRates(cfg.prune.fraction, cfg.prune.conv_fraction, cfg.prune.output_fraction)
    check_granularity(cfg.prune.granularity, cfg.prune.channel_score)
    data = load_data(cfg, device)
    n = data.x_train.shape[0]
    if not 0 < cfg.train.batch_size <= n:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be in 1..{n} "
                          "(the training set size)")
    ipe = n // cfg.train.batch_size
    t = cfg.train
    milestones = [parse_duration(m, ipe, "train.milestones") for m in t.milestones]
    lr_factor = step_schedule(milestones, t.gamma, parse_duration(t.warmup, ipe, "train.warmup"))
    return Prepared(device, data, ipe, lr_factor, model_factory(cfg, data),
                    optimizer_factory(cfg))


def open_store(cfg: DictConfig, settings: LotterySettings, locks: ExitStack) -> RunStore:
    """The run store of ``cfg``, locked for this process until ``locks`` closes, created with
    its config.yaml and run.json if new. A second process on the same run directory stops
    here with a one-line message."""
    from experiments.common import to_dict, versions
    from lth.lottery import RunStore
    from lth.lottery.lock import RunLock

    store = RunStore.for_config(cfg.output_root, cfg.name, to_dict(cfg))
    store.prepare()
    locks.enter_context(RunLock(store.lock_path))
    store.remove_temporaries()
    if not store.config_path.exists():
        store.write_text(store.config_path, OmegaConf.to_yaml(cfg, resolve=True))
        store.write_text(store.info_path, json.dumps({
            "name": cfg.name, "hash": store.root.name, "versions": versions(),
            "seeds": {"init": settings.init_seed, "data": settings.data_seed,
                      "prune": "derive_seed(seed, 'prune', round)"},
        }, indent=2))
    return store


def open_sink(cfg: DictConfig, store: RunStore) -> Sink:
    """The experiment's W&B run (id ``<name>-<hash>``), with the stored rounds and controls
    replayed into it, or a NullSink.

    Each process writes its own offline W&B folder; replaying makes the newest one complete
    (``wandb sync`` of it then holds every round).
    """
    from experiments.common import to_dict
    from lth.tracking import open_wandb
    from lth.tracking.wandb_sink import control_metrics

    sink = open_wandb(
        mode=cfg.wandb.mode, project=cfg.wandb.project, group=cfg.name,
        name=f"{cfg.name}-{store.root.name}-s{cfg.seed}", run_id=f"{cfg.name}-{store.root.name}",
        config=to_dict(cfg), directory=cfg.wandb.dir or cfg.output_root,
        tags=list(cfg.wandb.tags), entity=cfg.wandb.entity,
    )
    for record in store.read_metrics():
        sink.log_round(record)
    for record in store.read_controls():
        sink.log_round(control_metrics(record))
    return sink


def build(cfg: DictConfig, locks: ExitStack) -> Lottery:
    """The experiment of ``cfg`` over its run store (created, locked until ``locks`` closes,
    config written); no sink yet."""
    from lth.lottery import Lottery

    prep = prepare(cfg)
    settings = settings_from(cfg, prep.iters_per_epoch)
    store = open_store(cfg, settings, locks)
    lottery = Lottery(settings, prep.data, prep.make_model, prep.make_optimizer,
                      prep.lr_factor, store, sink=None,  # type: ignore[arg-type]
                      device=prep.device, progress=cfg.progress)
    if cfg.prune.granularity == "channel":
        from lth.pruning.structured import ChannelPruner

        lottery.pruner = ChannelPruner(prep.make_model, prep.data.x_train[:1].cpu(),
                                       cfg.prune.channel_score)
        lottery.pruner.groups()  # fail now, not after round 0, if the model is unsupported
    return lottery


def print_control(record: dict, note: str = "") -> None:
    from lth.lottery.table import format_row

    print(format_row(record, note=", ".join(filter(None, [record["control"], note]))),
          flush=True)


def run(cfg: DictConfig) -> RunStore:
    """Run (or resume) the experiment of ``cfg`` and its controls; returns its store."""
    from lth.lottery.controls import check_controls, pending_controls, run_with_controls
    from lth.lottery.table import format_header, format_row

    controls = check_controls(cfg.prune.controls)
    with ExitStack() as locks:
        lottery = build(cfg, locks)
        store = lottery.store
        print(format_header())
        for record in store.read_metrics():
            print(format_row(record, note="stored"))
        for record in store.read_controls():
            if record["control"] in controls:
                print_control(record, note="stored")
        last = lottery.settings.last_round
        missing = [k for k, _ in pending_controls(lottery, controls) if k <= last]
        if not lottery.pending_rounds() and not missing:
            print(f"all {last + 1} rounds are complete; nothing to train")
            return store
        lottery.sink = open_sink(cfg, store)
        try:
            run_with_controls(lottery, controls,
                              on_round=lambda r: print(format_row(r), flush=True),
                              on_control=print_control)
        finally:
            lottery.sink.close()
    return store


def record_run_dir(store: RunStore) -> None:
    """Leave ``run_dir.txt`` in Hydra's job folder: how scripts.aggregate finds a sweep's runs."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        out = Path(HydraConfig.get().runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_dir.txt").write_text(f"{store.root.resolve()}\n")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@report_errors
def main(cfg: DictConfig) -> None:
    if cfg.replicas == 1:
        stores = [run(cfg)]
    else:
        from experiments.replicas import run_replicas

        stores = run_replicas(cfg)
    for store in stores:
        record_run_dir(store)
        print(f"run directory: {store.root}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
