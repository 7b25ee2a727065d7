"""The ``sparse.*`` keys: a sparse training (static, SET, RigL, GMP) instead of IMP's rounds.

``sparse.method`` null (the default) is IMP; set, the run is one training, round 0, from the
method's start mask, its mask updated during the training (docs/sparse-training.md). Configs
stored before the node existed read as IMP.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from lth.lottery.sparse import SparseTraining
from lth.train import parse_duration
from lth.train.updates import sparse_settings


def sparse_method(cfg: DictConfig) -> str | None:
    """``sparse.method`` (None: IMP, also for a config stored before the key existed)."""
    return OmegaConf.select(cfg, "sparse.method", default=None)


def sparse_of(cfg: DictConfig, iterations: int, iters_per_epoch: int) -> SparseTraining | None:
    """The run's sparse training over ``iterations`` (None: IMP), checked: a bad value is a
    ConfigError naming its key."""
    method = sparse_method(cfg)
    if method is None:
        return None
    s = cfg.sparse
    every = None if s.update_every is None else parse_duration(
        s.update_every, iters_per_epoch, "sparse.update_every")
    return SparseTraining(sparse_settings(method, s.density, s.distribution, iterations, every,
                                          s.drop_fraction, s.drop_schedule, s.begin, s.end))
