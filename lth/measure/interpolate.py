"""Linear mode connectivity (Frankle et al. 2020): the error along ``α·W1 + (1−α)·W2``.

Two copies of a network trained from one spawn point with different SGD noise are
interpolated at evenly spaced α; the instability is the error barrier
``max_α E(α) − mean(E(0), E(1))`` in percentage points. Masked weights are zero in both
copies, so they are zero all along the path (the mask is applied again to make it a fact, not
an assumption). Networks with BatchNorm get their running statistics recomputed for each
interpolated network on training batches (``bn_batches``): averaging two networks' statistics
does not give the statistics of the averaged network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.train.evaluate import evaluate

State = Mapping[str, torch.Tensor]
Split = tuple[torch.Tensor, torch.Tensor]  # inputs [N, ...], labels [N]


def alpha_grid(points: int) -> list[float]:
    """``points`` evenly spaced α in [0, 1], both ends included; ConfigError if < 2."""
    if points < 2:
        raise ConfigError(f"analysis.alpha_points={points} must be at least 2 (both ends of "
                          "the path; the paper uses 30)")
    return [i / (points - 1) for i in range(points)]


def interpolate(w1: State, w2: State, alpha: float) -> dict[str, torch.Tensor]:
    """``α·w1 + (1−α)·w2`` for floating tensors; integer ones (BN batch counts) from ``w1``."""
    out = {}
    for name, a in w1.items():
        b = w2[name]
        out[name] = torch.lerp(b, a, alpha) if a.is_floating_point() else a.clone()
    return out


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has BatchNorm layers that track running statistics."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
               for m in model.modules())


@torch.no_grad()
def reset_bn_stats(model: nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Recompute every BatchNorm's running mean and variance as the plain average over
    ``batches`` (forward passes in train mode; no weight changes)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    was_training = model.training
    model.train()
    for x in batches:
        model(x)
    model.train(was_training)
    for m, momentum in zip(norms, saved):
        m.momentum = momentum


def error_of(model: nn.Module, split: Split) -> float:
    """Classification error of ``model`` on ``split``, in percent."""
    _, acc = evaluate(model, *split)
    return 100.0 * (1.0 - acc)


def barrier(errors: Sequence[float]) -> float:
    """The error barrier ``max E(α) − (E(0) + E(1)) / 2`` of a curve ordered by α."""
    if len(errors) < 2:
        raise ValueError("a curve needs at least its two ends")
    return max(errors) - (errors[0] + errors[-1]) / 2


@dataclass(frozen=True)
class Curve:
    """Errors (percent) along the path; ``alphas[i]`` weighs the first copy."""

    alphas: list[float]
    test_err: list[float]
    train_err: list[float]
    bn_reset: bool

    @property
    def barrier_test(self) -> float:
        return barrier(self.test_err)

    @property
    def barrier_train(self) -> float:
        return barrier(self.train_err)


def error_curve(model: nn.Module, w1: State, w2: State, alphas: Sequence[float], *,
                test: Split, train: Split, mask: Mapping[str, torch.Tensor] | None = None,
                bn_batches: Sequence[torch.Tensor] | None = None) -> Curve:
    """Test and train error of ``model`` loaded with each interpolated state.

    ``bn_batches``: training inputs to recompute BatchNorm statistics on (None: use the
    interpolated running statistics as they are). ``model`` is left at the last α.
    """
    test_err, train_err = [], []
    for alpha in alphas:
        model.load_state_dict(interpolate(w1, w2, alpha))
        if mask:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, m in mask.items():
                    params[name].mul_(m.to(params[name].device, params[name].dtype))
        if bn_batches is not None:
            reset_bn_stats(model, bn_batches)
        test_err.append(error_of(model, test))
        train_err.append(error_of(model, train))
    return Curve(list(alphas), test_err, train_err, bn_batches is not None)
