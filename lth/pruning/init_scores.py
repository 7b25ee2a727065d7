"""Scores that read the model: SNIP, GraSP, SynFlow (pruning at initialisation), and the pruner
that ranks by them with the same rounding rule as magnitude pruning.

- ``snip`` (Lee et al. 2019): |dL/dw * w|, the loss L summed over ``score_batches`` training
  batches (cross-entropy, mean over each batch);
- ``grasp`` (Wang et al. 2020): GraSP removes the weights with the highest S = -w * (H g),
  g = dL/dw and H g by double backprop, logits divided by a temperature of 200 as in the
  reference implementation; so here w * (H g) is the score and its highest survive;
- ``synflow`` (Tanaka et al. 2020): data-free. Every parameter replaced by its absolute value,
  an all-ones input, R the sum of the outputs, score |dR/dw * w|; applied iteratively over
  ``score_iterations`` steps on an exponential density schedule, re-scoring the masked
  network each time (the signs do not enter the scores; the scored model is a copy).

BatchNorm: SNIP and GraSP score the model in train mode, so the norm layers use the
statistics of each scoring batch (as the reference implementations do); SynFlow scores it in
eval mode (the running statistics at initialisation, mean 0 and variance 1), in float64 so
that R of a deep network does not overflow. Dropout is off for all three. Scores are computed
on a fresh model built by ``make_model`` with the given weights loaded and the mask applied:
the round's model is never touched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lth.data.batches import BatchIterator
from lth.errors import ConfigError
from lth.pruning.mask import Mask, apply_mask
from lth.pruning.prune import (
    DATA_SCORES,
    MODEL_SCORES,
    check_strategy,
    groups,
    mask_from_scores,
    pooled_densities,
    weight_scores,
)

GRASP_TEMPERATURE = 200.0  # the reference implementation's logit temperature
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


def _no_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()


def snip_scores(model: nn.Module, names: Iterable[str],
                batches: Batches) -> dict[str, torch.Tensor]:
    """|dL/dw * w| of each named parameter, L summed over ``batches``; ``model`` in place."""
    params = dict(model.named_parameters())
    model.train()
    _no_dropout(model)
    model.zero_grad()
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
    return {n: (params[n].grad * params[n]).detach().abs().float().cpu() for n in names}


def grasp_scores(model: nn.Module, names: Iterable[str], batches: Batches,
                 temperature: float = GRASP_TEMPERATURE) -> dict[str, torch.Tensor]:
    """w * (H g) of each named parameter (GraSP's -S: higher survives), H and g of the loss
    of logits / ``temperature`` summed over ``batches``; ``model`` in place."""
    batches = list(batches)
    params = [p for p in model.parameters() if p.requires_grad]
    model.train()
    _no_dropout(model)
    stopped = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(x) / temperature, y), params,
                                    allow_unused=True)
        stopped = [s + (g if g is not None else 0) for s, g in zip(stopped, grads)]
    model.zero_grad()
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(x) / temperature, y), params,
                                    create_graph=True, allow_unused=True)
        dot = sum((s * g).sum() for s, g in zip(stopped, grads) if g is not None)
        dot.backward()  # d(g_stopped . g)/dw = H g_stopped
    by_name = dict(model.named_parameters())
    return {n: (by_name[n].grad * by_name[n]).detach().float().cpu() for n in names}


def synflow_scores(model: nn.Module, names: Iterable[str],
                   input_shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """|dR/dw * w| with R = sum of ``model``'s outputs on an all-ones input, every parameter
    replaced by its absolute value (``model`` in place: call it on a copy)."""
    model.double().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    model.zero_grad()
    device = next(model.parameters()).device
    model(torch.ones((1, *input_shape), dtype=torch.float64, device=device)).sum().backward()
    params = dict(model.named_parameters())
    return {n: (params[n].grad * params[n]).detach().abs().float().cpu() for n in names}


def exponential_steps(mask: Mask, densities: dict[str, float], scope: str,
                      iterations: int, pool_bias: bool = False) -> list[dict[str, float]]:
    """Per-tensor target densities of each of ``iterations`` steps from ``mask``'s density
    (per group) to ``densities``, geometric in between; the last step is ``densities``
    (with ``pool_bias`` each bias at its weight's target, ranked with it)."""
    steps = []
    targets = {n: densities[n] for n in mask}
    if pool_bias:
        targets = pooled_densities(targets)
    grouped = groups(targets, scope, pool_bias)
    for j in range(1, iterations + 1):
        step = {}
        for names in grouped:
            start = sum(int(mask[n].sum()) for n in names) / sum(mask[n].numel() for n in names)
            end = targets[names[0]]
            value = end if j == iterations else start * (end / start) ** (j / iterations)
            step.update({n: value for n in names})
        steps.append(step)
    return steps


def synflow_mask(model: nn.Module, mask: Mask, densities: dict[str, float], scope: str,
                 iterations: int, input_shape: tuple[int, ...],
                 on_step: Callable[[Mask], None] | None = None, pool_bias: bool = False) -> Mask:
    """Iterative SynFlow: ``iterations`` rounds of scoring the masked ``model`` (in place: a
    copy) and pruning to the next density of the exponential schedule (``on_step`` sees each
    step's mask). Masks only shrink."""
    for step in exponential_steps(mask, densities, scope, iterations, pool_bias):
        apply_mask(model, mask)
        scores = synflow_scores(model, list(mask), input_shape)
        mask = mask_from_scores(scores, mask, scope, step, pool_bias)
        if on_step is not None:
            on_step(mask)
    return mask


def check_score_settings(score_batches: int, score_iterations: int) -> None:
    """ConfigError naming the key unless both counts are at least 1."""
    if score_batches < 1:
        raise ConfigError(f"prune.score_batches={score_batches} must be at least 1: the "
                          "training batches SNIP and GraSP are scored on")
    if score_iterations < 1:
        raise ConfigError(f"prune.score_iterations={score_iterations} must be at least 1: "
                          "the scoring steps of iterative SynFlow (e.g. 100)")


@dataclass
class ScorePruner:
    """``prune_mask`` for every strategy, those that score the model on data included.

    ``x``, ``y``: the training split the data-dependent scores draw ``score_batches``
    batches of ``batch_size`` from (the order seeded by the pruning seed of the round).
    """

    make_model: Callable[[], nn.Module]
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    score_batches: int = 1
    score_iterations: int = 100
    pool_bias: bool = False  # a layer's bias ranked with its weights (prune.pool_bias)

    def __post_init__(self) -> None:
        check_score_settings(self.score_batches, self.score_iterations)

    def check(self, strategy: str) -> None:
        """ConfigError if ``strategy`` needs training batches this pruner lacks."""
        kind, _ = check_strategy(strategy)
        if kind in DATA_SCORES and self.x.shape[0] < self.batch_size:
            raise ConfigError(f"prune.strategy={strategy} scores training batches but the "
                              f"dataset has {self.x.shape[0]} training samples: use a data-free "
                              "strategy (synflow, magnitude_init, random) or a training split")

    def _model(self, weights: dict[str, torch.Tensor], mask: Mask) -> nn.Module:
        model = self.make_model().to(self.x.device)
        model.load_state_dict(weights)
        apply_mask(model, mask)
        return model

    def _batches(self, seed: int) -> Batches:
        it = BatchIterator(self.x, self.y, self.batch_size, seed)
        return [it.batch(i) for i in range(self.score_batches)]

    def scores(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
               initial: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The scores ``strategy`` ranks by (SynFlow's: one step, on the masked model)."""
        kind, _ = check_strategy(strategy)
        if kind not in MODEL_SCORES:
            return weight_scores(weights, mask, strategy=strategy, seed=seed, initial=initial)
        self.check(strategy)
        model = self._model(weights, mask)
        if kind == "synflow":
            return synflow_scores(model, list(mask), tuple(self.x.shape[1:]))
        score = snip_scores if kind == "snip" else grasp_scores
        return score(model, list(mask), self._batches(seed))

    def __call__(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str,
                 seed: int, densities: dict[str, float],
                 initial: dict[str, torch.Tensor] | None = None) -> Mask:
        """``prune_mask``: a smaller mask, at exactly the target densities."""
        kind, scope = check_strategy(strategy)
        if kind == "synflow":
            model = self._model(weights, mask)
            return synflow_mask(model, mask, densities, scope, self.score_iterations,
                                tuple(self.x.shape[1:]), pool_bias=self.pool_bias)
        scores = self.scores(weights, mask, strategy=strategy, seed=seed, initial=initial)
        return mask_from_scores(scores, mask, scope, densities, self.pool_bias)
