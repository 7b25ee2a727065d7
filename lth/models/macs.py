"""Multiply-accumulates (MACs) of a forward pass, counted per weight from the layers' shapes.

Every Linear and Conv{1,2,3}d weight entry is used once per output position (1 for Linear on a
flat input, H_out * W_out for a 2-D conv), so a layer's MACs are ``weight.numel() * positions``
and its *sparse* MACs (ShrinkBench's "theoretical speed-up") count only the unpruned entries:
``mask.sum() * positions``. Biases, BatchNorm, activations and pooling are not counted (they are
additions or O(activations), small beside the products). One forward pass on an example input
finds the positions, so any architecture made of these layers is counted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


@dataclass(frozen=True)
class Macs:
    """MACs per sample of one forward pass: all weights, and only the unpruned ones."""

    dense: int
    sparse: int


def weight_uses(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """``<module>.weight`` -> how many times each of its entries is multiplied per sample, for
    every Linear/Conv layer the forward pass on ``example_input`` [B, *input_shape] runs."""
    uses: dict[str, int] = {}
    handles = []
    batch = example_input.shape[0]

    def hook(name: str, module: nn.Module, output: torch.Tensor) -> None:
        out_channels = module.weight.shape[0]
        uses[f"{name}.weight"] = uses.get(f"{name}.weight", 0) + (
            output.numel() // (batch * out_channels))

    for name, module in model.named_modules():
        if isinstance(module, COUNTED):
            handles.append(module.register_forward_hook(
                lambda m, _inp, out, name=name: hook(name, m, out)))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return uses


def count_macs(model: nn.Module, example_input: torch.Tensor,
               mask: Mapping[str, torch.Tensor] | None = None) -> Macs:
    """Dense and sparse MACs per sample of ``model`` on ``example_input`` [B, *input_shape];
    a weight without a ``mask`` entry counts as dense."""
    params = dict(model.named_parameters())
    dense = sparse = 0
    for name, n in weight_uses(model, example_input).items():
        weight = params[name]
        dense += weight.numel() * n
        kept = int(mask[name].sum()) if mask is not None and name in mask else weight.numel()
        sparse += kept * n
    return Macs(dense=dense, sparse=sparse)
