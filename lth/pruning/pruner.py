"""The pruner: ``prune_mask``'s signature for every score of the registry.

``Pruner(weights, mask, *, strategy, seed, densities, initial) -> Mask`` looks the strategy up
(``lth.pruning.registry``), gives its score what the entry ``needs`` (a scratch model holding
the weights with the mask applied, training batches drawn with the round's pruning seed),
and keeps the best of each group of the strategy's scope, with the same rounding rule for
every score. Scores flagged ``iterative`` (SynFlow) are re-scored on the masked model at each
step of an exponential density schedule. ``Pruner.scores`` gives the scores it ranks by (the
``invert`` control's). The round's model is never touched. Channel pruning is the subclass
``lth.pruning.structured.ChannelPruner``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
from torch import nn

from lth.data.batches import BatchIterator
from lth.errors import ConfigError
from lth.pruning.calibrated import (
    Pruned,
    calibration_set,
    check_calibration,
    check_nm,
    linear_layers,
    nm_mask,
    prune_sequential,
)
from lth.pruning.init_scores import check_score_settings, scoring_mode
from lth.pruning.mask import Mask, apply_mask
from lth.pruning.prune import prune_mask
from lth.pruning.registry import Score, check_strategy, get_score
from lth.pruning.scopes import groups, mask_from_scores, pooled_densities
from lth.pruning.scores import ScoreInputs, weight_inputs, weight_scores

Scores = dict[str, torch.Tensor]


@dataclass(frozen=True)
class PrunerSettings:
    """The ``prune.*`` keys a pruner reads besides the strategy (checked here)."""

    score_batches: int = 1  # training batches the data-dependent scores sum over
    score_iterations: int = 100  # steps of an iterative score (SynFlow)
    score_mode: str = "train"  # train | eval: the scratch model's mode on training batches
    pool_bias: bool = False  # a layer's bias ranked with its weights (prune.pool_bias)
    channel_score: str = "l1"  # channel granularity: the score of the magnitude strategies
    calibration_samples: int = 128  # training samples Wanda and SparseGPT calibrate on
    nm: tuple[int, int] | None = None  # N kept of every M along the input dimension
    channel_round_to: int = 1  # channel granularity: kept counts rounded to multiples of it

    def __post_init__(self) -> None:
        check_score_settings(self.score_batches, self.score_iterations, self.score_mode)
        if self.channel_round_to < 1:
            raise ConfigError(f"prune.channel_round_to={self.channel_round_to} must be >= 1 "
                              "(1: keep the count the scores give; 8 or 16: multiples of it)")


@dataclass(eq=False)  # pruners hold tensors: compared by identity
class Pruner:
    """Prunes weights by any strategy of the registry.

    ``x`` [N, *input_shape], ``y`` [N]: the training split the data-dependent scores draw
    ``score_batches`` batches of ``batch_size`` from (the order seeded by the round's pruning
    seed); ``make_model`` builds the scratch model the model-reading scores score.
    """

    make_model: Callable[[], nn.Module]
    x: torch.Tensor
    y: torch.Tensor
    batch_size: int
    settings: PrunerSettings = field(default_factory=PrunerSettings)
    granularity: ClassVar[str] = "weight"

    def entry(self, strategy: str) -> tuple[Score, str]:
        """The score and scope ``strategy`` ranks by; ConfigError naming the choices."""
        kind, scope = check_strategy(strategy)
        return get_score(kind), scope

    def check(self, strategy: str) -> None:
        """ConfigError if ``strategy`` is unknown or needs training batches this pruner lacks."""
        score, _ = self.entry(strategy)
        if score.sequential is not None:
            check_calibration(self.settings.calibration_samples, self.x.shape[0])
        if self.settings.nm is not None and score.iterative:
            raise ConfigError(f"prune.nm with prune.strategy={strategy}: an iterative score "
                              "has no N:M version; use magnitude_row, wanda or sparsegpt")
        if "batches" in score.needs and self.x.shape[0] < self.batch_size:
            raise ConfigError(f"prune.strategy={strategy} scores training batches but the "
                              f"dataset has {self.x.shape[0]} training samples: use a data-free "
                              "strategy (synflow, magnitude_init, random) or a training split")

    def check_tensors(self, strategy: str, model: nn.Module, names: list[str]) -> None:
        """ConfigError (before any training) if ``prune.nm`` does not fit the tensors ``names``
        of ``model`` that will be pruned, or a calibrated strategy cannot prune one of them."""
        if self.settings.nm is not None:
            params = dict(model.named_parameters())
            check_nm(self.settings.nm, {n: params[n].shape for n in names})
        if self.entry(strategy)[0].sequential is not None:
            linear_layers(model, names, strategy)

    def inputs(self, score: Score, weights: dict[str, torch.Tensor], mask: Mask, seed: int,
               initial: dict[str, torch.Tensor] | None) -> ScoreInputs:
        """What ``score`` reads of ``weights`` under ``mask``: the scratch model and batches
        only where it needs them."""
        inputs = replace(weight_inputs(score, weights, mask, seed, initial),
                         input_shape=tuple(self.x.shape[1:]))
        if "model" not in score.needs:
            return inputs
        model = self.make_model().to(self.x.device)
        model.load_state_dict(weights)
        apply_mask(model, mask)
        if "batches" not in score.needs:
            return replace(inputs, model=model)
        it = BatchIterator(self.x, self.y, self.batch_size, seed)
        batches = [it.batch(i) for i in range(self.settings.score_batches)]
        return replace(inputs, model=scoring_mode(model, self.settings.score_mode),
                       batches=batches)

    def scores(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
               initial: dict[str, torch.Tensor] | None = None) -> Scores:
        """The scores ``strategy`` ranks ``mask``'s tensors by (an iterative score's first
        step, on the masked model)."""
        self.check(strategy)
        score, _ = self.entry(strategy)
        return score.fn(self.inputs(score, weights, mask, seed, initial))

    def __call__(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str,
                 seed: int, densities: dict[str, float],
                 initial: dict[str, torch.Tensor] | None = None) -> Mask:
        """``prune_mask``: a smaller mask, at exactly the target densities (N:M with
        ``settings.nm``: every tensor whose target is below 1)."""
        self.check(strategy)
        score, scope = self.entry(strategy)
        if score.sequential is not None:
            return self.solve(weights, mask, strategy=strategy, seed=seed,
                              densities=densities, initial=initial).mask
        inputs = self.inputs(score, weights, mask, seed, initial)
        pool = self.settings.pool_bias
        if score.iterative:
            return iterative_mask(score.fn, inputs, densities, scope,
                                  self.settings.score_iterations, pool)
        if self.settings.nm is not None:
            return nm_mask(score.fn(inputs), mask, densities, self.settings.nm)
        return mask_from_scores(score.fn(inputs), mask, scope, densities, pool)

    def solve(self, weights: dict[str, torch.Tensor], mask: Mask, *, strategy: str, seed: int,
              densities: dict[str, float],
              initial: dict[str, torch.Tensor] | None = None) -> Pruned:
        """The new mask and, for a criterion that updates the kept weights (SparseGPT), the
        updated weights; calibrated criteria draw ``calibration_samples`` training samples
        with ``seed``."""
        self.check(strategy)
        score, _ = self.entry(strategy)
        if score.sequential is None:
            return Pruned(self(weights, mask, strategy=strategy, seed=seed,
                               densities=densities, initial=initial))
        model = self.make_model().to(self.x.device)
        model.load_state_dict(weights)
        apply_mask(model, mask)
        calibration = calibration_set(self.x, self.settings.calibration_samples, seed)
        return prune_sequential(score.sequential, model, mask, densities, calibration,
                                self.settings.nm, strategy)


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


def iterative_mask(compute: Callable[[ScoreInputs], Scores], inputs: ScoreInputs,
                   densities: dict[str, float], scope: str, iterations: int,
                   pool_bias: bool = False,
                   on_step: Callable[[Mask], None] | None = None) -> Mask:
    """``iterations`` rounds of scoring (the scratch model, if any, masked anew each step)
    and pruning to the next density of the exponential schedule (``on_step`` sees each
    step's mask). Masks only shrink."""
    mask = inputs.mask
    for step in exponential_steps(mask, densities, scope, iterations, pool_bias):
        if inputs.model is not None:
            apply_mask(inputs.model, mask)
        scores = compute(replace(inputs, mask=mask))
        mask = mask_from_scores(scores, mask, scope, step, pool_bias)
        if on_step is not None:
            on_step(mask)
    return mask


def scores_of(pruner: Callable[..., Mask]) -> Callable[..., Any]:
    """The function giving the scores ``pruner`` ranks by: its ``scores``, or the weight
    scores for ``prune_mask``; ConfigError if it has none."""
    if pruner is prune_mask:
        return weight_scores
    scores = getattr(pruner, "scores", None)
    if scores is None:
        raise ConfigError("this pruner gives no scores per weight: the invert control needs "
                          "them (prune.granularity=weight)")
    return scores
