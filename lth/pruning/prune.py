"""Pruning strategies: pure functions from (weights, mask, settings) to a new, smaller mask.

A strategy is a score (``lth.pruning.scores``; SNIP, GraSP and SynFlow in
``lth.pruning.init_scores``) and a scope:
- ``global``: layers that share a rate compete with each other for the surviving weights;
- ``layerwise``: each layer keeps its own share.

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
from lth.pruning.scores import WEIGHT_SCORES, compute_scores

# Scores that need the model (and, but for SynFlow, training batches): lth.pruning.init_scores.
MODEL_SCORES = ("snip", "grasp", "synflow")
DATA_SCORES = ("snip", "grasp")

# Score kinds with a global strategy `<kind>` and a layer-wise one `<kind>_layerwise`.
_SCOPED = (*MODEL_SCORES, "small_final", "large_init", "large_init_large_final",
           "magnitude_increase", "movement")
# strategy name -> (score kind, scope). `large_final` is Zhou et al.'s name for magnitude,
# `magnitude_init` the pruning-at-init baseline's name for `large_init`.
STRATEGIES: dict[str, tuple[str, str]] = {
    "magnitude_global": ("magnitude", "global"),
    "magnitude_layerwise": ("magnitude", "layerwise"),
    "random": ("random", "layerwise"),
    "random_global": ("random", "global"),
    "large_final": ("magnitude", "global"),
    "large_final_layerwise": ("magnitude", "layerwise"),
    "magnitude_init": ("large_init", "global"),
    "magnitude_init_layerwise": ("large_init", "layerwise"),
    **{kind: (kind, "global") for kind in _SCOPED},
    **{f"{kind}_layerwise": (kind, "layerwise") for kind in _SCOPED},
}


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


def check_strategy(strategy: str) -> tuple[str, str]:
    """(score kind, scope) of ``strategy``; ConfigError naming the choices if unknown."""
    if strategy not in STRATEGIES:
        raise ConfigError(
            f"prune.strategy={strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}"
        )
    return STRATEGIES[strategy]


def check_pool_bias(pool_bias: bool, prune_bias: bool, granularity: str) -> None:
    """ConfigError when ``prune.pool_bias`` is asked for where it has no meaning."""
    if pool_bias and not prune_bias:
        raise ConfigError("prune.pool_bias=true ranks biases with their layer's weights: "
                          "set prune.prune_bias=true too")
    if pool_bias and granularity != "weight":
        raise ConfigError("prune.pool_bias=true (the default experiment sets it) needs "
                          "prune.granularity=weight: add prune.pool_bias=false")


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


def kept_count(total: int, density: float) -> int:
    """Survivors of a group of ``total`` weights at target ``density`` (rounded half up)."""
    return int(math.floor(total * density + 0.5))


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


def pooled_densities(densities: dict[str, float]) -> dict[str, float]:
    """Each ``<layer>.bias`` at the target of its ``<layer>.weight`` (bias pooling)."""
    out = dict(densities)
    for n in densities:
        weight = n.removesuffix(".bias") + ".weight" if n.endswith(".bias") else None
        if weight in densities:
            out[n] = densities[weight]
    return out


def groups(densities: dict[str, float], scope: str,
           pool_bias: bool = False) -> list[list[str]]:
    """The names that compete for survivors: one group per tensor (layer-wise; with
    ``pool_bias`` a layer's weight and bias together) or per target (global: tensors with the
    same target, the same rate, compete)."""
    if scope == "layerwise":
        by_layer: dict[str, list[str]] = {}
        for n in densities:
            layer = n.rsplit(".", 1)[0] if pool_bias and "." in n else n
            by_layer.setdefault(layer, []).append(n)
        return list(by_layer.values())
    by_target: dict[float, list[str]] = {}
    for n, d in densities.items():
        by_target.setdefault(d, []).append(n)
    return list(by_target.values())


def keep_top(scores: dict[str, torch.Tensor], mask: Mask, names: list[str], keep: int) -> Mask:
    """Keep the ``keep`` highest-scoring weights among ``names`` that ``mask`` still keeps.

    Pruned weights score -inf so they are never revived: masks only shrink.
    """
    flat = torch.cat([
        torch.where(mask[n].cpu(), scores[n].float(), torch.tensor(-math.inf)).flatten()
        for n in names
    ])
    alive = int(sum(int(mask[n].sum()) for n in names))
    keep = min(keep, alive)
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    if keep > 0:
        kept[torch.topk(flat, keep, sorted=False).indices] = True
    out, start = {}, 0
    for n in names:
        size = mask[n].numel()
        out[n] = kept[start:start + size].view(mask[n].shape).to(mask[n].device)
        start += size
    return out


def mask_from_scores(scores: dict[str, torch.Tensor], mask: Mask, scope: str,
                     densities: dict[str, float], pool_bias: bool = False) -> Mask:
    """The highest ``scores`` of each group kept, ``round(size * density)`` of them; with
    ``pool_bias`` a layer's bias takes its weight's target and is ranked with it."""
    targets = {n: densities[n] for n in mask}
    if pool_bias:
        targets = pooled_densities(targets)
    new: Mask = {}
    for names in groups(targets, scope, pool_bias):
        size = sum(mask[n].numel() for n in names)
        new.update(keep_top(scores, mask, names, kept_count(size, targets[names[0]])))
    return new


def invert_mask(scores: dict[str, torch.Tensor], mask: Mask, ticket: Mask) -> Mask:
    """The *lowest* ``scores`` among ``mask``'s survivors, as many per layer as ``ticket``
    keeps (Frankle et al. 2021's inversion)."""
    out: Mask = {}
    for n in mask:
        out.update(keep_top({n: -scores[n].float()}, mask, [n], int(ticket[n].sum())))
    return out


def weight_scores(weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
                  initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The scores ``strategy`` ranks ``mask``'s tensors by (scores of the weights alone)."""
    kind, _ = check_strategy(strategy)
    if kind not in WEIGHT_SCORES:
        raise ConfigError(f"prune.strategy={strategy} scores the model on data: it needs a "
                          "lth.pruning.init_scores.ScorePruner")
    pick = (lambda d: {n: d[n] for n in mask})
    return compute_scores(kind, pick(weights), seed, None if initial is None else pick(initial))


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
