"""Pruning: masks, scores and strategies (pure functions; they never touch a model's weights).

The names below are imported on first use, so that ``lth.pruning.registry`` (the scores and
strategies, listed by ``--help``) can be read without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lth.pruning.mask import (
        Mask,
        apply_mask,
        check_mask,
        density,
        full_mask,
        layer_density,
        output_layer_name,
        prunable_names,
        remaining,
        total,
    )
    from lth.pruning.prune import (
        PruneRates,
        check_pool_bias,
        check_strategy,
        kept_count,
        layer_rates,
        prune_mask,
        scheduled_densities,
        target_densities,
    )
    from lth.pruning.pruner import Pruner, PrunerSettings, scores_of
    from lth.pruning.registry import STRATEGIES
    from lth.pruning.structured import ChannelPruner

_FROM = {
    "lth.pruning.mask": ("Mask", "apply_mask", "check_mask", "density", "full_mask",
                         "layer_density", "output_layer_name", "prunable_names", "remaining",
                         "total"),
    "lth.pruning.prune": ("PruneRates", "check_pool_bias", "check_strategy", "kept_count",
                          "layer_rates", "prune_mask", "scheduled_densities",
                          "target_densities"),
    "lth.pruning.pruner": ("Pruner", "PrunerSettings", "scores_of"),
    "lth.pruning.registry": ("STRATEGIES",),
    "lth.pruning.structured": ("ChannelPruner",),
}
_MODULE_OF = {name: module for module, names in _FROM.items() for name in names}
__all__ = [
    "STRATEGIES", "ChannelPruner", "Mask", "PruneRates", "Pruner", "PrunerSettings",
    "apply_mask", "check_mask", "check_pool_bias", "check_strategy", "density", "full_mask",
    "kept_count", "layer_density", "layer_rates", "output_layer_name", "prunable_names",
    "prune_mask", "remaining", "scheduled_densities", "scores_of", "target_densities", "total",
]


def __getattr__(name: str) -> Any:
    """The public name ``name``, imported from its module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
