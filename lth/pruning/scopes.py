"""Scopes: which weights compete for the survivors, and the rule that keeps the best of them.

The number of survivors is taken from a target density, not from the previous round: a group
of N weights with target density d keeps ``round(N * d)`` of them (``kept_count``), the
highest-scoring among those the mask still keeps (pruned weights are never revived):

- ``global``: the tensors that share a target (a rate) form one group;
- ``layerwise``: each tensor is a group; with bias pooling a layer's weight and bias are one;
- ``row``: each tensor (or pooled layer) is a group whose every output row keeps
  ``round(row size * density)`` of its own entries (Wanda-style criteria compare weights
  within an output row); a 1-D tensor such as a bias is one row.

The scopes themselves are entries of ``lth.pruning.registry.SCOPES``.
"""

from __future__ import annotations

import math

import torch

from lth.pruning.mask import Mask
from lth.pruning.registry import get_scope, resolve


def kept_count(total: int, density: float) -> int:
    """Survivors of a group of ``total`` weights at target ``density`` (rounded half up)."""
    return int(math.floor(total * density + 0.5))


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
    """The names that compete for survivors: one group per tensor (scopes by layer; with
    ``pool_bias`` a layer's weight and bias together) or per target (global: tensors with the
    same target, the same rate, compete)."""
    if get_scope(scope).by_layer:
        by_layer: dict[str, list[str]] = {}
        for n in densities:
            layer = n.rsplit(".", 1)[0] if pool_bias and "." in n else n
            by_layer.setdefault(layer, []).append(n)
        return list(by_layer.values())
    by_target: dict[float, list[str]] = {}
    for n, d in densities.items():
        by_target.setdefault(d, []).append(n)
    return list(by_target.values())


def _alive_scores(scores: dict[str, torch.Tensor], mask: Mask, n: str) -> torch.Tensor:
    return torch.where(mask[n].cpu(), scores[n].float().cpu(), torch.tensor(-math.inf))


def keep_top(scores: dict[str, torch.Tensor], mask: Mask, names: list[str], keep: int) -> Mask:
    """Keep the ``keep`` highest-scoring weights among ``names`` that ``mask`` still keeps.

    Pruned weights score -inf so they are never revived: masks only shrink.
    """
    flat = torch.cat([_alive_scores(scores, mask, n).flatten() for n in names])
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


def keep_group(scores: dict[str, torch.Tensor], mask: Mask, names: list[str],
               density: float) -> Mask:
    """The ``round(size * density)`` highest ``scores`` of the group ``names``."""
    return keep_top(scores, mask, names, kept_count(sum(mask[n].numel() for n in names),
                                                    density))


def keep_rows(scores: dict[str, torch.Tensor], mask: Mask, names: list[str],
              density: float) -> Mask:
    """Every output row of the group ``names`` keeps ``round(row size * density)`` of its
    highest ``scores`` that ``mask`` still keeps (fewer if fewer survive). A lone 1-D tensor
    is one row; a pooled bias [out] adds one entry to each of its weight's rows."""
    rows = 1 if len(names) == 1 and mask[names[0]].dim() == 1 else mask[names[0]].shape[0]
    score = torch.cat([_alive_scores(scores, mask, n).reshape(rows, -1) for n in names], 1)
    alive = torch.cat([mask[n].cpu().reshape(rows, -1) for n in names], 1)
    keep = alive.sum(1).clamp(max=kept_count(score.shape[1], density))
    order = score.argsort(dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(score.shape[1]).expand(rows, -1).contiguous())
    kept = rank < keep[:, None]
    widths = [mask[n].numel() // rows for n in names]
    return {n: part.reshape(mask[n].shape).to(mask[n].device)
            for n, part in zip(names, kept.split(widths, 1))}


def mask_from_scores(scores: dict[str, torch.Tensor], mask: Mask, scope: str,
                     densities: dict[str, float], pool_bias: bool = False) -> Mask:
    """The highest ``scores`` of each group of ``scope`` kept, by its target density; with
    ``pool_bias`` a layer's bias takes its weight's target and is ranked with it."""
    targets = {n: densities[n] for n in mask}
    if pool_bias:
        targets = pooled_densities(targets)
    select = resolve(get_scope(scope).keep)
    new: Mask = {}
    for names in groups(targets, scope, pool_bias):
        new.update(select(scores, mask, names, targets[names[0]]))
    return new


def invert_mask(scores: dict[str, torch.Tensor], mask: Mask, ticket: Mask) -> Mask:
    """The *lowest* ``scores`` among ``mask``'s survivors, as many per layer as ``ticket``
    keeps (Frankle et al. 2021's inversion)."""
    out: Mask = {}
    for n in mask:
        out.update(keep_top({n: -scores[n].float()}, mask, [n], int(ticket[n].sum())))
    return out
