"""The typed parts of the one training loop (``lth.train.core.run_loop``): the span it trains,
its options and callbacks, the per-replica loop state a checkpoint holds, the result of a
training, and the ``Stepper`` protocol every update (one model, K replicas, a student)
implements."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from lth.train.masking import Mask, MaskChange
from lth.train.schedule import LRFactor

Hook = Callable[[list[nn.Module]], None]  # sees every replica's current weights
EvalCallback = Callable[[int, int, dict[str, float]], None]  # (replica, iteration, point)
ChangeCallback = Callable[[int, int, MaskChange], None]  # (replica, iteration, change)


@dataclass(frozen=True)
class Span:
    """Iterations ``[start, end)`` of a schedule and its learning-rate factor ``lr(it)``."""

    start: int
    end: int
    lr: LRFactor

    @property
    def iterations(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class LoopOptions:
    """How often the loop evaluates and checkpoints (iterations; 0: never in between)."""

    eval_every: int = 0
    checkpoint_every: int = 0
    progress: bool = False
    desc: str = "train"
    replica_names: tuple[str, ...] = ()  # how errors name replica k (default: "replica k")


@dataclass
class TrainState:
    """One replica's loop state when ``it`` iterations are done and nothing of iteration ``it``
    has run yet (no hook, no evaluation). With the model, optimizer and RNG states (saved by the
    caller) it lets the loop continue bit-identically.

    ``loss_sum`` (0-d float32) and ``steps`` accumulate the training loss since the last
    evaluation; ``last_loss`` is the mean reported at that evaluation. ``mask`` is the
    replica's current mask and ``update`` its mask update's state (None and {} when a
    checkpoint from before masks were training state is resumed: the start mask holds).
    """

    it: int
    loss_sum: torch.Tensor
    steps: int
    last_loss: float
    evals: list[dict[str, float]]
    mask: Mask | None = None
    update: dict[str, Any] = field(default_factory=dict)


CheckpointCallback = Callable[[list[TrainState]], None]  # one state per replica


@dataclass
class Callbacks:
    """What the caller wants to see: hooks by iteration, evaluations, checkpoints."""

    hooks: Mapping[int, Hook] = field(default_factory=dict)
    on_eval: EvalCallback | None = None
    on_checkpoint: CheckpointCallback | None = None
    on_change: ChangeCallback | None = None  # each mask change (e.g. its statistics to log)


@dataclass
class TrainResult:
    """What a round of training produced. Iterations count from the start of the schedule."""

    end_iter: int
    train_loss: float
    test_acc: float
    test_loss: float
    best_test_acc: float
    best_iter: int
    early_stop_iter: int
    early_stop_test_acc: float
    val_acc: float | None = None
    val_loss: float | None = None
    evals: list[dict[str, float]] = field(default_factory=list)
    mask: Mask | None = None  # the replica's mask at the end of the span


class Stepper(Protocol):
    """One update of K models, their evaluation, their current weights and masks."""

    replicas: int

    def step(self, it: int, lr_factor: float) -> torch.Tensor:
        """Train on batch ``it``; the K training losses, detached ([K]; 0-d when K = 1)."""
        ...

    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Per replica (mean cross-entropy, accuracy) on x [N, ...], y [N]."""
        ...

    def models(self) -> list[nn.Module]:
        """The K models holding their current weights."""
        ...

    def masks(self) -> list[Mask]:
        """The K current masks (bool)."""
        ...

    def set_masks(self, masks: Sequence[Mask],
                  values: Sequence[Mapping[str, torch.Tensor] | None] | None = None) -> None:
        """New masks: dropped weights and their optimizer state zeroed, regrown ones set to
        ``values`` where given (``lth.train.masking.Masking.set``)."""
        ...

    def optimizer_state(self, k: int) -> Callable[[str], Mapping[str, Any]]:
        """Replica k's optimizer state of a parameter, by name."""
        ...

    def dense_grads(self, it: int) -> list[dict[str, torch.Tensor]]:
        """Per replica, the unmasked gradients of batch ``it``'s loss by masked parameter."""
        ...


def summarise(evals: list[dict[str, float]], end_iter: int, train_loss: float,
              mask: Mask | None = None) -> TrainResult:
    """A round's result from its evaluation points (the last one is at ``end_iter``)."""
    last = evals[-1]
    best = max(evals, key=lambda p: p["test/acc"])
    # Early stopping as in Frankle & Carbin: the iteration of minimum validation loss (test loss
    # when no validation split is held out).
    stop_key = "val/loss" if "val/loss" in last else "test/loss"
    stop = min(evals, key=lambda p: p[stop_key])
    return TrainResult(
        end_iter=end_iter, train_loss=train_loss, test_acc=last["test/acc"],
        test_loss=last["test/loss"], best_test_acc=best["test/acc"], best_iter=int(best["iter"]),
        early_stop_iter=int(stop["iter"]), early_stop_test_acc=stop["test/acc"],
        val_acc=last.get("val/acc"), val_loss=last.get("val/loss"), evals=evals, mask=mask,
    )


def base_lrs(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each param group's base rate, kept as ``initial_lr`` so a schedule can rescale it."""
    lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, lrs):
        group["initial_lr"] = lr
    return lrs


def set_lr(optimizer: torch.optim.Optimizer, lrs: Sequence[float], factor: float) -> None:
    """Set each param group's learning rate to its base rate times ``factor``."""
    for group, lr in zip(optimizer.param_groups, lrs):
        group["lr"] = lr * factor


