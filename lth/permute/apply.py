"""Permutations of a network's hidden units: apply one, invert one, draw one.

A permutation is a dict ``name -> LongTensor [n]`` read as "new unit i is old unit perm[i]"
(the reference's ``jnp.take(w, perm[p], axis)``). Applying it to a state dict reorders every
axis the spec names; the network computes the same function (up to float rounding of the
reordered sums). Masks (``name -> bool tensor`` over weights and, when pruned, biases) are
permuted by the same rule, so a mask moves with the weights it belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from lth.permute.spec import PermSpec

Perm = dict[str, torch.Tensor]


def identity(spec: PermSpec) -> Perm:
    """The identity permutation of every unit group of ``spec``."""
    return {p: torch.arange(n) for p, n in spec.sizes.items()}


def random_perm(spec: PermSpec, seed: int) -> Perm:
    """A uniformly random permutation of every unit group, drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return {p: torch.randperm(spec.sizes[p], generator=gen) for p in sorted(spec.sizes)}


def inverse(perm: Mapping[str, torch.Tensor]) -> Perm:
    """The permutation undoing ``perm``."""
    return {p: torch.argsort(idx) for p, idx in perm.items()}


def compose(first: Mapping[str, torch.Tensor], then: Mapping[str, torch.Tensor]) -> Perm:
    """Applying ``first`` and then ``then`` (as one permutation)."""
    return {p: first[p][then[p]] for p in first}


def permuted_tensor(spec: PermSpec, perm: Mapping[str, torch.Tensor], name: str,
                    tensor: torch.Tensor, except_axis: int | None = None) -> torch.Tensor:
    """``tensor`` (the state entry ``name``) with every permuted axis but ``except_axis``
    reordered, in the spec's view of it (e.g. ``[out, channels, positions]``)."""
    ax = spec.axes[name]
    t = tensor.reshape(ax.view) if ax.view is not None else tensor
    for axis, p in enumerate(ax.perms):
        if p is not None and axis != except_axis:
            t = t.index_select(axis, perm[p].to(t.device))
    return t


def apply_perm(spec: PermSpec, perm: Mapping[str, torch.Tensor],
               state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (a state dict, or a mask over some of its tensors) with ``perm`` applied."""
    out = {}
    for name, tensor in state.items():
        if name not in spec.axes:
            raise KeyError(f"{name} is not a tensor of the model the spec describes")
        out[name] = permuted_tensor(spec, perm, name, tensor).reshape(tensor.shape).clone()
    return out


def is_identity(perm: Mapping[str, torch.Tensor]) -> bool:
    """Whether every group of ``perm`` maps each unit to itself."""
    return all(bool((idx == torch.arange(idx.numel())).all()) for idx in perm.values())
