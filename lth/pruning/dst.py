"""The pure core of sparse training: random start masks, drop and grow, and the schedules.

Pure functions of tensors (the mask updates of ``lth.train.updates`` call them and hold the
state). Per tensor, as google-research/rigl ``SparseSETOptimizer._get_update_op``:

- ``drop_count``: ``int(active * fraction)`` weights are dropped (floor, as the reference);
- ``drop_grow``: the active weights of smallest |w| are dropped and as many are grown among
  the rest (the just-dropped included, as in the reference) by a grow score: |dense gradient|
  for RigL, uniform noise for SET. The count of active weights never changes. Ties go to the
  lower flat index (stable sort) instead of the reference's N(0, 1e-5) noise on the drop
  score, so that an update is a pure function of its inputs; and only active weights compete
  to be kept (the reference's noise lets a pruned zero outrank an active weight below 1e-5).
- ``cosine_fraction``: RigL's drop fraction ``f0 / 2 * (1 + cos(pi * t / t_end))``;
- ``gmp_sparsity``: Zhu & Gupta's ``s_f + (s_i - s_f) * (1 - (t - t0) / (t_end - t0)) ** 3``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from lth.pruning.mask import Mask
from lth.pruning.scopes import kept_count


def random_mask(like: Mapping[str, torch.Tensor], densities: Mapping[str, float],
                generator: torch.Generator) -> Mask:
    """Each tensor of ``like`` keeps ``round(N * density)`` entries drawn uniformly without
    replacement (tensors in name order, one generator)."""
    out: Mask = {}
    for n in sorted(like):
        t = like[n]
        keep = kept_count(t.numel(), densities[n])
        order = torch.randperm(t.numel(), generator=generator)
        flat = torch.zeros(t.numel(), dtype=torch.bool)
        flat[order[:keep]] = True
        out[n] = flat.view(t.shape).to(t.device)
    return {n: out[n] for n in like}


def drop_count(active: int, fraction: float) -> int:
    """How many of ``active`` weights an update drops (and grows): ``int(active * fraction)``."""
    return int(active * fraction)


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices of the ``k`` largest ``scores`` (ties: the lower index first)."""
    return torch.argsort(scores.flatten(), descending=True, stable=True)[:k]


def drop_grow(weight: torch.Tensor, mask: torch.Tensor, grow_score: torch.Tensor,
              n: int) -> torch.Tensor:
    """``mask`` with its ``n`` active entries of smallest |weight| dropped and the ``n``
    entries of largest ``grow_score`` among the rest (dropped ones included) grown."""
    m = mask.detach().flatten().cpu()
    active = int(m.sum())
    n = min(n, active, m.numel() - active)
    drop_score = torch.where(m, weight.detach().abs().float().flatten().cpu(),
                             torch.tensor(-math.inf))
    kept = torch.zeros_like(m)
    kept[_top(drop_score, active - n)] = True
    grow = torch.where(kept, torch.tensor(-math.inf),
                       grow_score.detach().float().flatten().cpu())
    out = kept.clone()
    out[_top(grow, n)] = True
    return out.view(mask.shape).to(mask.device)


def magnitude_keep(weight: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """``mask`` cut to its ``keep`` active entries of largest |weight| (never grows)."""
    m = mask.detach().flatten().cpu()
    keep = min(keep, int(m.sum()))
    score = torch.where(m, weight.detach().abs().float().flatten().cpu(),
                        torch.tensor(-math.inf))
    out = torch.zeros_like(m)
    out[_top(score, keep)] = True
    return out.view(mask.shape).to(mask.device)


def cosine_fraction(it: int, initial: float, end: int) -> float:
    """RigL's drop fraction at iteration ``it``: cosine decay from ``initial`` at 0 to 0 at
    ``end`` (and after)."""
    if end <= 0:
        return 0.0
    return initial / 2 * (1 + math.cos(math.pi * min(it, end) / end))


def gmp_sparsity(it: int, final: float, begin: int, end: int, initial: float = 0.0) -> float:
    """Zhu & Gupta's sparsity at ``it``: ``initial`` until ``begin``, the cubic in between,
    ``final`` from ``end`` on."""
    if it <= begin:
        return initial
    if it >= end:
        return final
    return final + (initial - final) * (1 - (it - begin) / (end - begin)) ** 3
