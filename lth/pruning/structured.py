"""Structured (channel) pruning: whole filters/neurons ranked and removed, as an ordinary Mask.

Channels are scored per DepGraph group (``lth.pruning.channels``), so channels tied by residual
adds are ranked and pruned together:

- ``l1``: mean |w| of the channel's producer rows (Li et al. 2017's filter norm, divided by the
  row size so that layers of different fan-in can compete in a global ranking);
- ``l2``: root-mean-square of the same rows;
- ``bn``: |gamma| of the channel's BatchNorm scales (network slimming, Liu et al. 2017);
- ``random`` (strategies ``random``/``random_global``): a control.

A pruned channel has its producers' rows *and* its consumers' columns masked, so the masked
model equals the physically smaller one (see ``lth.pruning.channels``). The schedule is the one
of weight pruning, counted in channels: after round k a group of C channels pruned at rate p
keeps ``round(C * (1 - p) ** k)``, at least one. With a global scope, groups that share a rate
compete; the rate of a group is the rate of its root layer (``prune.conv_fraction`` for conv
roots). The lottery loop runs it with ``prune.granularity=channel``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.channels import ChannelGroup, alive_channels, channel_groups
from lth.pruning.mask import Mask
from lth.pruning.prune import check_strategy, kept_count

GRANULARITIES = ("weight", "channel")
CHANNEL_SCORES = ("l1", "l2", "bn")


def check_granularity(granularity: str, channel_score: str) -> None:
    """ConfigError naming the choices if ``granularity`` or ``channel_score`` is unknown."""
    if granularity not in GRANULARITIES:
        raise ConfigError(f"prune.granularity={granularity!r} is unknown; choose one of "
                          f"{', '.join(GRANULARITIES)}")
    if channel_score not in CHANNEL_SCORES:
        raise ConfigError(f"prune.channel_score={channel_score!r} is unknown; choose one of "
                          f"{', '.join(CHANNEL_SCORES)}")


def _reduce_rows(w: torch.Tensor, dim: int, index: torch.Tensor, p: int) -> torch.Tensor:
    rows = w.detach().cpu().float().index_select(dim, index).movedim(dim, 0)
    rows = rows.reshape(rows.shape[0], -1)
    return rows.abs().mean(dim=1) if p == 1 else rows.pow(2).mean(dim=1)


def channel_scores(group: ChannelGroup, weights: dict[str, torch.Tensor], score: str,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """float [group.size]: how much each channel is worth keeping (higher survives)."""
    if score == "random":
        return torch.rand(group.size, generator=generator)
    roles = ("norm",) if score == "bn" else ("out",)
    slices = group.of(*roles)
    if not slices:
        raise ConfigError(
            f"prune.channel_score=bn needs BatchNorm after every pruned layer; {group.root} "
            "has none: use prune.channel_score=l1 or l2"
        )
    total = torch.zeros(group.size)
    for s in slices:
        total.index_add_(0, s.root, _reduce_rows(weights[s.name], s.dim, s.index,
                                                 1 if score in ("l1", "bn") else 2))
    return total.sqrt() if score == "l2" else total


def channel_mask(groups: list[ChannelGroup], mask: Mask,
                 keep: dict[str, torch.Tensor]) -> Mask:
    """A copy of ``mask`` with the channels not in ``keep[group.root]`` (bool [size]) masked.

    Every slice of a group that is in ``mask`` (producer rows and biases, consumer columns) is
    masked; norm scales are not in masks.
    """
    new = {n: m.clone() for n, m in mask.items()}
    for group in groups:
        for s in group.slices:
            if s.name not in new:
                continue
            drop = s.index[~keep[group.root][s.root]]
            if drop.numel():
                new[s.name].index_fill_(s.dim, drop.to(new[s.name].device), False)
    return new


def _keep_top(scores: list[torch.Tensor], keep: int) -> list[torch.Tensor]:
    """Keep the ``keep`` best of the concatenated scores, and each part's best one."""
    flat = torch.cat(scores)
    kept = torch.zeros(flat.numel(), dtype=torch.bool)
    alive = int(torch.isfinite(flat).sum())
    if min(keep, alive) > 0:
        kept[torch.topk(flat, min(keep, alive), sorted=False).indices] = True
    parts = list(kept.split([s.numel() for s in scores]))
    for part, s in zip(parts, scores):
        if not part.any():
            part[int(s.argmax())] = True  # a layer cannot lose all its channels
    return parts


def prune_channel_groups(
    groups: list[ChannelGroup], weights: dict[str, torch.Tensor], mask: Mask, *,
    score: str, scope: str, seed: int, densities: dict[str, float],
) -> Mask:
    """A smaller channel mask from the last round's ``weights``.

    ``densities``: weight name -> share of channels kept, as in ``prune_mask`` (a group takes
    its root's). Dead channels score -inf, so masks only shrink. Returns a new mask.
    """
    gen = torch.Generator().manual_seed(seed)
    scored = []
    for g in groups:
        alive = alive_channels(g, mask)
        s = channel_scores(g, weights, score, gen)
        if scope == "global" and score in ("l1", "l2") and alive.any():
            # Weight magnitudes scale with 1/sqrt(fan-in) (and drift apart in training), so
            # each group is ranked relative to its own mean, as Torch-Pruning's normalizer.
            s = s / s[alive].mean().clamp_min(1e-12)
        scored.append(torch.where(alive, s, torch.tensor(-math.inf)))
    buckets: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        density = densities[f"{g.root}.weight"]
        buckets.setdefault(i if scope == "layerwise" else density, []).append(i)
    keep: dict[str, torch.Tensor] = {}
    for members in buckets.values():
        size = sum(groups[i].size for i in members)
        count = kept_count(size, densities[f"{groups[members[0]].root}.weight"])
        for i, part in zip(members, _keep_top([scored[i] for i in members], count)):
            keep[groups[i].root] = part
    return channel_mask(groups, mask, keep)


class ChannelPruner:
    """``prune_mask``'s signature for channels: the lottery loop's pruner when
    ``prune.granularity=channel``.

    ``make_model`` builds the architecture (weights are not used) and ``example_input``
    [1, *input_shape] traces it; the groups are found once, on the CPU.
    """

    def __init__(self, make_model: Callable[[], nn.Module], example_input: torch.Tensor,
                 score: str = "l1") -> None:
        check_granularity("channel", score)
        self.make_model, self.example_input, self.score = make_model, example_input, score
        self._groups: list[ChannelGroup] | None = None

    def groups(self) -> list[ChannelGroup]:
        if self._groups is None:
            model = self.make_model().cpu()
            self._groups = channel_groups(model, self.example_input.cpu())
        return self._groups

    def __call__(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str,
                 seed: int, densities: dict[str, float],
                 initial: dict[str, torch.Tensor] | None = None) -> Mask:
        kind, scope = check_strategy(strategy)
        if kind not in ("magnitude", "random"):
            raise ConfigError(f"prune.strategy={strategy} has no channel version; with "
                              "prune.granularity=channel use a magnitude or random strategy")
        score = self.score if kind == "magnitude" else "random"
        return prune_channel_groups(self.groups(), weights, mask, score=score, scope=scope,
                                    densities=densities, seed=seed)
