"""The pruner of an experiment's ``prune.*`` keys (any strategy of the score registry, or whole
channels), checked against the data and the model before anything is stored."""

from __future__ import annotations

from collections.abc import Callable

import torch
from omegaconf import DictConfig, OmegaConf

from lth.data import Dataset
from lth.errors import ConfigError
from lth.pruning import PruneRates, layer_rates, prunable_names
from lth.pruning.calibrated import parse_nm
from lth.pruning.pruner import Pruner, PrunerSettings
from lth.pruning.structured import ChannelPruner


def pruner_settings(cfg: DictConfig) -> PrunerSettings:
    """The pruner's ``prune.*`` keys, checked (``score_mode`` is ``train`` where a config
    stored before the key existed lacks it)."""
    p = cfg.prune
    return PrunerSettings(p.score_batches, p.score_iterations,
                          OmegaConf.select(cfg, "prune.score_mode", default="train"),
                          p.pool_bias, p.channel_score,
                          OmegaConf.select(cfg, "prune.calibration_samples", default=128),
                          parse_nm(OmegaConf.select(cfg, "prune.nm", default="")),
                          OmegaConf.select(cfg, "prune.channel_round_to", default=1))


def make_pruner(cfg: DictConfig, data: Dataset, make_model: Callable[[], torch.nn.Module],
                settings: PrunerSettings) -> Pruner:
    """The pruner of ``cfg.prune`` (any strategy of the registry; whole channels with
    ``prune.granularity=channel``), checked against the data and the model."""
    kind = ChannelPruner if cfg.prune.granularity == "channel" else Pruner
    pruner = kind(make_model, data.x_train, data.y_train, cfg.train.batch_size, settings)
    pruner.check(cfg.prune.strategy)
    if isinstance(pruner, ChannelPruner):
        pruner.groups()  # fail now, not after round 0, if the model is unsupported
    p, model = cfg.prune, make_model()
    if pruner.settings.nm is not None and p.granularity == "channel":
        raise ConfigError("prune.nm masks weights within rows: with prune.granularity=channel "
                          "leave prune.nm unset")
    rates = layer_rates(model, prunable_names(model, p.prune_bias),
                        PruneRates(p.fraction, p.conv_fraction, p.output_fraction))
    pruner.check_tensors(p.strategy, model, [n for n, r in rates.items() if r > 0])
    return pruner
