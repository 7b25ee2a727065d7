"""How much two masks agree, per layer and overall, against what chance gives.

Jaccard overlap ``|A ∩ B| / |A ∪ B|`` of the kept weights and the normalized Hamming distance
``mean(A != B)``. Chance is two independent uniformly random masks with the same layer
densities ``a`` and ``b``: expected intersection ``n·a·b``, union ``n·(a + b − a·b)``, Hamming
``a(1−b) + b(1−a)`` (the Jaccard figure is the ratio of the expectations, exact as n grows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from lth.pruning import Mask, prune_mask

OVERALL = "overall"


@dataclass(frozen=True)
class Overlap:
    """Agreement of two masks over ``size`` entries with densities ``density_a``/``_b``."""

    size: int
    density_a: float
    density_b: float
    jaccard: float
    hamming: float
    chance_jaccard: float
    chance_hamming: float


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a ∩ b| / |a ∪ b|`` of two bool tensors (1 when both are empty)."""
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def hamming(a: torch.Tensor, b: torch.Tensor) -> float:
    """The share of entries where two bool tensors differ."""
    return int((a != b).sum()) / max(1, a.numel())


def _chance(sizes: list[int], da: list[float], db: list[float]) -> tuple[float, float]:
    inter = sum(n * a * b for n, a, b in zip(sizes, da, db))
    union = sum(n * (a + b - a * b) for n, a, b in zip(sizes, da, db))
    diff = sum(n * (a * (1 - b) + b * (1 - a)) for n, a, b in zip(sizes, da, db))
    return (1.0 if union == 0 else inter / union), diff / max(1, sum(sizes))


def overlap(a: torch.Tensor, b: torch.Tensor) -> Overlap:
    """The agreement of two bool tensors of one shape, with its chance figures."""
    n = a.numel()
    da, db = int(a.sum()) / n, int(b.sum()) / n
    cj, ch = _chance([n], [da], [db])
    return Overlap(n, da, db, jaccard(a, b), hamming(a, b), cj, ch)


def compare_masks(a: Mask, b: Mask) -> dict[str, Overlap]:
    """Per-layer agreement of two masks over the same layers, plus ``overall`` (all entries;
    its chance figures from the layer densities)."""
    if sorted(a) != sorted(b):
        raise ValueError("the masks cover different layers")
    names = sorted(a)
    out = {n: overlap(a[n].bool().cpu(), b[n].bool().cpu()) for n in names}
    flat_a = torch.cat([a[n].bool().cpu().flatten() for n in names])
    flat_b = torch.cat([b[n].bool().cpu().flatten() for n in names])
    cj, ch = _chance([out[n].size for n in names], [out[n].density_a for n in names],
                     [out[n].density_b for n in names])
    n = flat_a.numel()
    out[OVERALL] = Overlap(n, int(flat_a.sum()) / n, int(flat_b.sum()) / n,
                           jaccard(flat_a, flat_b), hamming(flat_a, flat_b), cj, ch)
    return out


def oneshot_mask(weights: Mapping[str, torch.Tensor], like: Mask, *, strategy: str,
                 densities: Mapping[str, float], seed: int = 0,
                 pruner: Callable[..., Mask] = prune_mask) -> Mask:
    """The mask that pruning ``weights`` (round 0's trained state) in one step to
    ``densities`` gives, over the layers of ``like``: the one-shot counterpart of a ticket.
    ``pruner``: the run's own (``prune_mask``'s signature; e.g. with bias pooling)."""
    full = {n: torch.ones_like(m, dtype=torch.bool) for n, m in like.items()}
    return pruner(dict(weights), full, strategy=strategy, seed=seed, densities=dict(densities))
