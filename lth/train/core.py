"""The one training loop: K >= 1 models stepped together through a small ``Stepper``.

Everything a training run does besides the update itself is written here once: the step
order, evaluation points, the non-finite-loss check, the progress bar, hooks at given
iterations, mid-round checkpoints and resuming from them. What an update is lives in the
stepper: one model (``lth.train.loop``), K stacked replicas (``lth.train.replicas``) or a
student learning from a teacher (``lth.train.distill``).

Iterations are the unit of time. At iteration ``it`` the loop, in this order: offers a
checkpoint (every ``checkpoint_every``, never at the first or last iteration; at once when a
preemption signal came, then stops: ``lth.train.preempt``), runs the hook of
``it``, evaluates (at ``span.start`` and every ``eval_every``), then takes the step of ``it``
with the learning-rate factor ``span.lr(it)``. At ``span.end`` it runs the last hook and
evaluates once more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from lth.data import Dataset
from lth.errors import TrainingError
from lth.train import preempt
from lth.train.schedule import LRFactor

Hook = Callable[[list[nn.Module]], None]  # sees every replica's current weights
EvalCallback = Callable[[int, int, dict[str, float]], None]  # (replica, iteration, point)


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
    evaluation; ``last_loss`` is the mean reported at that evaluation.
    """

    it: int
    loss_sum: torch.Tensor
    steps: int
    last_loss: float
    evals: list[dict[str, float]]


CheckpointCallback = Callable[[list[TrainState]], None]  # one state per replica


@dataclass
class Callbacks:
    """What the caller wants to see: hooks by iteration, evaluations, checkpoints."""

    hooks: Mapping[int, Hook] = field(default_factory=dict)
    on_eval: EvalCallback | None = None
    on_checkpoint: CheckpointCallback | None = None


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


class Stepper(Protocol):
    """One update of K models, their evaluation, and their current weights."""

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


def summarise(evals: list[dict[str, float]], end_iter: int, train_loss: float) -> TrainResult:
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
        val_acc=last.get("val/acc"), val_loss=last.get("val/loss"), evals=evals,
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


class _Tally:
    """The K replicas' loss accumulators and evaluation points."""

    def __init__(self, k: int, device: torch.device, resume: Sequence[TrainState] | None):
        self.loss_sum = torch.zeros(k, device=device)
        self.steps = 0
        self.last_loss = [math.nan] * k
        self.evals: list[list[dict[str, float]]] = [[] for _ in range(k)]
        if resume:
            if len(resume) != k or len({s.it for s in resume}) != 1:
                raise ValueError("resume needs one state per replica, all at one iteration")
            self.steps = resume[0].steps
            self.last_loss = [s.last_loss for s in resume]
            self.evals = [list(s.evals) for s in resume]
            for j, s in enumerate(resume):
                self.loss_sum[j].copy_(s.loss_sum)

    def states(self, it: int) -> list[TrainState]:
        return [TrainState(it, self.loss_sum[j].clone(), self.steps, self.last_loss[j],
                           list(self.evals[j])) for j in range(len(self.evals))]

    def close_interval(self, it: int, options: LoopOptions) -> None:
        """The mean loss since the last evaluation; TrainingError if it is not finite."""
        if self.steps:
            self.last_loss = [v / self.steps for v in self.loss_sum.tolist()]
            bad = [j for j, v in enumerate(self.last_loss) if not math.isfinite(v)]
            if bad:
                names = options.replica_names or [f"replica {j}" for j in
                                                  range(len(self.last_loss))]
                which = (f", {', '.join(names[j] for j in bad)}"
                         if len(self.last_loss) > 1 else "")
                raise TrainingError(
                    f"training loss became {self.last_loss[bad[0]]} before iteration {it} "
                    f"({options.desc}{which}): lower optimizer.lr or check the data; "
                    "completed rounds are kept"
                )
        self.loss_sum.zero_()
        self.steps = 0


def _eval_points(stepper: Stepper, data: Dataset, it: int,
                 train_loss: list[float]) -> list[dict[str, float]]:
    test_loss, test_acc = stepper.evaluate(data.x_test, data.y_test)
    points = [{"iter": it, "train/loss": tl, "test/loss": lo, "test/acc": acc}
              for tl, lo, acc in zip(train_loss, test_loss, test_acc)]
    if data.x_val is not None and data.y_val is not None:
        for point, lo, acc in zip(points, *stepper.evaluate(data.x_val, data.y_val)):
            point["val/loss"], point["val/acc"] = lo, acc
    return points


def _saver(callbacks: Callbacks, tally: _Tally, span: Span, it: int
           ) -> Callable[[], None] | None:
    """What writes the checkpoint of iteration ``it`` on preemption (None: nothing to keep)."""
    save = callbacks.on_checkpoint
    if save is None or it == span.start:
        return None
    return lambda: save(tally.states(it))


def run_loop(stepper: Stepper, data: Dataset, span: Span, options: LoopOptions = LoopOptions(),
             callbacks: Callbacks = Callbacks(),
             resume: Sequence[TrainState] | None = None) -> list[TrainResult]:
    """Train ``stepper``'s K models over ``span``; one TrainResult per replica.

    ``resume`` continues from the states a checkpoint callback was given (the caller restores
    models, optimizer and RNG states first). Raises TrainingError on a non-finite loss.
    """
    hooks = dict(callbacks.hooks)
    tally = _Tally(stepper.replicas, data.x_train.device, resume)
    first = resume[0].it if resume else span.start
    save_every = options.checkpoint_every if callbacks.on_checkpoint is not None else 0

    def record(it: int) -> None:
        tally.close_interval(it, options)
        for j, point in enumerate(_eval_points(stepper, data, it, tally.last_loss)):
            tally.evals[j].append(point)
            if callbacks.on_eval is not None:
                callbacks.on_eval(j, it, point)

    bar = tqdm(total=span.end - first, desc=options.desc, disable=not options.progress,
               leave=False, mininterval=0.5, dynamic_ncols=True)
    for it in range(first, span.end):
        if save_every and it % save_every == 0 and it != first:
            callbacks.on_checkpoint(tally.states(it))  # type: ignore[misc]
        if preempt.requested() is not None:
            preempt.raise_if_requested(it, options.desc, _saver(callbacks, tally, span, it))
        if it in hooks:
            hooks.pop(it)(stepper.models())
        if it == span.start or (options.eval_every and it % options.eval_every == 0):
            record(it)
        tally.loss_sum += stepper.step(it, span.lr(it))
        tally.steps += 1
        bar.update(1)
    bar.close()
    if span.end in hooks:
        hooks.pop(span.end)(stepper.models())
    record(span.end)
    return [summarise(evals, span.end, loss) for evals, loss in zip(tally.evals,
                                                                     tally.last_loss)]
