"""Scores that read the model: SNIP, GraSP, SynFlow (pruning at initialisation).

- ``snip`` (Lee et al. 2019): |dL/dw * w|, the loss L summed over ``score_batches`` training
  batches (cross-entropy, mean over each batch);
- ``grasp`` (Wang et al. 2020): GraSP removes the weights with the highest S = -w * (H g),
  g = dL/dw and H g by double backprop, logits divided by a temperature of 200 as in the
  reference implementation; so here w * (H g) is the score and its highest survive. g and H g
  are taken over the pruned weights only, the mask's tensors, as the reference
  implementations do (Synaptic-Flow's ``GraSP``, the official code): biases and BatchNorm
  scales outside the mask do not enter g, and g is zero at pruned weights;
- ``synflow`` (Tanaka et al. 2020): data-free. Every parameter replaced by its absolute value,
  an all-ones input, R the sum of the outputs, score |dR/dw * w|; applied iteratively over
  ``score_iterations`` steps on an exponential density schedule, re-scoring the masked
  network each time (the signs do not enter the scores; the scored model is a copy).

BatchNorm: SNIP and GraSP score the model in the mode ``prune.score_mode`` asks for
(``scoring_mode``): ``train`` normalises with each scoring batch's statistics, ``eval`` with
the running ones. Implementations differ here: Synaptic-Flow scores in eval mode unless asked
otherwise, the official GraSP code in train mode. SynFlow scores in eval mode (the running
statistics at initialisation, mean 0 and variance 1), in float64 so that R of a deep network
does not overflow. Dropout is off for all three. Each ``(ScoreInputs) -> scores`` function
here is an entry of ``lth.pruning.registry``; the pruner builds the scratch model they score.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import Mask
from lth.pruning.scores import Batches, ScoreInputs

GRASP_TEMPERATURE = 200.0  # the reference implementation's logit temperature
SCORE_MODES = ("train", "eval")


def check_score_settings(score_batches: int, score_iterations: int,
                         score_mode: str = "train") -> None:
    """ConfigError naming the key unless both counts are at least 1 and the mode is known."""
    if score_batches < 1:
        raise ConfigError(f"prune.score_batches={score_batches} must be at least 1: the "
                          "training batches SNIP and GraSP are scored on")
    if score_iterations < 1:
        raise ConfigError(f"prune.score_iterations={score_iterations} must be at least 1: "
                          "the scoring steps of iterative SynFlow (e.g. 100)")
    if score_mode not in SCORE_MODES:
        raise ConfigError(f"prune.score_mode={score_mode!r} is unknown; choose one of "
                          f"{', '.join(SCORE_MODES)}")


def scoring_mode(model: nn.Module, mode: str) -> nn.Module:
    """``model`` in ``mode`` (train: BatchNorm uses each batch's statistics; eval: the
    running ones), dropout off in both."""
    model.train(mode == "train")
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    return model


def snip_scores(model: nn.Module, names: Iterable[str],
                batches: Batches) -> dict[str, torch.Tensor]:
    """|dL/dw * w| of each named parameter, L summed over ``batches``; ``model`` in place,
    in the mode it is in."""
    params = dict(model.named_parameters())
    model.zero_grad()
    for x, y in batches:
        F.cross_entropy(model(x), y).backward()
    return {n: (params[n].grad * params[n]).detach().abs().float().cpu() for n in names}


def grasp_scores(model: nn.Module, names: Iterable[str], batches: Batches,
                 temperature: float = GRASP_TEMPERATURE,
                 mask: Mask | None = None) -> dict[str, torch.Tensor]:
    """w * (H g) of each named parameter (GraSP's -S: higher survives), H and g of the loss
    of logits / ``temperature`` summed over ``batches``, taken over the named parameters
    only (g zero where ``mask`` prunes); ``model`` in place, in the mode it is in."""
    batches, names = list(batches), list(names)
    by_name = dict(model.named_parameters())
    params = [by_name[n] for n in names]
    stopped = [torch.zeros_like(p) for p in params]
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(x) / temperature, y), params,
                                    allow_unused=True)
        stopped = [s + (g if g is not None else 0) for s, g in zip(stopped, grads)]
    if mask is not None:  # the reference's g is dL/d(w * m): zero at pruned weights
        stopped = [s * mask[n].to(s.device) for s, n in zip(stopped, names)]
    model.zero_grad()
    for x, y in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(x) / temperature, y), params,
                                    create_graph=True, allow_unused=True)
        dot = sum((s * g).sum() for s, g in zip(stopped, grads) if g is not None)
        dot.backward()  # d(g_stopped . g)/dw = H g_stopped
    return {n: (p.grad * p if p.grad is not None else torch.zeros_like(p)).detach().float().cpu()
            for n, p in zip(names, params)}


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


def _model(inputs: ScoreInputs) -> nn.Module:
    if inputs.model is None:
        raise ValueError("this score reads the model: score it with a lth.pruning.Pruner")
    return inputs.model


def snip(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """SNIP's scores of the mask's tensors on the inputs' batches."""
    return snip_scores(_model(inputs), list(inputs.mask), inputs.batches or [])


def grasp(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """GraSP's scores (higher survives) of the mask's tensors on the inputs' batches."""
    return grasp_scores(_model(inputs), list(inputs.mask), inputs.batches or [],
                        mask=inputs.mask)


def synflow(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """One step of SynFlow's scores of the mask's tensors (the model turned to |w|, float64)."""
    return synflow_scores(_model(inputs), list(inputs.mask), inputs.input_shape)
