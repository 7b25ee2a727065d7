"""Pruning: masks, scores and strategies (pure functions; they never touch a model's weights)."""

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
    STRATEGIES,
    PruneRates,
    check_pool_bias,
    check_strategy,
    kept_count,
    layer_rates,
    prune_mask,
    scheduled_densities,
    target_densities,
)

__all__ = [
    "Mask", "apply_mask", "check_mask", "density", "full_mask", "layer_density",
    "output_layer_name", "prunable_names", "remaining", "total", "STRATEGIES", "PruneRates",
    "check_pool_bias", "check_strategy", "kept_count", "layer_rates", "prune_mask",
    "scheduled_densities",
    "target_densities",
]
