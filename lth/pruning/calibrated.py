"""Calibrated one-shot pruning, layer by layer: Wanda and SparseGPT; and N:M masks.

Both read a calibration set: ``prune.calibration_samples`` training samples (the training
split only), drawn by the round's pruning seed (``calibration_set``). The prunable
``nn.Linear`` layers are pruned one at a time in the order the forward pass first uses them;
each is calibrated on its inputs in the model whose earlier layers are already pruned (and,
for SparseGPT, updated), in eval mode:

- **Wanda** (Sun et al. 2024; locuslab/wanda ``prune_wanda``): score |W_ij|·‖X_j‖₂, X_j the
  j-th input feature over every calibration token, compared within each output row; the
  weights are not changed. ‖X_j‖² is accumulated as the reference's ``scaler_row`` (the sum of
  squares over tokens divided by the number of samples), which ranks the same.
- **SparseGPT** (Frantar & Alistarh 2023; IST-DASLab/sparsegpt ``SparseGPT.fasterprune``):
  H = 2/N Σ x xᵀ over the N samples' tokens; dampening 1% of the mean diagonal; columns
  processed in blocks of 128; within a block the mask is chosen by w²/[H⁻¹]_jj² (adaptive mask
  selection: the block's ``int(numel·sparsity)``-th smallest value and every value at or below
  it are pruned, as in the reference), and each pruned weight's error is spread over the
  later columns through the Cholesky factor of H⁻¹. The kept weights change: the result
  carries them (``Pruned.weights``).

The references prune a whole transformer block's sublayers on the block's inputs at once; here
each layer sees the outputs of every earlier pruned layer, the order the SparseGPT paper
describes. **N:M** (``prune.nm="2:4"``): in every group of M consecutive weights along the input
dimension, the N best by the criterion's score are kept (Wanda and magnitude: their scores;
SparseGPT: its w²/[H⁻¹]_jj² at the group's first column, as the reference's ``prunen:prunem``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import Mask
from lth.pruning.scopes import keep_rows

BLOCK_SIZE = 128  # SparseGPT's column block, as in the reference
PERCDAMP = 0.01  # SparseGPT's dampening: this share of the mean Hessian diagonal


@dataclass(frozen=True)
class Pruned:
    """A pruner's result: the new mask and, where the criterion changes them (SparseGPT), the
    updated weights of the pruned tensors (by mask name)."""

    mask: Mask
    weights: dict[str, torch.Tensor] | None = None


def parse_nm(text: str | None) -> tuple[int, int] | None:
    """``"2:4"`` -> (2, 4) (N kept of every M); ``""`` or None -> None; ConfigError otherwise."""
    if not text:
        return None
    try:
        n, m = (int(v) for v in str(text).split(":"))
    except ValueError:
        raise ConfigError(f"prune.nm={text!r} is not N:M: write it as '2:4' (N kept of every "
                          "M weights along the input dimension)") from None
    if not 0 < n < m:
        raise ConfigError(f"prune.nm={text}: N must be in 1..M-1 (N kept of every M), e.g. "
                          "'2:4' or '4:8'")
    return n, m


def check_nm(nm: tuple[int, int], shapes: dict[str, torch.Size]) -> None:
    """ConfigError unless M divides the input dimension of every tensor to prune (a bias,
    having none, cannot be N:M)."""
    for name, shape in shapes.items():
        width = 0 if len(shape) < 2 else int(torch.Size(shape[1:]).numel())
        if width == 0 or width % nm[1]:
            hint = "set prune.prune_bias=false" if len(shape) < 2 else \
                f"choose an M that divides {width}"
            raise ConfigError(f"prune.nm={nm[0]}:{nm[1]}: {name} has {width or 'no'} inputs "
                              f"per output, not a multiple of M={nm[1]}: {hint}")


def nm_keep(scores: torch.Tensor, alive: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """The N highest ``scores`` [rows, ...] of every M consecutive entries along the input
    dimension, among ``alive`` (a group with fewer alive keeps fewer)."""
    rows = scores.shape[0]
    s = torch.where(alive, scores.float(), torch.tensor(-torch.inf)).reshape(rows, -1, m)
    kept = torch.zeros_like(s, dtype=torch.bool)
    kept.scatter_(2, torch.topk(s, n, dim=2).indices, True)
    return kept.reshape(alive.shape) & alive


def nm_mask(scores: dict[str, torch.Tensor], mask: Mask, densities: dict[str, float],
            nm: tuple[int, int]) -> Mask:
    """N:M over every tensor whose target density is below 1; the others keep their mask."""
    return {n: nm_keep(scores[n], mask[n].cpu(), *nm).to(mask[n].device)
            if densities[n] < 1.0 else mask[n] for n in mask}


def check_calibration(samples: int, n: int) -> None:
    """ConfigError unless ``samples`` calibration samples can be drawn from ``n``."""
    if not 0 < samples <= n:
        raise ConfigError(f"prune.calibration_samples={samples} must be in 1..{n} (the "
                          "training set's size): calibration samples come from it")


def calibration_set(x: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """``samples`` training samples of ``x`` [N, ...], drawn without replacement by ``seed``;
    ConfigError if the training split has fewer."""
    n = x.shape[0]
    check_calibration(samples, n)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples]
    return x[order.to(x.device)]


def linear_layers(model: nn.Module, names: list[str], strategy: str) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layer of each weight name; ConfigError for a bias or another type."""
    modules, out = dict(model.named_modules()), {}
    for name in names:
        owner, _, leaf = name.rpartition(".")
        layer = modules.get(owner)
        if leaf != "weight" or not isinstance(layer, nn.Linear):
            kind = "a bias" if leaf == "bias" else f"a {type(layer).__name__}"
            raise ConfigError(f"prune.strategy={strategy} prunes nn.Linear weights only, and "
                              f"{name} is {kind}: use magnitude_row (or prune.prune_bias="
                              "false) for this model")
        out[name] = layer
    return out


def ordered_layers(model: nn.Module, mask: Mask, example: torch.Tensor,
                   strategy: str) -> list[tuple[str, nn.Linear]]:
    """The masked ``nn.Linear`` layers in the order the forward pass on ``example`` first uses
    them (any never used last); ConfigError for a bias or a layer of another type."""
    layers = {layer: name for name, layer in linear_layers(model, list(mask), strategy).items()}
    seen: dict[nn.Module, None] = {}
    hooks = [m.register_forward_pre_hook(lambda mod, _: seen.setdefault(mod)) for m in layers]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    order = [*seen, *(m for m in layers if m not in seen)]
    return [(layers[m], m) for m in order]  # type: ignore[misc]


@torch.no_grad()
def layer_inputs(model: nn.Module, layer: nn.Module, x: torch.Tensor,
                 batch: int = 256) -> torch.Tensor:
    """What ``layer`` receives when ``model`` runs on ``x``: [tokens, in_features], float32."""
    got: list[torch.Tensor] = []
    hook = layer.register_forward_pre_hook(
        lambda _, args: got.append(args[0].detach().reshape(-1, args[0].shape[-1]).float()))
    try:
        for i in range(0, x.shape[0], batch):
            model(x[i:i + batch])
    finally:
        hook.remove()
    return torch.cat(got)


def wanda_scores(weight: torch.Tensor, inputs: torch.Tensor, samples: int) -> torch.Tensor:
    """|W_ij| · sqrt(Σ_tokens x_j² / samples): Wanda's metric, ``inputs`` [tokens, in]."""
    scaler_row = (inputs.float() ** 2).sum(0) / samples
    return weight.detach().abs().float() * torch.sqrt(scaler_row)[None, :]


def hessian(inputs: torch.Tensor, samples: int) -> torch.Tensor:
    """SparseGPT's H = 2/N Σ x xᵀ over ``inputs`` [tokens, in] of N ``samples``."""
    x = inputs.float()
    return 2.0 / samples * (x.T @ x)


def _inverse_factor(h: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor of (H + damp·I)⁻¹, damp 1% of H's mean diagonal."""
    h = h + PERCDAMP * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def _block_mask(w: torch.Tensor, d: torch.Tensor, sparsity: float) -> torch.Tensor:
    """The reference's adaptive mask of a column block: w²/d² at or below its
    ``int(numel·sparsity)``-th smallest value is pruned (True = pruned)."""
    tmp = w ** 2 / d[None, :] ** 2
    return tmp <= torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]


def sparsegpt_layer(weight: torch.Tensor, h: torch.Tensor, density: float,
                    nm: tuple[int, int] | None = None, alive: torch.Tensor | None = None,
                    block: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT on one layer: (updated weight [out, in], kept [out, in]) from ``weight`` and
    the Hessian ``h`` [in, in]; ``alive``: entries pruned before stay pruned."""
    w, h = weight.detach().float().clone(), h.clone()
    dead = torch.diag(h) == 0  # inputs that are always zero: their weights do nothing
    h[dead, dead] = 1
    w[:, dead] = 0
    hinv, cols = _inverse_factor(h), w.shape[1]
    pruned = torch.zeros_like(w, dtype=torch.bool)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1, hinv1 = w[:, i1:i2].clone(), hinv[i1:i2, i1:i2]
        q1, err1, d = torch.zeros_like(w1), torch.zeros_like(w1), torch.diag(hinv1)
        mask1 = _block_mask(w1, d, 1.0 - density) if nm is None else \
            torch.zeros_like(w1, dtype=torch.bool)
        if alive is not None:
            mask1 |= ~alive[:, i1:i2].cpu()
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                tmp = w1[:, i:i + nm[1]] ** 2 / d[None, i:i + nm[1]] ** 2
                mask1.scatter_(1, i + torch.topk(tmp, nm[1] - nm[0], dim=1,
                                                 largest=False).indices, True)
            q = torch.where(mask1[:, i], 0.0, w1[:, i])
            q1[:, i] = q
            err1[:, i] = (w1[:, i] - q) / hinv1[i, i]
            w1[:, i:] -= err1[:, i:i + 1] @ hinv1[i:i + 1, i:]
        w[:, i1:i2], pruned[:, i1:i2] = q1, mask1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w.to(weight.dtype), ~pruned


def _wanda(weight: torch.Tensor, inputs: torch.Tensor, samples: int, alive: torch.Tensor,
           density: float, nm: tuple[int, int] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor | None]:
    scores = wanda_scores(weight, inputs, samples)
    if nm is not None:
        return nm_keep(scores, alive.cpu(), *nm), None
    return keep_rows({"w": scores}, {"w": alive.cpu()}, ["w"], density)["w"], None


def _sparsegpt(weight: torch.Tensor, inputs: torch.Tensor, samples: int, alive: torch.Tensor,
               density: float, nm: tuple[int, int] | None = None
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
    updated, kept = sparsegpt_layer(weight.cpu(), hessian(inputs.cpu(), samples), density, nm,
                                    alive.cpu())
    return kept, updated


SOLVERS = {"wanda": _wanda, "sparsegpt": _sparsegpt}


@torch.no_grad()
def prune_sequential(method: str, model: nn.Module, mask: Mask, densities: dict[str, float],
                     calibration: torch.Tensor, nm: tuple[int, int] | None = None,
                     strategy: str | None = None) -> Pruned:
    """Prune ``model`` (holding the weights, ``mask`` applied; changed in place) layer by
    layer with ``method`` (wanda | sparsegpt), each layer calibrated on ``calibration``
    [N, *input_shape] through the already-pruned layers before it."""
    model.eval()
    solve = SOLVERS[method]
    new, updated = dict(mask), {}
    for name, layer in ordered_layers(model, mask, calibration[:1], strategy or method):
        if densities[name] >= 1.0:
            continue
        inputs = layer_inputs(model, layer, calibration)
        kept, weight = solve(layer.weight, inputs, calibration.shape[0], mask[name],
                             densities[name], nm)
        new[name] = kept.to(mask[name].device) & mask[name]
        if weight is not None:
            layer.weight.copy_(weight.to(layer.weight.device))
        layer.weight.mul_(new[name])
        if weight is not None:
            updated[name] = layer.weight.detach().clone()
    return Pruned(new, updated or None)


def no_scores(inputs: object) -> dict[str, torch.Tensor]:
    """Wanda and SparseGPT prune layer by layer: they give no scores per weight to rank by."""
    raise ConfigError("this strategy prunes layer by layer and gives no scores per weight "
                      "(the invert control needs them): use magnitude_row for invert")
