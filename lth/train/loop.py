"""One model trained through the loop core, its mask kept applied (``lth.train.masking``).

``SingleStepper`` is the update of one model on cross-entropy; ``DistillStepper``
(``lth.train.distill``) is the same stepper with another loss. The step itself (backward,
all-reduce, unscale, mask, optimizer step) is ``lth.train.step.UpdateStep``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.train import checkpoint
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
from lth.train.masking import Masking, MaskUpdate
from lth.train.step import MaskedStepper, UpdateStep, needs_remask


class SingleStepper(MaskedStepper):
    """The update of one model: ``loss(model, x, y)`` (default: cross-entropy) on
    ``batches.batch(it)``, masked gradients.

    ``accel`` says how the arithmetic runs (``lth.train.accel``); with fp16, ``scaler`` is the
    GradScaler whose state is checkpointed with the optimizer's (one is made when not given).
    With ``dist`` this rank trains on its slice of the global batch and the gradients are
    averaged across ranks (``lth.train.distributed``).
    """

    replicas = 1

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 batches: BatchIterator, mask: Mapping[str, torch.Tensor] | None,
                 accel: Accel = Accel(), scaler: torch.amp.GradScaler | None = None,
                 dist: Dist | None = None) -> None:
        self.model, self.optimizer, self.batches, self.dist = model, optimizer, batches, dist
        self.by_name = dict(model.named_parameters())
        self.masking = Masking(self.by_name, [dict(mask or {})], self._state_of)
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
        self.update = UpdateStep(
            optimizer, list(model.parameters()), self.masking, self.scaler, dist,
            remask=bool(self.masking.params) and needs_remask(optimizer),
            zero_grad=lambda: optimizer.zero_grad(set_to_none=True))
        model.train()

    def _state_of(self, k: int, name: str) -> Mapping[str, Any]:
        return self.optimizer.state.get(self.by_name[name], {})

    def batch(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of batch ``it``, in the layout the forward wants."""
        x, y = self.batches.batch(it)
        if self.dist is not None:
            x, y = self.dist.shard(x), self.dist.shard(y)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The training loss (0-d) of a batch."""
        return F.cross_entropy(self.forward(x), y)

    def step(self, it: int, lr_factor: float) -> torch.Tensor:
        x, y = self.batch(it)
        set_lr(self.optimizer, self.lrs, lr_factor)
        with self.accel.autocast(self.device):
            loss = self.loss(x, y)
        return self.update(loss, loss, it)

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        with self.accel.autocast(self.device):
            loss, acc = evaluate(self.model, x, y)
        return [loss], [acc]

    def models(self) -> list[nn.Module]:
        return [self.model]

    # -- the mask as training state (masks, set_masks, optimizer_state: MaskedStepper) -
    def dense_grads(self, it: int) -> list[dict[str, torch.Tensor]]:
        """Gradients of batch ``it``'s loss w.r.t. the masked parameters, not masked (nothing
        is stepped; BatchNorm statistics are left as they were)."""
        names = sorted(self.masking.masks[0])
        buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        x, y = self.batch(it)
        with self.accel.autocast(self.device):
            loss = self.loss(x, y)
        grads = torch.autograd.grad(loss, [self.by_name[n] for n in names], allow_unused=True)
        with torch.no_grad():
            for n, b in self.model.named_buffers():
                b.copy_(buffers[n])
        out = {n: (torch.zeros_like(self.by_name[n]) if g is None else g.detach())
               for n, g in zip(names, grads)}
        if self.dist is not None:  # every rank's update sees the global batch's gradient
            self.dist.average_grads(list(out.values()), loss.detach(), it)
        return [out]

    # -- checkpoints ---------------------------------------------------------------------
    def optimizer_states(self) -> list[dict[str, Any]]:
        return [checkpoint.optimizer_state(self.optimizer, self.scaler)]

    def load_optimizer_states(self, states: Sequence[dict[str, Any]]) -> None:
        (state,) = states
        checkpoint.load_optimizer(self.optimizer, self.scaler, state)


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
    update: MaskUpdate | None = None,
) -> TrainResult:
    """Train ``model`` in place over ``span`` (see ``lth.train.core.run_loop``).

    Batch ``it`` is ``BatchIterator(seed).batch(it)`` and its learning rate is the optimizer's
    initial rate times ``span.lr(it)``, so any span of a schedule can be replayed exactly.
    ``hooks[it](model)`` runs when ``it`` iterations are done; ``on_eval(it, point)`` gets each
    evaluation; ``on_checkpoint(state)`` is offered every ``options.checkpoint_every``
    iterations and ``resume`` continues from such a state (the caller restores the model,
    optimizer and RNGs first). ``update`` may change the mask within the span; the result's
    ``mask`` is the final one. Raises TrainingError on a non-finite training loss.
    ``accel``, ``scaler`` and ``dist``: see ``SingleStepper``.
    """
    batches = BatchIterator(data.x_train, data.y_train, batch_size, seed, augment=data.augment)
    callbacks = Callbacks(
        hooks={it: (lambda models, fn=fn: fn(models[0])) for it, fn in (hooks or {}).items()},
        on_eval=None if on_eval is None else (lambda _, it, point: on_eval(it, point)),
        on_checkpoint=None if on_checkpoint is None else (lambda states: on_checkpoint(states[0])),
    )
    stepper = SingleStepper(model, optimizer, batches, mask, accel, scaler, dist)
    (result,) = run_loop(stepper, data, span, options, callbacks,
                         None if resume is None else [resume],
                         None if update is None else [update])
    return result
