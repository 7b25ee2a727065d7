"""What a score reads (``ScoreInputs``), and the scores of the weights alone. Higher survives.

``weights`` are the weights being pruned (a round's trained weights w_f in IMP); ``initial``
are the weights that round started from (w_i). The Zhou et al. 2019 ("Deconstructing Lottery
Tickets") criteria compare the two:

- ``magnitude`` (their ``large_final``): |w_f|;  ``small_final``: -|w_f|;
- ``large_init``: |w_i| (``magnitude_init`` at initialisation);
- ``large_init_large_final``: min(|w_i|, |w_f|): survivors are large at both ends (one
  threshold on both axes, the top-right corner of their Figure 2);
- ``magnitude_increase``: |w_f| - |w_i|;  ``movement``: |w_f - w_i|;
- ``random``: uniform random scores (a control).

Each is an entry of ``lth.pruning.registry``; scores that read the model and data (SNIP,
GraSP, SynFlow) are in ``lth.pruning.init_scores``, channel scores in ``lth.pruning.structured``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import Mask
from lth.pruning.registry import Score, check_strategy, get_score

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class ScoreInputs:
    """What a score may read; the pruner fills in what the score's entry ``needs``."""

    weights: dict[str, torch.Tensor]  # the weights being pruned, by the mask's names
    mask: Mask
    seed: int  # the round's pruning seed
    initial: dict[str, torch.Tensor] | None = None  # the round's initial weights (mask names)
    state: dict[str, torch.Tensor] = field(default_factory=dict)  # every tensor given
    model: nn.Module | None = None  # a scratch model holding ``state``, mask applied
    batches: list[tuple[torch.Tensor, torch.Tensor]] | None = None  # training batches
    input_shape: tuple[int, ...] = ()  # one sample's shape


def weight_inputs(score: Score, weights: dict[str, torch.Tensor], mask: Mask, seed: int,
                  initial: dict[str, torch.Tensor] | None = None) -> ScoreInputs:
    """The inputs of a score of the weights alone: ``weights`` (and ``initial``) of the
    mask's tensors; ValueError if ``score`` needs the initial weights and has none."""
    if "initial" in score.needs and initial is None:
        raise ValueError(f"score {score.name!r} needs the round's initial weights")
    picked = None if initial is None else {n: initial[n] for n in mask}
    return ScoreInputs({n: weights[n] for n in mask}, mask, seed, picked, dict(weights))


def magnitude_scores(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """|w| for each tensor (Han et al. 2015; Frankle & Carbin 2019)."""
    return {n: w.detach().abs().float().cpu() for n, w in weights.items()}


def random_scores(weights: dict[str, torch.Tensor], seed: int) -> dict[str, torch.Tensor]:
    """Uniform random scores from a generator seeded by ``seed`` (random pruning control)."""
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.rand(w.shape, generator=gen) for n, w in sorted(weights.items())}


def _pairs(inputs: ScoreInputs) -> Iterable[tuple[str, torch.Tensor, torch.Tensor]]:
    assert inputs.initial is not None
    for n, w in inputs.weights.items():
        yield n, w.detach().float().cpu(), inputs.initial[n].detach().float().cpu()


def magnitude(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """|w_f|."""
    return magnitude_scores(inputs.weights)


def random_uniform(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """Uniform random scores of the round's pruning seed."""
    return random_scores(inputs.weights, inputs.seed)


def small_final(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """-|w_f|."""
    return {n: -s for n, s in magnitude_scores(inputs.weights).items()}


def large_init(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """|w_i|."""
    return {n: wi.abs() for n, _, wi in _pairs(inputs)}


def large_init_large_final(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """min(|w_i|, |w_f|)."""
    return {n: torch.minimum(wi.abs(), wf.abs()) for n, wf, wi in _pairs(inputs)}


def magnitude_increase(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """|w_f| - |w_i|."""
    return {n: wf.abs() - wi.abs() for n, wf, wi in _pairs(inputs)}


def movement(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """|w_f - w_i|."""
    return {n: (wf - wi).abs() for n, wf, wi in _pairs(inputs)}


def compute_scores(kind: str, weights: dict[str, torch.Tensor], seed: int,
                   initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Scores of the weight score ``kind`` (of the weights alone) for each tensor in
    ``weights``; ``initial`` (the same names) for the kinds that compare w_i with w_f."""
    score = get_score(kind)
    mask = {n: torch.ones(w.shape, dtype=torch.bool) for n, w in weights.items()}
    return score.fn(weight_inputs(score, weights, mask, seed, initial))


def weight_scores(weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
                  initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The scores ``strategy`` ranks ``mask``'s tensors by (scores of the weights alone)."""
    score = get_score(check_strategy(strategy)[0])
    if {"model", "batches"} & set(score.needs):
        raise ConfigError(f"prune.strategy={strategy} scores the model: it needs a "
                          "lth.pruning.Pruner")
    return score.fn(weight_inputs(score, weights, mask, seed, initial))
