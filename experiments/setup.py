"""Building an experiment from a composed config, in one place for every entry point and script.

config -> settings, device, data, model and optimizer factories, learning-rate schedule,
pruner (``prepare``, ``settings_from``), then the run store (``open_store``), the W&B sink
(``open_sink``) and the ``Lottery`` over them, built whole (``build``). Every value is checked
here, before anything is stored: a bad one is a ConfigError naming its key. Hydra may be used
here; lth itself never imports it. Entry points import this module inside their functions, so
``--help`` and ``--cfg job`` never import torch.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.devices import accel_of, data_parallel, kernels_of, resolve_device
from experiments.errors import build_error, first_line
from experiments.portable import check_portable
from experiments.pruner_setup import make_pruner, pruner_settings
from experiments.sparse_setup import sparse_of
from experiments.versions import versions, warn_if_other_kernels, warn_if_other_version
from lth.data import Dataset, load_dataset
from lth.errors import ConfigError, LthError
from lth.lottery import Lottery, LotterySettings
from lth.lottery.instability import InstabilityOptions
from lth.pruning import PruneRates, check_pool_bias, prune_mask
from lth.pruning.structured import check_granularity
from lth.store import RunStore
from lth.store.follower import FollowerStore
from lth.store.lock import RunLock
from lth.tracking import Sink, open_wandb
from lth.train import distributed, parse_duration, step_schedule
from lth.train.accel import Accel, check_accel
from lth.train.optim import prefer_fused
from lth.train.schedule import LRFactor
from lth.train.threads import set_threads


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python data."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(data, dict)
    return data  # type: ignore[return-value]


def with_seed(cfg: DictConfig, seed: int) -> DictConfig:
    """A copy of ``cfg`` with ``seed`` replaced."""
    out = copy.deepcopy(cfg)
    out.seed = seed
    return out


def load_data(cfg: DictConfig, device: torch.device) -> Dataset:
    """The dataset named by ``cfg.dataset``, in memory on ``device``."""
    d = cfg.dataset
    data = load_dataset(
        d.name, root=d.root, download=d.download, val_size=d.val_size,
        split_seed=d.split_seed, num_samples=d.num_samples, augment=d.augment,
    )
    return data.to(device)


def _kwargs(node: DictConfig) -> dict[str, Any]:
    data = OmegaConf.to_container(node, resolve=True)
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items() if not str(k).startswith("_")}


def model_factory(cfg: DictConfig, data: Dataset) -> Callable[[], torch.nn.Module]:
    """A function building a fresh model for ``data``; checked once on one sample."""
    shape = {"input_shape": list(data.input_shape), "num_classes": data.num_classes}

    def make() -> torch.nn.Module:
        return instantiate(cfg.model, **shape)

    try:
        model = make()
    except Exception as e:  # Hydra wraps the model's own errors, lth's included
        cause, target = e.__cause__ or e, cfg.model._target_
        if isinstance(cause, LthError):
            raise cause from None
        # Retried as Hydra builds it (lists as ListConfig), so the key named is the culprit.
        raise build_error("model", target,
                          lambda kw: instantiate({"_target_": target, **kw}, **shape),
                          _kwargs(cfg.model), cause) from cause  # traceback kept for FULL_ERROR
    try:
        with torch.inference_mode():
            model.eval()(data.x_train[:2].cpu())
    except RuntimeError as e:
        raise ConfigError(
            f"model {cfg.model._target_} does not fit dataset {cfg.dataset.name} "
            f"(input shape {tuple(data.input_shape)}): {first_line(e)}; choose a "
            "model for this input"
        ) from None
    return make


def optimizer_factory(cfg: DictConfig) -> Callable[..., torch.optim.Optimizer]:
    """The partial optimizer of ``cfg.optimizer`` (call it with parameters), checked once on
    a parameter so that a bad hyperparameter fails here, naming its key."""
    if cfg.optimizer.lr <= 0:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.lr} must be positive")
    factory = instantiate(cfg.optimizer)
    probe = [torch.nn.Parameter(torch.zeros(1))]
    try:
        factory(probe)
    except Exception as e:
        raise build_error("optimizer", cfg.optimizer._target_,
                          lambda kw: factory.func(probe, **kw), dict(factory.keywords), e
                          ) from e
    return prefer_fused(factory)


def lr_schedule(cfg: DictConfig, iters_per_epoch: int) -> LRFactor:
    """The learning-rate factor of ``cfg.train`` (milestones, gamma, warmup) per iteration."""
    t = cfg.train
    check_gamma(t.gamma)
    milestones = [parse_duration(m, iters_per_epoch, "train.milestones") for m in t.milestones]
    return step_schedule(milestones, t.gamma, parse_duration(t.warmup, iters_per_epoch,
                                                              "train.warmup"))


def check_gamma(gamma: float) -> None:
    """ConfigError unless ``gamma`` (the factor at each milestone) is a positive number."""
    if not (math.isfinite(gamma) and gamma > 0):
        raise ConfigError(f"train.gamma={gamma} must be a positive number: the learning rate "
                          "is multiplied by it at each milestone (e.g. 0.1)")


def settings_from(cfg: DictConfig, iters_per_epoch: int) -> LotterySettings:
    """The loop's settings, with every duration turned into iterations."""
    t, p, a = cfg.train, cfg.prune, cfg.analysis

    def it(key: str, value: str) -> int:
        return parse_duration(value, iters_per_epoch, key)

    iterations = it("train.duration", t.duration)
    # A sparse training is one training: round 0 (prune.rounds is not hashed).
    sparse = sparse_of(cfg, iterations, iters_per_epoch) if iterations > 0 else None
    return LotterySettings(
        seed=cfg.seed, rounds=0 if sparse else p.rounds, iterations=iterations,
        batch_size=t.batch_size, rewind_iter=it("prune.rewind", p.rewind),
        strategy=p.strategy,
        rates=PruneRates(p.fraction, p.conv_fraction, p.output_fraction),
        retrain=p.retrain, finetune_iters=it("prune.finetune_duration", p.finetune_duration),
        eval_every=it("train.eval_every", t.eval_every), include_bias=p.prune_bias,
        checkpoint_every=it("train.checkpoint_every", t.checkpoint_every),
        oneshot=p.oneshot, schedule=tuple(p.schedule), at_init=p.at_init,
        distribution=OmegaConf.select(cfg, "prune.distribution", default=None),
        supermask=a.supermask, supermask_constant=a.supermask_constant,
        early_bird_every=it("analysis.early_bird_every", a.early_bird_every),
        early_bird_threshold=a.early_bird_threshold, early_bird_ticket=a.early_bird_ticket,
    )


def instability_of(cfg: DictConfig) -> InstabilityOptions | None:
    """The instability analysis ``analysis.*`` asks for, or None (``analysis.instability``
    off)."""
    a = cfg.analysis
    return InstabilityOptions(a.alpha_points, a.train_samples, a.bn_reset) if a.instability \
        else None


@dataclass(frozen=True)
class Prepared:
    """What every seed of an experiment shares: device, data and how to build things."""

    device: torch.device
    data: Dataset
    iters_per_epoch: int
    lr_factor: LRFactor
    make_model: Callable[[], torch.nn.Module]
    make_optimizer: Callable[..., torch.optim.Optimizer]
    pruner: Callable[..., Any] = prune_mask  # prune_mask's signature
    accel: Accel = Accel()  # precision, compile, deterministic
    dist: distributed.Dist | None = None  # this rank, under torchrun


def prepare(cfg: DictConfig) -> Prepared:
    """Check the config, load the data and build the factories and pruner (no files written).
    The checks that need no data come first, so that they fail at once."""
    to_dict(cfg)  # resolves every value: a missing one fails before the data loads
    check_portable(cfg)
    device = resolve_device(distributed.local_device(cfg.device))
    # Before anything runs on the CPU; a config stored before the key existed lacks it.
    print(set_threads(OmegaConf.select(cfg, "threads", default="auto")).line(), flush=True)
    accel = accel_of(cfg)
    dist = data_parallel(cfg, device)
    PruneRates(cfg.prune.fraction, cfg.prune.conv_fraction, cfg.prune.output_fraction)
    check_granularity(cfg.prune.granularity, cfg.prune.channel_score)
    settings = pruner_settings(cfg)
    check_pool_bias(cfg.prune.pool_bias, cfg.prune.prune_bias)
    check_gamma(cfg.train.gamma)
    make_optimizer = optimizer_factory(cfg)
    data = load_data(cfg, device)
    n = data.x_train.shape[0]
    if not 0 < cfg.train.batch_size <= n:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} must be in 1..{n} "
                          "(the training set size)")
    ipe = n // cfg.train.batch_size
    make_model = model_factory(cfg, data)
    check_accel(accel, device, make_model(), data.x_train[:2], data.y_train[:2])
    pruner = make_pruner(cfg, data, make_model, settings)
    return Prepared(device, data, ipe, lr_schedule(cfg, ipe), make_model, make_optimizer,
                    pruner, accel, dist)


# -- the run: store, sink, lottery ----------------------------------------------------------
def open_store(cfg: DictConfig, settings: LotterySettings, locks: ExitStack) -> RunStore:
    """The run store of ``cfg``, locked for this process until ``locks`` closes, created with
    its config.yaml and run.json if new (else one warning line if another lth version made
    it). A second process on the same run directory stops here with a one-line message.
    Under torchrun, ranks > 0 get a FollowerStore over the same directory (rank 0 writes)."""
    store = RunStore.for_config(cfg.output_root, cfg.name, to_dict(cfg))
    if (d := distributed.current()) is not None and d.rank > 0:
        return FollowerStore(store.root)
    store.prepare()
    locks.enter_context(RunLock(store.lock_path))
    store.remove_temporaries()
    if store.config_path.exists():
        warn_if_other_version(store)
        warn_if_other_kernels(store, kernels_of(cfg))
        return store
    # A run.json without its config.yaml (deleted by hand) keeps its per-round records: the
    # config is rewritten (the directory's name is its hash), run.json never.
    store.write_text(store.config_path, OmegaConf.to_yaml(cfg, resolve=True))
    if not store.info_path.exists():
        store.write_text(store.info_path, json.dumps({
            "name": cfg.name, "hash": store.root.name, "versions": versions(kernels_of(cfg)),
            "seeds": {"init": settings.init_seed, "data": settings.data_seed,
                      "prune": "derive_seed(seed, 'prune', round)"},
        }, indent=2))
    return store


def open_sink(cfg: DictConfig, store: RunStore, closing: ExitStack) -> Sink:
    """The experiment's W&B run (id ``<name>-<hash>``), closed with ``closing``, with the
    stored rounds and controls replayed into it once, or a NullSink.

    Each process writes its own offline W&B folder; replaying makes the newest one complete
    (``wandb sync`` of it then holds every round).
    """
    from lth.tracking import NullSink
    from lth.tracking.wandb_sink import control_metrics, instability_metrics

    if (d := distributed.current()) is not None and d.rank > 0:
        return NullSink()  # rank 0 logs
    sink = open_wandb(
        mode=cfg.wandb.mode, project=cfg.wandb.project, group=cfg.name,
        name=f"{cfg.name}-{store.root.name}-s{cfg.seed}", run_id=f"{cfg.name}-{store.root.name}",
        config=to_dict(cfg), directory=cfg.wandb.dir or cfg.output_root,
        tags=list(cfg.wandb.tags), entity=cfg.wandb.entity,
    )
    closing.callback(sink.close)
    for record in store.read_metrics():
        sink.log_round(record)
    for record in store.read_controls():
        sink.log_round(control_metrics(record))
    for record in store.read_instability():
        sink.log_round(instability_metrics(record))
    return sink


def build(cfg: DictConfig, prep: Prepared, settings: LotterySettings, store: RunStore,
          sink: Sink) -> Lottery:
    """The experiment of ``cfg`` over ``store``, logging to ``sink``."""
    return Lottery(settings, prep.data, prep.make_model, prep.make_optimizer, prep.lr_factor,
                   store, sink, prep.device, progress=cfg.progress, pruner=prep.pruner,
                   versions=versions(kernels_of(cfg)), accel=prep.accel, dist=prep.dist,
                   sparse=sparse_of(cfg, settings.iterations, prep.iters_per_epoch))
