"""The error barrier between two networks before and after aligning one to the other.

Two networks trained from different seeds sit in different basins up to the permutation
symmetry of their hidden units (Entezari et al. 2022; Ainsworth et al. 2023): the straight
path between them crosses a high-error region, and the path between A and B permuted into
A's coordinates by weight matching may not. Both paths are evaluated with
``lth.measure.interpolate.error_curve`` (BatchNorm statistics recomputed per α on training
batches when given, as for instability). α weighs A: ``E(1)`` is A's error, ``E(0)`` B's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lth.measure.interpolate import Curve, Split, error_curve
from lth.permute.apply import Perm, apply_perm
from lth.permute.matching import weight_matching
from lth.permute.spec import perm_spec

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class Aligned:
    """The paths A -> B and A -> B aligned, and the permutation that aligned B."""

    before: Curve
    after: Curve
    perm: Perm


def align(model: nn.Module, a: State, b: State, *, max_iter: int = 100,
          seed: int = 0) -> tuple[Perm, dict[str, torch.Tensor]]:
    """Weight matching of ``b`` to ``a`` (both ``model``'s state dicts): the permutation and
    ``b`` permuted into ``a``'s coordinates."""
    spec = perm_spec(model)
    perm = weight_matching(spec, a, b, max_iter=max_iter, seed=seed)
    return perm, apply_perm(spec, perm, b)


def aligned_barrier(model: nn.Module, a: State, b: State, alphas: Sequence[float], *,
                    test: Split, train: Split, bn_batches: Sequence[torch.Tensor] | None = None,
                    max_iter: int = 100, seed: int = 0, perm: Perm | None = None) -> Aligned:
    """The error curves between ``a`` and ``b`` before and after aligning ``b`` to ``a``
    (by ``perm`` when given, else by weight matching; ``model`` is scratch, left at the last
    point)."""
    if perm is None:
        perm, b_aligned = align(model, a, b, max_iter=max_iter, seed=seed)
    else:
        b_aligned = apply_perm(perm_spec(model), perm, b)
    before = error_curve(model, a, b, alphas, test=test, train=train, bn_batches=bn_batches)
    after = error_curve(model, a, b_aligned, alphas, test=test, train=train,
                        bn_batches=bn_batches)
    return Aligned(before, after, perm)
