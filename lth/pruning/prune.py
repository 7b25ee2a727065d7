"""Pruning strategies: pure functions from (weights, mask, settings) to a new, smaller mask.

A strategy is a score and a scope (``lth.pruning.registry``: every strategy, score and scope;
``lth.pruning.scopes``: how a scope keeps the best). Here: the per-round rates, the density
schedule, bias pooling's checks and ``prune_mask``, the pruner of the scores of the weights
alone (``lth.pruning.pruner.Pruner`` prunes by any score).

The number of survivors is taken from a target density, not from the previous round: a group of
N weights with target density d keeps ``round(N * d)`` weights. Iterative pruning targets
``(1 - p) ** k`` after round k, so the density follows the schedule exactly up to rounding of a
single weight, however many rounds ran; one-shot pruning and explicit schedules
(``target_densities``) give other targets through the same function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import Mask, conv_names, output_layer_name
from lth.pruning.registry import STRATEGIES, check_strategy
from lth.pruning.scopes import (
    groups,
    invert_mask,
    keep_top,
    kept_count,
    mask_from_scores,
    pooled_densities,
)
from lth.pruning.scores import weight_scores

__all__ = ["STRATEGIES", "PruneRates", "check_pool_bias", "check_strategy", "groups",
           "invert_mask", "keep_top", "kept_count", "layer_rates", "mask_from_scores",
           "pooled_densities", "prune_mask", "scheduled_densities", "target_densities",
           "weight_scores"]


@dataclass(frozen=True)
class PruneRates:
    """Share of the *remaining* weights removed per round, by kind of layer.

    ``conv`` and ``output`` default to ``fraction`` when None. An output rate of 0 leaves the
    classifier dense.
    """

    fraction: float
    conv: float | None = None
    output: float | None = None

    def __post_init__(self) -> None:
        for key, value in (("fraction", self.fraction), ("conv_fraction", self.conv),
                           ("output_fraction", self.output)):
            if value is not None and not (0.0 <= value < 1.0):
                raise ConfigError(
                    f"prune.{key}={value} is outside [0, 1): it is the share of the remaining "
                    "weights removed per round, e.g. 0.2"
                )


def check_pool_bias(pool_bias: bool, prune_bias: bool) -> None:
    """ConfigError when ``prune.pool_bias`` is asked for without biases in the mask. (Under
    ``prune.granularity=channel`` a channel's bias goes with its channel either way.)"""
    if pool_bias and not prune_bias:
        raise ConfigError("prune.pool_bias=true ranks biases with their layer's weights: "
                          "set prune.prune_bias=true too")


def layer_rates(model: nn.Module, names: list[str], rates: PruneRates) -> dict[str, float]:
    """The per-round pruning rate of each prunable tensor of ``model``."""
    out_name = output_layer_name(model)
    convs = conv_names(model)
    result = {}
    for n in names:
        rate = rates.fraction
        if n in convs and rates.conv is not None:
            rate = rates.conv
        if n == out_name and rates.output is not None:
            rate = rates.output
        result[n] = rate
    return result


def scheduled_densities(rates: dict[str, float], round_index: float) -> dict[str, float]:
    """Each tensor's density after ``round_index`` rounds at its own rate: ``(1 - r) ** k``."""
    return {n: (1.0 - r) ** round_index for n, r in rates.items()}


def target_densities(rates: dict[str, float], base_rate: float,
                     density: float) -> dict[str, float]:
    """Per-tensor densities when the tensors pruned at ``base_rate`` reach ``density``.

    Tensors with another rate (conv, output layer) go to the same point of their own schedule,
    ``(1 - r) ** t`` with ``(1 - base_rate) ** t = density``; a rate of 0 stays dense. This is
    what an explicit ``prune.schedule`` of densities means.
    """
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"a target density must be in (0, 1], got {density}")
    if any(r != base_rate and r > 0 for r in rates.values()) and base_rate <= 0:
        raise ConfigError("prune.schedule with per-layer rates needs prune.fraction > 0")
    point = math.log(density) / math.log(1.0 - base_rate) if base_rate > 0 else 0.0
    return {n: density if r == base_rate else (1.0 - r) ** point for n, r in rates.items()}


def prune_mask(weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
               densities: dict[str, float], initial: dict[str, torch.Tensor] | None = None,
               pool_bias: bool = False) -> Mask:
    """A smaller mask from the trained ``weights`` of the last round.

    ``densities``: each name's target density of its whole tensor (``scheduled_densities``
    for round k of the iterative schedule, ``target_densities`` for an explicit one).
    ``initial``: the weights the round started from (the Zhou et al. criteria read them).
    ``pool_bias``: a layer's bias (when the mask has it) takes its weight's target and is
    ranked with it, one group per layer (the mnist1d notebook's layer-wise pruning of each
    layer's parameter vector). ``weights`` and ``mask`` map the same names. Returns a new
    mask; nothing is mutated.
    """
    scores = weight_scores(weights, mask, strategy=strategy, seed=seed, initial=initial)
    return mask_from_scores(scores, mask, check_strategy(strategy)[1], densities, pool_bias)
