"""Pruning strategies: pure functions from (weights, mask, settings) to a new, smaller mask.

A strategy is a score (magnitude or random) and a scope:
- ``global``: layers that share a rate compete with each other for the surviving weights;
- ``layerwise``: each layer keeps its own share.

The number of survivors is taken from the schedule, not from the previous round: after round k a
group of N weights pruned at rate p keeps ``round(N * (1 - p) ** k)`` weights, so the density
follows ``(1 - p) ** k`` exactly up to rounding of a single weight, however many rounds ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import Mask, conv_names, output_layer_name
from lth.pruning.scores import compute_scores

# strategy name -> (score kind, scope)
STRATEGIES: dict[str, tuple[str, str]] = {
    "magnitude_global": ("magnitude", "global"),
    "magnitude_layerwise": ("magnitude", "layerwise"),
    "random": ("random", "layerwise"),
    "random_global": ("random", "global"),
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


def scheduled_remaining(total: int, rate: float, round_index: int) -> int:
    """Survivors of a group of ``total`` weights after ``round_index`` rounds at ``rate``."""
    return int(math.floor(total * (1.0 - rate) ** round_index + 0.5))


def _groups(rates: dict[str, float], scope: str) -> list[list[str]]:
    if scope == "layerwise":
        return [[n] for n in rates]
    by_rate: dict[float, list[str]] = {}
    for n, r in rates.items():
        by_rate.setdefault(r, []).append(n)
    return list(by_rate.values())


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


def prune_mask(
    weights: dict[str, torch.Tensor],
    mask: Mask,
    *,
    strategy: str,
    rates: dict[str, float],
    round_index: int,
    seed: int,
) -> Mask:
    """The mask of round ``round_index`` (>= 1), from the trained ``weights`` of the last round.

    ``weights`` and ``mask`` map the same names; ``rates`` gives each name's per-round rate.
    Returns a new mask; nothing is mutated.
    """
    kind, scope = check_strategy(strategy)
    scores = compute_scores(kind, {n: weights[n] for n in mask}, seed)
    new: Mask = {}
    for names in _groups({n: rates[n] for n in mask}, scope):
        size = sum(mask[n].numel() for n in names)
        keep = scheduled_remaining(size, rates[names[0]], round_index)
        new.update(keep_top(scores, mask, names, keep))
    return new
