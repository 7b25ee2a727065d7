"""Iterative magnitude pruning: ``python -m experiments.lottery [overrides]``.

Composes conf/config.yaml, then trains, prunes, rewinds and retrains round after round into
the run directory ``<output_root>/<name>/<config hash>/``. Rerunning resumes.
"""

from __future__ import annotations

import json
import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.common import (
    load_data,
    model_factory,
    optimizer_factory,
    report_errors,
    resolve_device,
    to_dict,
    versions,
)
from experiments.schema import register
from lth.errors import ConfigError
from lth.lottery import Lottery, LotterySettings, RunStore
from lth.lottery.table import format_header, format_row
from lth.pruning import PruneRates
from lth.pruning.structured import ChannelPruner, check_granularity
from lth.tracking import open_wandb
from lth.train import parse_duration, step_schedule

register()


def settings_from(cfg: DictConfig, iters_per_epoch: int) -> LotterySettings:
    """The loop's settings, with every duration turned into iterations."""
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
    )


def run(cfg: DictConfig) -> RunStore:
    """Run (or resume) the experiment of ``cfg``; returns its store."""
    resolved = to_dict(cfg)
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
    settings = settings_from(cfg, ipe)
    t = cfg.train
    milestones = [parse_duration(m, ipe, "train.milestones") for m in t.milestones]
    lr_factor = step_schedule(milestones, t.gamma, parse_duration(t.warmup, ipe, "train.warmup"))
    make_model = model_factory(cfg, data)
    store = RunStore.for_config(cfg.output_root, cfg.name, resolved)
    store.prepare()
    if not store.config_path.exists():
        store.write_text(store.config_path, OmegaConf.to_yaml(cfg, resolve=True))
        store.write_text(store.info_path, json.dumps({
            "name": cfg.name, "hash": store.root.name, "versions": versions(),
            "seeds": {"init": settings.init_seed, "data": settings.data_seed,
                      "prune": "derive_seed(seed, 'prune', round)"},
        }, indent=2))
    lottery = Lottery(settings, data, make_model, optimizer_factory(cfg), lr_factor, store,
                      sink=None, device=device, progress=cfg.progress)  # type: ignore[arg-type]
    if cfg.prune.granularity == "channel":
        lottery.pruner = ChannelPruner(make_model, data.x_train[:1].cpu(), cfg.prune.channel_score)
        lottery.pruner.groups()  # fail now, not after round 0, if the model is unsupported
    pending = lottery.pending_rounds()
    stored = store.read_metrics()
    print(format_header())
    for record in stored:
        print(format_row(record, note="stored"))
    if not pending:
        print(f"all {settings.rounds + 1} rounds are complete; nothing to train")
        return store
    lottery.sink = open_wandb(
        mode=cfg.wandb.mode, project=cfg.wandb.project, group=cfg.name,
        name=f"{cfg.name}-{store.root.name}-s{cfg.seed}", run_id=f"{cfg.name}-{store.root.name}",
        config=resolved, directory=cfg.wandb.dir or cfg.output_root, tags=list(cfg.wandb.tags),
        entity=cfg.wandb.entity,
    )
    # Each process writes its own offline W&B folder; replaying the stored rounds makes the
    # newest one complete (``wandb sync`` of it then holds every round).
    for record in stored:
        lottery.sink.log_round(record)
    try:
        lottery.run(on_round=lambda r: print(format_row(r), flush=True))
    finally:
        lottery.sink.close()
    return store


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@report_errors
def main(cfg: DictConfig) -> None:
    store = run(cfg)
    print(f"run directory: {store.root}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
