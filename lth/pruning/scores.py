"""Scores of the weights alone: how much each weight is worth keeping. Higher survives.

``weights`` are the weights being pruned (a round's trained weights w_f in IMP); ``initial``
are the weights that round started from (w_i). The Zhou et al. 2019 ("Deconstructing Lottery
Tickets") criteria compare the two:

- ``magnitude`` (their ``large_final``): |w_f|;  ``small_final``: -|w_f|;
- ``large_init``: |w_i| (``magnitude_init`` at initialisation);
- ``large_init_large_final``: min(|w_i|, |w_f|): survivors are large at both ends (one
  threshold on both axes, the top-right corner of their Figure 2);
- ``magnitude_increase``: |w_f| - |w_i|;  ``movement``: |w_f - w_i|;
- ``random``: uniform random scores (a control).

Scores that need the model and data (SNIP, GraSP, SynFlow) are in ``lth.pruning.init_scores``.
"""

from __future__ import annotations

import torch

# score kind -> whether it reads the initial weights
WEIGHT_SCORES: dict[str, bool] = {
    "magnitude": False, "random": False, "small_final": False, "large_init": True,
    "large_init_large_final": True, "magnitude_increase": True, "movement": True,
}


def magnitude_scores(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """|w| for each tensor (Han et al. 2015; Frankle & Carbin 2019)."""
    return {n: w.detach().abs().float().cpu() for n, w in weights.items()}


def random_scores(weights: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Uniform random scores from a generator seeded by ``seed`` (random pruning control)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=gen) for n, w in sorted(weights.items())}


def _pair(kind: str, wf: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    wf, wi = wf.detach().float().cpu(), wi.detach().float().cpu()
    if kind == "large_init":
        return wi.abs()
    if kind == "large_init_large_final":
        return torch.minimum(wi.abs(), wf.abs())
    if kind == "magnitude_increase":
        return wf.abs() - wi.abs()
    return (wf - wi).abs()  # movement


def compute_scores(kind: str, weights: dict[str, torch.Tensor], seed: int,
                   initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Scores of ``kind`` (a key of ``WEIGHT_SCORES``) for each tensor in ``weights``.

    ``initial`` (the same names) is needed by the kinds that compare w_i with w_f.
    """
    if kind not in WEIGHT_SCORES:
        raise ValueError(f"unknown score kind {kind!r}")
    if kind == "magnitude":
        return magnitude_scores(weights)
    if kind == "random":
        return random_scores(weights, seed)
    if kind == "small_final":
        return {n: -s for n, s in magnitude_scores(weights).items()}
    if initial is None:
        raise ValueError(f"score kind {kind!r} needs the round's initial weights")
    return {n: _pair(kind, w, initial[n]) for n, w in weights.items()}
