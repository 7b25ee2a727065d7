"""The one update step every stepper shares: backward, all-reduce, unscale, mask, step.

A stepper (one model, K stacked replicas, a student) computes its loss on batch ``it`` under
the precision's autocast; ``UpdateStep`` does the rest, in this order, once for all of them:

1. the gradients are reset and the loss (scaled by fp16's GradScaler) is backpropagated;
2. under data parallelism the gradients and the reported loss are averaged across ranks, in
   one all-reduce, before unscaling, so every rank sees the same inf/NaN;
3. the GradScaler unscales them, so that masking sees true gradients;
4. the pruned entries' gradients are zeroed (``lth.train.masking``);
5. the optimizer steps (through the scaler, which skips a step whose gradients are not finite,
   and then updates its scale); optimizers that could move a zero weight are re-masked.

Pruned weights therefore stay exactly zero under every precision: neither the scaler nor a
fused optimizer kernel can revive them, and a skipped fp16 step changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lth.train.distributed import Dist
from lth.train.masking import ZERO_PRESERVING, Mask, Masking


def needs_remask(optimizer: Any) -> bool:
    """Whether ``optimizer`` can move a weight whose gradient, value and state are zero."""
    return type(optimizer) not in ZERO_PRESERVING


@dataclass
class UpdateStep:
    """Steps ``optimizer`` (anything with ``step()``) from the gradients of ``params``.

    ``params`` are the tensors the loss is differentiated by (a model's parameters, or the
    stacked tensors of K replicas); ``zero_grad`` resets their gradients (default: set to
    None, as ``optimizer.zero_grad(set_to_none=True)`` does).
    """

    optimizer: Any
    params: Sequence[torch.Tensor]
    masking: Masking
    scaler: torch.amp.GradScaler | None = None
    dist: Dist | None = None
    remask: bool = False
    zero_grad: Callable[[], None] | None = None

    def __call__(self, loss: torch.Tensor, reported: torch.Tensor, it: int) -> torch.Tensor:
        """Backpropagate ``loss`` and step; ``reported`` (the loss to log: 0-d, or [K]) comes
        back detached (averaged over the ranks under data parallelism)."""
        if self.zero_grad is not None:
            self.zero_grad()
        else:
            for p in self.params:
                p.grad = None
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        reported = reported.detach()
        if self.dist is not None:  # before unscaling: every rank sees the same inf/NaN
            reported = self.dist.average(self.params, reported, it)
        if self.scaler is not None:  # unscaled before masking: zero pruned gradients
            self.scaler.unscale_(self.optimizer)
        self.masking.mask_grads()
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)  # skipped when a gradient is inf/NaN
            self.scaler.update()
        if self.remask:
            self.masking.mask_weights()
        return reported


class MaskedStepper:
    """What the steppers share besides their loss: the masks they hold (``masking``), the
    update step (``update``) over ``optimizer``, and each replica's optimizer state by name
    (``_state_of``, the stepper's own)."""

    masking: Masking
    update: UpdateStep
    optimizer: Any

    def _state_of(self, k: int, name: str) -> Mapping[str, Any]:
        raise NotImplementedError

    def masks(self) -> list[Mask]:
        return self.masking.masks

    def set_masks(self, masks: Sequence[Mask],
                  values: Sequence[Mapping[str, torch.Tensor] | None] | None = None) -> None:
        self.masking.set(masks, values)
        self.update.remask = bool(self.masking.params) and needs_remask(self.optimizer)

    def optimizer_state(self, k: int) -> Callable[[str], Mapping[str, Any]]:
        return lambda name: self._state_of(k, name)
