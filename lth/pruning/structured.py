"""Structured (channel) pruning: whole filters/neurons ranked and removed, as an ordinary Mask.

Channels are scored per DepGraph group (``lth.pruning.channels``), so channels tied by residual
adds are ranked and pruned together. The channel scores are entries of the registry with
channel granularity (``lth.pruning.registry``):

- ``l1``: mean |w| of the channel's producer rows (Li et al. 2017's filter norm, divided by the
  row size so that layers of different fan-in can compete in a global ranking);
- ``l2``: root-mean-square of the same rows;
- ``bn``: |gamma| of the channel's BatchNorm scales (network slimming, Liu et al. 2017);
- ``random`` (strategies ``random``/``random_global``): a control.

The magnitude strategies rank channels by ``prune.channel_score``; any other strategy by the
channel score of its own score's name (``random``). A pruned channel has its producers' rows,
their biases *and* its consumers' columns masked, so the masked model equals the physically
smaller one (see ``lth.pruning.channels``); a channel's bias goes with its channel, pooled or
not. The schedule is the one of weight pruning, counted in channels: after round k a group of
C channels pruned at rate p keeps ``round(C * (1 - p) ** k)``, at least one. With a global
scope, groups that share a rate compete; the rate of a group is the rate of its root layer
(``prune.conv_fraction`` for conv roots). The lottery loop runs it with
``prune.granularity=channel``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from lth.errors import ConfigError
from lth.pruning import registry
from lth.pruning.channels import ChannelGroup, alive_channels, channel_groups
from lth.pruning.mask import Mask
from lth.pruning.pruner import Pruner, Scores
from lth.pruning.registry import Score, channel_strategy, get_scope, get_score
from lth.pruning.scopes import kept_count
from lth.pruning.scores import ScoreInputs, weight_inputs


def check_granularity(granularity: str, channel_score: str) -> None:
    """ConfigError naming the choices if ``granularity`` or ``channel_score`` is unknown."""
    registry.check_granularity(granularity)
    get_score(channel_score, "channel", "prune.channel_score")


def _reduce_rows(w: torch.Tensor, dim: int, index: torch.Tensor, p: int) -> torch.Tensor:
    rows = w.detach().cpu().float().index_select(dim, index).movedim(dim, 0)
    rows = rows.reshape(rows.shape[0], -1)
    return rows.abs().mean(dim=1) if p == 1 else rows.pow(2).mean(dim=1)


def _row_norms(inputs: ScoreInputs, group: ChannelGroup, role: str, p: int) -> torch.Tensor:
    slices = group.of(role)
    if not slices:
        raise ConfigError(
            f"prune.channel_score=bn needs BatchNorm after every pruned layer; {group.root} "
            "has none: use prune.channel_score=l1 or l2"
        )
    total = torch.zeros(group.size)
    for s in slices:
        total.index_add_(0, s.root, _reduce_rows(inputs.state[s.name], s.dim, s.index, p))
    return total


def l1(inputs: ScoreInputs, group: ChannelGroup, gen: torch.Generator) -> torch.Tensor:
    """float [group.size]: mean |w| of each channel's producer rows, summed over producers."""
    return _row_norms(inputs, group, "out", 1)


def l2(inputs: ScoreInputs, group: ChannelGroup, gen: torch.Generator) -> torch.Tensor:
    """float [group.size]: root of the summed mean squares of each channel's producer rows."""
    return _row_norms(inputs, group, "out", 2).sqrt()


def bn(inputs: ScoreInputs, group: ChannelGroup, gen: torch.Generator) -> torch.Tensor:
    """float [group.size]: |gamma| of each channel's BatchNorm scales, summed."""
    return _row_norms(inputs, group, "norm", 1)


def random_channels(inputs: ScoreInputs, group: ChannelGroup,
                    gen: torch.Generator) -> torch.Tensor:
    """float [group.size]: uniform random scores from the round's generator."""
    return torch.rand(group.size, generator=gen)


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


def rounded_count(count: int, alive: int, size: int, multiple: int) -> int:
    """``count`` kept channels of a group of ``size`` (``alive`` still kept) rounded to the
    nearest multiple of ``multiple`` (at least one multiple; the full width stays full),
    never above ``alive``: the hardware-friendly count (Torch-Pruning's ``round_to``)."""
    if multiple <= 1 or count >= size:
        return count
    rounded = min(size, max(multiple, int(math.floor(count / multiple + 0.5)) * multiple))
    if rounded > alive:  # pruned channels are not revived
        rounded = alive // multiple * multiple or alive
    return rounded


def _round_parts(scored: list[torch.Tensor], parts: list[torch.Tensor], sizes: list[int],
                 multiple: int) -> list[torch.Tensor]:
    """Each group's kept channels re-chosen as its best ``rounded_count`` ones."""
    out = []
    for s, part, size in zip(scored, parts, sizes):
        alive = int(torch.isfinite(s).sum())
        count = rounded_count(int(part.sum()), alive, size, multiple)
        kept = torch.zeros_like(part)
        kept[torch.topk(s, count, sorted=False).indices] = True
        out.append(kept)
    return out


def prune_channels(groups: list[ChannelGroup], inputs: ScoreInputs, score: Score, scope: str,
                   densities: dict[str, float], round_to: int = 1) -> Mask:
    """A smaller channel mask than ``inputs.mask``, ranked by the channel ``score``.

    ``densities``: weight name -> share of channels kept, as in ``prune_mask`` (a group takes
    its root's). Dead channels score -inf, so masks only shrink. ``round_to`` > 1: each
    group's kept count is then rounded to a multiple of it (``rounded_count``). Returns a new
    mask.
    """
    gen = torch.Generator().manual_seed(inputs.seed)
    compute, scored = score.fn, []
    for g in groups:
        alive = alive_channels(g, inputs.mask)
        s = compute(inputs, g, gen)
        if scope == "global" and score.relative and alive.any():
            # Weight magnitudes scale with 1/sqrt(fan-in) (and drift apart in training), so
            # each group is ranked relative to its own mean, as Torch-Pruning's normalizer.
            s = s / s[alive].mean().clamp_min(1e-12)
        scored.append(torch.where(alive, s, torch.tensor(-math.inf)))
    by_layer = get_scope(scope).by_layer
    buckets: dict[object, list[int]] = {}
    for i, g in enumerate(groups):
        buckets.setdefault(i if by_layer else densities[f"{g.root}.weight"], []).append(i)
    keep: dict[str, torch.Tensor] = {}
    for members in buckets.values():
        size = sum(groups[i].size for i in members)
        count = kept_count(size, densities[f"{groups[members[0]].root}.weight"])
        parts = _keep_top([scored[i] for i in members], count)
        if round_to > 1:
            parts = _round_parts([scored[i] for i in members], parts,
                                 [groups[i].size for i in members], round_to)
        for i, part in zip(members, parts):
            keep[groups[i].root] = part
    return channel_mask(groups, inputs.mask, keep)


def prune_channel_groups(
    groups: list[ChannelGroup], weights: dict[str, torch.Tensor], mask: Mask, *,
    score: str, scope: str, seed: int, densities: dict[str, float],
) -> Mask:
    """``prune_channels`` by the channel score named ``score`` (of the weights alone)."""
    entry = get_score(score, "channel", "prune.channel_score")
    return prune_channels(groups, weight_inputs(entry, weights, mask, seed), entry, scope,
                          densities)


@dataclass(eq=False)
class ChannelPruner(Pruner):
    """The pruner of whole channels (``prune.granularity=channel``): the magnitude strategies
    rank by ``settings.channel_score``, the others by the channel score of their name.

    The channel groups are traced once, on the CPU, on ``x[:1]``.
    """

    granularity: ClassVar[str] = "channel"
    _groups: list[ChannelGroup] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_granularity(self.granularity, self.settings.channel_score)

    def groups(self) -> list[ChannelGroup]:
        """The model's channel groups (DepGraph), found on first use."""
        if self._groups is None:
            model = self.make_model().cpu()
            self._groups = channel_groups(model, self.x[:1].cpu())
        return self._groups

    def entry(self, strategy: str) -> tuple[Score, str]:
        """The channel score and scope ``strategy`` ranks by; ConfigError naming the choices."""
        return channel_strategy(strategy, self.settings.channel_score)

    def scores(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
               initial: dict[str, torch.Tensor] | None = None) -> Scores:
        """Channel pruning ranks channels, not weights: ConfigError."""
        raise ConfigError("the invert control needs scores per weight: it supports "
                          "prune.granularity=weight only")

    def __call__(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str,
                 seed: int, densities: dict[str, float],
                 initial: dict[str, torch.Tensor] | None = None) -> Mask:
        """``prune_mask`` for channels: a smaller mask of whole channels."""
        self.check(strategy)
        score, scope = self.entry(strategy)
        inputs = self.inputs(score, weights, mask, seed, initial)
        return prune_channels(self.groups(), inputs, score, scope, densities,
                              self.settings.channel_round_to)
