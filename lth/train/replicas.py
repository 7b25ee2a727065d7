"""Several seeds of one experiment trained together: one vmapped step for K models.

The K models' parameters are stacked into [K, ...] tensors (``torch.func.stack_module_state``)
and the model's own forward runs under ``vmap(functional_call)`` (lth's MLPs: the same function
written with ``baddbmm``, which has a third of vmap's per-op overhead), so one step does the
work of K single steps with one Python pass and one mask multiply. Replica k gets exactly the
batches, learning rates, mask and evaluation points that ``train(models[k], ..., seed=seeds[k],
mask=masks[k])`` would give it.

The optimizer steps per-replica views of the stacked tensors, so each replica's update is the
single run's update on tensors of the single run's shapes (``lth.train.replica_optim``: the
fused SGD, Adam and AdamW kernels over stacked state; any other optimizer through its own
``step()`` on the views, re-masked after it). The rest of the step is the one every stepper
shares (``lth.train.step``): bf16 autocast, the DDP all-reduce (each rank trains its slice of
every replica's batch), masking; ``train.compile`` compiles the stacked forward. fp16 is
refused: torch's GradScaler skips or scales one optimizer as a whole, so one replica's inf
would skip every replica's step. What is exact by construction: each replica's initial weights,
masks, batches, learning rates and evaluation points are its single run's. What is not: the
batched forward and backward (baddbmm, vmap) are other kernels than the single run's, and
whether they round alike in the last bit depends on the CPU, its torch build and the thread
count (alike on some x86 CPUs with one thread, not on others). Trajectories can then drift
apart as they do between machines; the tests assert metrics within a tolerance.

The loop itself is ``lth.train.core.run_loop``, so replicas evaluate, check for non-finite
losses, show progress and checkpoint exactly as a single run does.

BatchNorm networks (ResNet-20/32/56, VGG, any model with buffers): each replica's buffers
(running mean and variance, batches tracked) are stacked beside its parameters and passed to
the vmapped ``functional_call``, whose BatchNorm updates replica k's running statistics in
place in training mode and uses them in evaluation mode (the base module's train/eval flag).
Initial weights and statistics are the single runs' exactly; statistics after training agree
within rounding, like the weights. Dropout is refused: its random draws under vmap are not
the single run's (ConfigError).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import Dataset, StackedBatches
from lth.errors import ConfigError
from lth.train.accel import Accel
from lth.train.core import (
    Callbacks,
    EvalCallback,
    Hook,
    LoopOptions,
    Span,
    TrainResult,
    base_lrs,
    run_loop,
    set_lr,
)
from lth.train.distributed import Dist
from lth.train.masking import Masking, MaskUpdate
from lth.train.replica_optim import ReplicaStep
from lth.train.stack import Stack
from lth.train.step import MaskedStepper, UpdateStep, needs_remask

_NOT_VMAPPABLE = (nn.modules.dropout._DropoutNd,)


def check_replicable(model: nn.Module) -> None:
    """Raise ConfigError unless ``model`` can be trained with replicas > 1."""
    bad = sorted({type(m).__name__ for m in model.modules() if isinstance(m, _NOT_VMAPPABLE)})
    if bad:
        raise ConfigError(
            f"replicas > 1 supports models without dropout (its random draws under vmap are "
            f"not the single run's); {type(model).__name__} has {', '.join(bad)}: set "
            "replicas=1 and sweep seeds with -m seed=0,1,..."
        )


OptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


def check_replica_accel(accel: Accel) -> None:
    """ConfigError for what torch cannot run for K stacked replicas as for K single runs."""
    if accel.precision == "fp16":
        raise ConfigError("replicas > 1 cannot train in fp16: torch's GradScaler skips or "
                          "scales one optimizer as a whole, so one replica's inf would skip "
                          "every replica's step; use train.precision=bf16, or replicas=1")


class ReplicaStepper(MaskedStepper):
    """The update of K stacked models: replica k trains on seed ``seeds[k]``'s batches with
    mask ``masks[k]``; ``make_optimizer`` gets every replica's parameters (views of the stacked
    ones, replica by replica). ``accel``: bf16 autocast and compile as for one model.
    ConfigError for what cannot be trained this way."""

    def __init__(self, models: Sequence[nn.Module], data: Dataset,
                 make_optimizer: OptimizerFactory, *, batch_size: int, seeds: Sequence[int],
                 masks: Sequence[Mapping[str, torch.Tensor]] | None = None,
                 accel: Accel = Accel(), dist: Dist | None = None) -> None:
        if len(models) != len(seeds) or (masks is not None and len(masks) != len(models)):
            raise ValueError("models, seeds and masks must have one entry per replica")
        for model in models:
            check_replicable(model)
        check_replica_accel(accel)
        self.replicas, self.accel, self.dist = len(models), accel, dist
        self.stack = Stack(models)
        self.device = data.x_train.device
        self.forward = torch.compile(self.stack.forward) if accel.compile else self.stack.forward
        self.optimizer = make_optimizer(self.stack.views)
        self.opt = ReplicaStep(self.optimizer, list(self.stack.params.values()),
                               self.stack.views)
        self.index = {n: i for i, n in enumerate(self.stack.params)}
        self.masking = Masking(self.stack.params, [dict(m) for m in masks or [{}] * len(models)],
                               self._state_of, stacked=True)
        self.batches = StackedBatches(data.x_train, data.y_train, batch_size, list(seeds),
                                      augment=data.augment)
        self.lrs = base_lrs(self.optimizer)
        self.update = UpdateStep(self.opt, list(self.stack.params.values()), self.masking,
                                 dist=dist, remask=bool(self.masking.params) and needs_remask(
                                     self.optimizer), zero_grad=self.stack.zero_grad)

    def _state_of(self, k: int, name: str) -> Mapping[str, Any]:
        return self.opt.state_of(k * len(self.index) + self.index[name])

    def losses(self, it: int) -> torch.Tensor:
        """The K training losses [K] of batch ``it`` (under the precision's autocast)."""
        x, y = self.batches.batch(it)
        if self.dist is not None:  # this rank's slice of every replica's global batch
            x = self.dist.shard(x, 1)
            y = self.dist.shard(y.view(self.replicas, -1), 1).reshape(-1)
        stack = self.stack
        with self.accel.autocast(self.device):
            out = self.forward(stack.params, stack.buffers, x)
            losses = F.cross_entropy(out.flatten(0, 1), y, reduction="none")
        return losses.view(self.replicas, -1).mean(1)

    def step(self, it: int, lr_factor: float) -> torch.Tensor:
        set_lr(self.optimizer, self.lrs, lr_factor)
        losses = self.losses(it)
        return self.update(losses.sum(), losses, it)  # replica k's params get d(losses[k])

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        with self.accel.autocast(self.device):
            return self.stack.evaluate(x, y)

    def models(self) -> list[nn.Module]:
        self.stack.write_back()
        return self.stack.models

    # -- the mask as training state (masks, set_masks, optimizer_state: MaskedStepper) -
    def dense_grads(self, it: int) -> list[dict[str, torch.Tensor]]:
        """Per replica, the gradients of batch ``it``'s loss by masked parameter, not masked
        (nothing is stepped; BatchNorm statistics are left as they were)."""
        names = sorted(self.masking.masks[0])
        buffers = {n: b.clone() for n, b in self.stack.buffers.items()}
        losses = self.losses(it)
        grads = torch.autograd.grad(losses.sum(), [self.stack.params[n] for n in names],
                                    allow_unused=True)
        with torch.no_grad():
            for n, b in self.stack.buffers.items():
                b.copy_(buffers[n])
        if self.dist is not None:  # every rank's update sees the global batches' gradients
            self.dist.average_grads([g for g in grads if g is not None], losses.detach(), it)
        return [{n: (torch.zeros_like(self.stack.params[n][k]) if g is None
                     else g[k].detach()) for n, g in zip(names, grads)}
                for k in range(self.replicas)]

    # -- checkpoints ---------------------------------------------------------------------
    def optimizer_states(self) -> list[dict]:
        """Each replica's optimizer state in the format of its single run's optimizer."""
        return self.opt.state_dicts()

    def load_optimizer_states(self, states: Sequence[dict]) -> None:
        """Restore what ``optimizer_states`` returned (or single runs' optimizer states)."""
        self.opt.load_state_dicts(list(states))


def train_replicas(
    models: Sequence[nn.Module],
    data: Dataset,
    make_optimizer: OptimizerFactory,
    span: Span,
    *,
    batch_size: int,
    seeds: Sequence[int],
    masks: Sequence[Mapping[str, torch.Tensor]] | None = None,
    options: LoopOptions = LoopOptions(),
    hooks: Mapping[int, Hook] | None = None,
    on_eval: EvalCallback | None = None,
    accel: Accel = Accel(),
    updates: Sequence[MaskUpdate] | None = None,
) -> list[TrainResult]:
    """Train ``models[k]`` with data seed ``seeds[k]`` and mask ``masks[k]``, all K at once.

    The arguments mean what they mean for ``lth.train.train``, per replica; ``hooks[it]``
    gets every model with its current weights, ``on_eval(k, it, point)`` replica k's points.
    The models hold their trained weights on return. Raises TrainingError when any replica's
    loss is not finite, and ConfigError for unsupported models or optimizers. For mid-round
    checkpoints, build a ``ReplicaStepper`` and call ``run_loop`` (as lth.lottery does).
    """
    stepper = ReplicaStepper(models, data, make_optimizer, batch_size=batch_size, seeds=seeds,
                             masks=masks, accel=accel)
    if not options.replica_names:
        options = dataclasses.replace(options, replica_names=tuple(f"data seed {s}"
                                                                   for s in seeds))
    results = run_loop(stepper, data, span, options, Callbacks(dict(hooks or {}), on_eval),
                       updates=updates)
    stepper.models()
    return results

