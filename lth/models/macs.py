"""Multiply-accumulates (MACs) of a forward pass: every use of every weight, per weight entry.

The convention, the one lth reports everywhere (``metrics.jsonl``'s ``macs_dense`` and
``macs_sparse``, the export's ``report.json``): a MAC is one product of a weight entry with an
activation inside a matrix product or a convolution (aten ``mm``, ``addmm``, ``bmm``,
``baddbmm``, ``mv``, ``addmv``, ``linear``, ``convolution``). A weight is a parameter that is
such an operand, directly or as a view (transposed, chunked, expanded over a batch): each op is
attributed to the parameter whose storage its operand shares, so weights used functionally
count like those of Linear layers called as modules (``nn.MultiheadAttention`` hands its
``in_proj_weight`` and ``out_proj.weight`` to ``F.multi_head_attention_forward``; Swin calls
``F.linear`` on its ``qkv`` and ``proj``). Not counted: biases, norms, activations, pooling,
and products of two activations (attention's QKᵀ and AV), which have no weight to prune.
*Sparse* MACs (ShrinkBench's "theoretical speed-up") count only the unpruned entries, each
times its uses. One forward pass on an example input finds the uses, so any architecture is
counted; for a Linear/Conv network this is ``weight.numel() * output positions`` per layer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

# The convention, named in every report that counts MACs (the export's report.json).
CONVENTION = ("lth.models.macs: products of a weight entry with an activation in matrix "
              "products and convolutions, per sample; every use of every weight; biases, norms, "
              "activations, pooling and activation-activation products not counted; "
              "macs_sparse counts only unpruned entries")

aten = torch.ops.aten
# op -> positions of its two product operands (the rest are biases or accumulators).
_MATMULS = {aten.mm.default: (0, 1), aten.bmm.default: (0, 1), aten.mv.default: (0, 1),
            aten.addmm.default: (1, 2), aten.baddbmm.default: (1, 2),
            aten.addmv.default: (1, 2)}
# Fused kernels whose weight products no dispatch mode sees: record_uses turns them off.
_FUSED = {aten._native_multi_head_attention.default,
          aten._transformer_encoder_layer_fwd.default}


@dataclass(frozen=True)
class Macs:
    """MACs per sample of one forward pass: all weights, and only the unpruned ones."""

    dense: int
    sparse: int


@dataclass(frozen=True)
class WeightUse:
    """One op's operand as a view of a parameter, and the products each view entry takes
    part in (over the whole example batch)."""

    name: str
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int  # storage offset relative to the parameter's own
    per_entry: int

    @property
    def macs(self) -> int:
        """The products of this operand in its op."""
        return _numel(self.size) * self.per_entry

    def kept(self, param: torch.Tensor, mask: torch.Tensor) -> int:
        """Unpruned entries of this view (an expanded view counts each copy)."""
        laid = torch.empty_strided(param.shape, param.stride(), dtype=torch.bool)
        laid.copy_(mask.detach().cpu())
        return int(laid.as_strided(self.size, self.stride, self.offset).sum())


def _numel(size: tuple[int, ...]) -> int:
    n = 1
    for s in size:
        n *= s
    return n


def _products(func, args: tuple, out: object) -> tuple[int, list[torch.Tensor]] | None:  # noqa: ANN001
    """(MACs, the product operands) of one aten op; None if it multiplies no operands."""
    if func in _MATMULS:
        i, j = _MATMULS[func]
        a, b = args[i], args[j]
        return a.numel() * (b.shape[-1] if b.dim() >= 2 else 1), [a, b]
    if func is aten.linear.default:
        x, w = args[0], args[1]
        return x.numel() // w.shape[-1] * w.numel(), [w]
    if func is aten.convolution.default:
        x, w, transposed = args[0], args[1], args[6]
        # Each weight entry meets one input (transposed) or output position per sample.
        positions = x.numel() // w.shape[0] if transposed else out.numel() // w.shape[0]
        return positions * w.numel(), [w]
    return None


class _UseRecorder(TorchDispatchMode):
    """Records, for each product op, the operands that are views of a parameter."""

    def __init__(self, params: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.storages: dict[int, list[tuple[str, torch.Tensor]]] = {}
        for name, p in params.items():
            if p.numel():
                self.storages.setdefault(p.untyped_storage().data_ptr(), []).append((name, p))
        self.uses: list[WeightUse] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        if func in _FUSED:
            raise RuntimeError(f"{func} hides its weight products from the MAC count")
        out = func(*args, **(kwargs or {}))
        found = _products(func, args, out)
        if found is not None:
            macs, operands = found
            for t in operands:
                self._note(t, macs)
        return out

    def _note(self, t: torch.Tensor, macs: int) -> None:
        if not isinstance(t, torch.Tensor) or not t.numel():
            return
        for name, p in self.storages.get(t.untyped_storage().data_ptr(), []):
            offset = t.storage_offset() - p.storage_offset()
            if 0 <= offset < p.numel():  # one storage may hold several parameters
                self.uses.append(WeightUse(name, tuple(t.shape), tuple(t.stride()), offset,
                                           macs // t.numel()))
                return


def record_uses(model: nn.Module, example_input: torch.Tensor) -> list[WeightUse]:
    """Every use of a parameter as a product operand in one eval-mode forward pass on
    ``example_input`` [B, *input_shape], in op order."""
    recorder = _UseRecorder(dict(model.named_parameters()))
    was_training, fast_path = model.training, torch.backends.mha.get_fastpath_enabled()
    try:
        model.eval()
        # The fused attention kernels would hide their weight products inside one op.
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad(), recorder:
            model(example_input)
    finally:
        torch.backends.mha.set_fastpath_enabled(fast_path)
        model.train(was_training)
    return recorder.uses


def weight_uses(model: nn.Module, example_input: torch.Tensor) -> dict[str, int]:
    """Parameter name -> how many times each of its entries is multiplied per sample (the mean
    over its entries where they are used unequally), for every weight the forward pass on
    ``example_input`` [B, *input_shape] uses in a product."""
    params = dict(model.named_parameters())
    macs: dict[str, int] = {}
    for use in record_uses(model, example_input):
        macs[use.name] = macs.get(use.name, 0) + use.macs
    batch = example_input.shape[0]
    return {name: m // (params[name].numel() * batch) for name, m in macs.items()}


def count_macs(model: nn.Module, example_input: torch.Tensor,
               mask: Mapping[str, torch.Tensor] | None = None) -> Macs:
    """Dense and sparse MACs per sample of ``model`` on ``example_input`` [B, *input_shape];
    a weight without a ``mask`` entry counts as dense."""
    params = dict(model.named_parameters())
    dense = sparse = 0
    for use in record_uses(model, example_input):
        dense += use.macs
        if mask is not None and use.name in mask:
            sparse += use.kept(params[use.name], mask[use.name]) * use.per_entry
        else:
            sparse += use.macs
    batch = example_input.shape[0]
    return Macs(dense=dense // batch, sparse=sparse // batch)
