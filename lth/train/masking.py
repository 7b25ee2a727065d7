"""Masks inside a training: pruned weights kept at exactly zero, and masks that change.

The loop holds each replica's current mask (``Masking``). Pruned weights (mask False) must stay
exactly zero: their gradients are zeroed before each optimizer step, so momentum, weight decay
and Adam state never build up for them. SGD, Adam and AdamW then leave a weight with zero
gradient, zero value and zero state exactly at zero, so for them that one fused multiply per
step is the whole cost (weights and state are masked once, when a mask is set); any other
optimizer also gets its weights re-masked after each step. All-True mask tensors (the dense
round) cost nothing.

Within a span a ``MaskUpdate`` may change a replica's mask at the iterations it names (gradual
pruning, SET, RigL, ...), seeing the model, the optimizer state and, where it asks, the current
dense gradients. Setting a new mask zeroes the dropped weights and their optimizer state; a
regrown weight starts from the value the update gives (zero by default) with zero optimizer
state, since its state was zeroed when it was pruned. IMP's update is ``NO_UPDATE``: its mask
is constant within a span and the loop never calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

Mask = dict[str, torch.Tensor]
StateOf = Callable[[int, str], Mapping[str, Any]]  # (replica, name) -> its optimizer state

# With zero gradient, value and state, these optimizers' update of a weight is exactly zero
# (momentum, nesterov, weight decay, Adam moments, amsgrad, maximize, fused or not).
ZERO_PRESERVING = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


@dataclass
class MaskChange:
    """A replica's new mask; ``values`` (name -> tensor of the weight's shape) give regrown
    weights their value (unset: zero); ``stats`` are logged with the change."""

    mask: Mask
    values: dict[str, torch.Tensor] | None = None
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class UpdateContext:
    """What a mask update sees at iteration ``it`` for ``replica``: its current mask and model,
    its optimizer state (name -> state tensors), and on request the dense gradients of the
    loss on batch ``it`` (name -> gradient, not masked; computed once for every replica)."""

    it: int
    replica: int
    mask: Mask
    model: nn.Module
    optimizer_state: Callable[[str], Mapping[str, Any]]
    dense_grads: Callable[[], dict[str, torch.Tensor]]


class MaskUpdate(Protocol):
    """Changes a replica's mask at the iterations it names; its state goes into checkpoints
    (its own RNG included), so a resumed span updates exactly as an uninterrupted one."""

    def due(self, it: int) -> bool:
        """Whether ``update`` runs when ``it`` iterations are done (before the step of ``it``)."""
        ...

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        """The new mask, or None to keep it (an update may only observe)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Tensors, numbers, strings, lists and dicts only (``torch.load(weights_only=True)``)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


class NoUpdate:
    """The constant mask of IMP: never due, no state."""

    def due(self, it: int) -> bool:
        return False

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


NO_UPDATE = NoUpdate()


class Chain:
    """Several updates of one replica in order (e.g. detection beside a sparse method)."""

    def __init__(self, updates: Sequence[MaskUpdate]) -> None:
        self.updates = list(updates)

    def due(self, it: int) -> bool:
        return any(u.due(it) for u in self.updates)

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        change = None
        for u in self.updates:
            if u.due(ctx.it):
                new = u.update(ctx)
                if new is not None:
                    change, ctx.mask = new, new.mask
        return change

    def state_dict(self) -> dict[str, Any]:
        return {"chain": [u.state_dict() for u in self.updates]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for u, s in zip(self.updates, state["chain"]):
            u.load_state_dict(s)


def pruned_names(masks: Sequence[Mapping[str, torch.Tensor]]) -> list[str]:
    """The names some replica actually prunes (an all-True tensor masks nothing), sorted."""
    if not masks:
        return []
    return sorted(n for n in masks[0] if not all(bool(m[n].all()) for m in masks))


def same_mask(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether two masks keep the same weights (wherever their tensors lie)."""
    return set(a) == set(b) and all(torch.equal(a[n].cpu(), b[n].cpu()) for n in a)


def mask_grads(params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """Zero the pruned entries of the gradients of ``params`` (those that have one)."""
    pairs = [(p.grad, m) for p, m in zip(params, masks) if p.grad is not None]
    if pairs:
        torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])


class Masking:
    """Each replica's current bool mask, and the float tensors one fused multiply applies.

    ``params`` maps names to the trained tensors: a model's parameters (one replica) or the
    stacked [K, ...] tensors of K replicas (``stacked``). ``state_of(k, name)`` is replica k's
    optimizer state of that parameter (tensors of its shape are masked with it).
    """

    def __init__(self, params: Mapping[str, torch.Tensor], masks: Sequence[Mask],
                 state_of: StateOf, stacked: bool = False) -> None:
        self.all_params, self.state_of, self.stacked = dict(params), state_of, stacked
        self.masks: list[Mask] = []
        self.params: list[torch.Tensor] = []
        self.floats: list[torch.Tensor] = []
        self.set(masks)

    def _derive(self) -> None:
        names = pruned_names(self.masks)
        self.names = names
        self.params = [self.all_params[n] for n in names]
        if self.stacked:
            self.floats = [torch.stack([m[n] for m in self.masks]).to(self.all_params[n])
                           for n in names]
        else:
            self.floats = [self.masks[0][n].to(device=self.all_params[n].device,
                                               dtype=self.all_params[n].dtype) for n in names]

    @torch.no_grad()
    def set(self, masks: Sequence[Mask], values: Sequence[Mapping[str, torch.Tensor] | None]
            | None = None) -> None:
        """Take ``masks`` (one per replica): dropped weights and their optimizer state become
        zero; regrown ones take ``values[k][name]`` where given (else stay zero)."""
        old = self.masks
        self.masks = [{n: t.to(self.all_params[n].device) for n, t in m.items()} for m in masks]
        self._derive()
        if not self.params:
            return
        torch._foreach_mul_(self.params, self.floats)
        for i, n in enumerate(self.names):
            for k in range(len(self.masks)):
                m = self.floats[i][k] if self.stacked else self.floats[i]
                for value in self.state_of(k, n).values():
                    if torch.is_tensor(value) and value.shape == m.shape:
                        value.mul_(m)
        for k, vals in enumerate(values or []):
            for n, v in (vals or {}).items():
                grown = self.masks[k][n] & ~old[k][n] if old else self.masks[k][n]
                target = self.all_params[n][k] if self.stacked else self.all_params[n]
                target[grown] = v.to(target)[grown]

    def mask_grads(self) -> None:
        """Zero the pruned entries of the gradients (before the optimizer step)."""
        if self.params:
            mask_grads(self.params, self.floats)

    @torch.no_grad()
    def mask_weights(self) -> None:
        """Zero the pruned weights (after the step of an optimizer that may move them)."""
        if self.params:
            torch._foreach_mul_(self.params, self.floats)
