"""Masks: which weights of a model survive.

A mask is a plain ``dict[str, torch.BoolTensor]`` from parameter name to a bool tensor of the
parameter's shape (True = kept). Only prunable parameters appear in it.
"""

from __future__ import annotations

import torch
from torch import nn

from lth.errors import CheckpointError

Mask = dict[str, torch.Tensor]

# The one definition of a prunable layer: its ``weight`` is prunable (biases only if asked).
# The models' init (lth.models.base), channel groups (lth.pruning.channels) and per-type
# rates (conv_names) all use these.
CONV_LAYERS: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
PRUNABLE_LAYERS: tuple[type[nn.Module], ...] = (*CONV_LAYERS, nn.Linear)


def prunable_names(model: nn.Module, include_bias: bool = False) -> list[str]:
    """Names of the prunable parameters: conv and linear weights (biases only if asked).

    Norm layers are never pruned: their scales are not connections.
    """
    names = []
    for mod_name, module in model.named_modules():
        if isinstance(module, PRUNABLE_LAYERS):
            prefix = f"{mod_name}." if mod_name else ""
            names.append(prefix + "weight")
            if include_bias and module.bias is not None:
                names.append(prefix + "bias")
    return names


def output_layer_name(model: nn.Module) -> str:
    """The weight of the last ``nn.Linear`` in module order: the classifier.

    Frankle & Carbin prune it at a separate (half) rate.
    """
    last = None
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = f"{mod_name}.weight" if mod_name else "weight"
    if last is None:
        raise ValueError("model has no nn.Linear output layer")
    return last


def conv_names(model: nn.Module) -> set[str]:
    """Weights of convolutional layers (they can get their own pruning rate)."""
    return {
        f"{n}.weight" if n else "weight"
        for n, m in model.named_modules()
        if isinstance(m, CONV_LAYERS)
    }


def full_mask(model: nn.Module, include_bias: bool = False) -> Mask:
    """The dense mask: every prunable weight kept."""
    params = dict(model.named_parameters())
    return {
        n: torch.ones_like(params[n], dtype=torch.bool)
        for n in prunable_names(model, include_bias)
    }


def remaining(mask: Mask) -> int:
    """Number of kept weights."""
    return int(sum(int(m.sum()) for m in mask.values()))


def total(mask: Mask) -> int:
    """Number of prunable weights."""
    return int(sum(m.numel() for m in mask.values()))


def density(mask: Mask) -> float:
    """Share of prunable weights that are kept, in [0, 1]."""
    return remaining(mask) / total(mask)


def layer_density(mask: Mask) -> dict[str, float]:
    """Density of each masked tensor."""
    return {n: int(m.sum()) / m.numel() for n, m in mask.items()}


def check_mask(model: nn.Module, mask: Mask, source: str = "mask") -> None:
    """Raise CheckpointError unless ``mask`` fits ``model`` name by name and shape by shape."""
    params = dict(model.named_parameters())
    unknown = sorted(set(mask) - set(params))
    if unknown:
        raise CheckpointError(
            f"{source} has layers the model lacks ({', '.join(unknown[:3])}): "
            "it was made for another model; delete it or choose the matching model"
        )
    for n, m in mask.items():
        if m.shape != params[n].shape or m.dtype != torch.bool:
            raise CheckpointError(
                f"{source}: layer {n} has shape {tuple(m.shape)} ({m.dtype}), model expects "
                f"{tuple(params[n].shape)} (bool); delete it or choose the matching model"
            )


@torch.no_grad()
def apply_mask(model: nn.Module, mask: Mask) -> None:
    """Zero the pruned weights of ``model`` in place."""
    params = dict(model.named_parameters())
    for n, m in mask.items():
        params[n].mul_(m.to(params[n].device))
