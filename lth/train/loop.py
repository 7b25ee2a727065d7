"""One model trained through the loop core, with a mask kept applied.

The loop knows nothing about pruning except that pruned weights (mask False) must stay exactly
zero: their gradients are zeroed before each optimizer step (so momentum, weight decay and Adam
state never build up for them). SGD, Adam and AdamW then leave a weight with zero gradient, zero
value and zero state exactly at zero, so for them that one multiply per step is the whole cost
(weights and state are masked once, at the start); any other optimizer also gets its weights
re-masked after each step. All-True mask tensors (the dense round) cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.train.accel import Accel, forward_of, has_conv
from lth.train.core import (
    Callbacks,
    LoopOptions,
    Span,
    TrainResult,
    TrainState,
    base_lrs,
    run_loop,
    set_lr,
)
from lth.train.distributed import Dist
from lth.train.evaluate import evaluate

# With zero gradient, value and state, these optimizers' update of a weight is exactly zero
# (momentum, nesterov, weight decay, Adam moments, amsgrad, maximize, fused or not).
ZERO_PRESERVING = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def masked_pairs(params: Mapping[str, torch.Tensor], mask: Mapping[str, torch.Tensor] | None
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The tensors of ``params`` that ``mask`` prunes, and float copies of their masks.

    An all-True mask tensor masks nothing: skipping it makes the dense round mask-free. Float
    masks make each step one fused multiply per list.
    """
    if not mask:
        return [], []
    names = sorted(n for n in mask if not bool(mask[n].all()))
    return ([params[n] for n in names],
            [mask[n].to(device=params[n].device, dtype=params[n].dtype) for n in names])


@torch.no_grad()
def mask_weights_and_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                           masks: list[torch.Tensor]) -> None:
    """Zero the pruned entries of ``params`` and of their optimizer state tensors, in place."""
    if not params:
        return
    torch._foreach_mul_(params, masks)
    for p, m in zip(params, masks):
        for value in optimizer.state.get(p, {}).values():
            if torch.is_tensor(value) and value.shape == m.shape:
                value.mul_(m)


def mask_grads(params: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
    """Zero the pruned entries of the gradients of ``params`` (those that have one)."""
    pairs = [(p.grad, m) for p, m in zip(params, masks) if p.grad is not None]
    if pairs:
        torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])


class SingleStepper:
    """The update of one model: cross-entropy on ``batches.batch(it)``, masked gradients.

    ``accel`` says how the arithmetic runs (``lth.train.accel``); with fp16, ``scaler`` is the
    GradScaler whose state the caller checkpoints (one is made when it is not given). With
    ``dist`` this rank trains on its slice of the global batch and the gradients are averaged
    across ranks (``lth.train.distributed``).
    """

    replicas = 1

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 batches: BatchIterator, mask: Mapping[str, torch.Tensor] | None,
                 accel: Accel = Accel(), scaler: torch.amp.GradScaler | None = None,
                 dist: Dist | None = None) -> None:
        self.model, self.optimizer, self.batches, self.dist = model, optimizer, batches, dist
        self.params, self.masks = masked_pairs(dict(model.named_parameters()), mask)
        mask_weights_and_state(optimizer, self.params, self.masks)
        self.remask = bool(self.params) and type(optimizer) not in ZERO_PRESERVING
        self.lrs = base_lrs(optimizer)
        self.device = batches.x.device
        self.accel = accel
        self.scaler = scaler or accel.scaler(self.device)
        # channels_last: the layout CUDA's conv kernels (tensor cores) are fastest in.
        self.channels_last = (self.device.type == "cuda" and batches.x.dim() == 4
                              and has_conv(model))
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.forward = forward_of(model, accel)
        model.train()

    def step(self, it: int, lr_factor: float) -> torch.Tensor:
        x, y = self.batches.batch(it)
        if self.dist is not None:
            x, y = self.dist.shard(x), self.dist.shard(y)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        set_lr(self.optimizer, self.lrs, lr_factor)
        with self.accel.autocast(self.device):
            loss = F.cross_entropy(self.forward(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()
        if self.dist is not None:  # before unscaling: every rank sees the same inf/NaN
            loss = self.dist.average(self.model.parameters(), loss.detach(), it)
        if self.scaler is not None:  # unscaled before masking: zero pruned gradients
            self.scaler.unscale_(self.optimizer)
        if self.params:
            mask_grads(self.params, self.masks)
        if self.scaler is None:
            self.optimizer.step()
        else:
            self.scaler.step(self.optimizer)  # skipped when a gradient is inf/NaN
            self.scaler.update()
        if self.remask:
            with torch.no_grad():
                torch._foreach_mul_(self.params, self.masks)
        return loss.detach()

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        with self.accel.autocast(self.device):
            loss, acc = evaluate(self.model, x, y)
        return [loss], [acc]

    def models(self) -> list[nn.Module]:
        return [self.model]


def train(
    model: nn.Module,
    data: Dataset,
    optimizer: torch.optim.Optimizer,
    span: Span,
    *,
    batch_size: int,
    seed: int,
    mask: Mapping[str, torch.Tensor] | None = None,
    options: LoopOptions = LoopOptions(),
    hooks: Mapping[int, Callable[[nn.Module], None]] | None = None,
    on_eval: Callable[[int, dict[str, float]], None] | None = None,
    on_checkpoint: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
    accel: Accel = Accel(),
    scaler: torch.amp.GradScaler | None = None,
    dist: Dist | None = None,
) -> TrainResult:
    """Train ``model`` in place over ``span`` (see ``lth.train.core.run_loop``).

    Batch ``it`` is ``BatchIterator(seed).batch(it)`` and its learning rate is the optimizer's
    initial rate times ``span.lr(it)``, so any span of a schedule can be replayed exactly.
    ``hooks[it](model)`` runs when ``it`` iterations are done; ``on_eval(it, point)`` gets each
    evaluation; ``on_checkpoint(state)`` is offered every ``options.checkpoint_every``
    iterations and ``resume`` continues from such a state. Raises TrainingError on a
    non-finite training loss. ``accel``, ``scaler`` and ``dist``: see ``SingleStepper``.
    """
    batches = BatchIterator(data.x_train, data.y_train, batch_size, seed, augment=data.augment)
    callbacks = Callbacks(
        hooks={it: (lambda models, fn=fn: fn(models[0])) for it, fn in (hooks or {}).items()},
        on_eval=None if on_eval is None else (lambda _, it, point: on_eval(it, point)),
        on_checkpoint=None if on_checkpoint is None else (lambda states: on_checkpoint(states[0])),
    )
    stepper = SingleStepper(model, optimizer, batches, mask, accel, scaler, dist)
    (result,) = run_loop(stepper, data, span, options, callbacks,
                         None if resume is None else [resume])
    return result
