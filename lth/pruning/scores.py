"""Scores: how much each weight is worth keeping. Higher survives."""

from __future__ import annotations

import torch


def magnitude_scores(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """|w| for each tensor (Han et al. 2015; Frankle & Carbin 2019)."""
    return {n: w.detach().abs().float().cpu() for n, w in weights.items()}


def random_scores(weights: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Uniform random scores from a generator seeded by ``seed`` (random pruning control)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=gen) for n, w in sorted(weights.items())}


def compute_scores(
    kind: str, weights: dict[str, torch.Tensor], seed: int
) -> dict[str, torch.Tensor]:
    """Scores of ``kind`` ("magnitude" or "random") for each tensor in ``weights``."""
    if kind == "magnitude":
        return magnitude_scores(weights)
    if kind == "random":
        return random_scores(weights, seed)
    raise ValueError(f"unknown score kind {kind!r}")
