"""The one training loop: K >= 1 models stepped together through a small ``Stepper``.

Everything a training run does besides the update itself is written here once: the step
order, evaluation points, the non-finite-loss check, the progress bar, hooks at given
iterations, mid-round checkpoints and resuming from them. What an update is lives in the
stepper: one model (``lth.train.loop``), K stacked replicas (``lth.train.replicas``) or a
student learning from a teacher (``lth.train.distill``).

Iterations are the unit of time. At iteration ``it`` the loop, in this order: offers a
checkpoint (every ``checkpoint_every``, never at the first or last iteration; at once when a
preemption signal came, then stops: ``lth.train.preempt``), runs the hook of ``it``, runs each
replica's mask update if it is due (``lth.train.masking``: the mask is training state, held
by the stepper), evaluates (at ``span.start`` and every ``eval_every``), then takes the step
of ``it`` with the learning-rate factor ``span.lr(it)``. At ``span.end`` it runs the last hook
and the updates due then, and evaluates once more. A checkpoint holds every replica's current
mask and its update's state, so resuming after a mask change is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from tqdm.auto import tqdm

from lth.data import Dataset
from lth.errors import TrainingError
from lth.train import preempt
from lth.train.masking import NO_UPDATE, Mask, MaskUpdate, UpdateContext, same_mask
from lth.train.parts import (
    Callbacks,
    ChangeCallback,
    CheckpointCallback,
    EvalCallback,
    Hook,
    LoopOptions,
    Span,
    Stepper,
    TrainResult,
    TrainState,
    base_lrs,
    set_lr,
    summarise,
)

__all__ = ["Callbacks", "ChangeCallback", "CheckpointCallback", "EvalCallback", "Hook",
           "LoopOptions", "Span", "Stepper", "TrainResult", "TrainState", "base_lrs",
           "run_loop", "set_lr", "summarise"]


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

    def states(self, it: int, masks: Sequence[Mask],
               updates: Sequence[MaskUpdate]) -> list[TrainState]:
        return [TrainState(it, self.loss_sum[j].clone(), self.steps, self.last_loss[j],
                           list(self.evals[j]), dict(masks[j]), updates[j].state_dict())
                for j in range(len(self.evals))]

    def record(self, stepper: Stepper, data: Dataset, it: int, options: LoopOptions,
               callbacks: Callbacks) -> None:
        """Close the loss interval and evaluate every replica at ``it``."""
        self.close_interval(it, options)
        for j, point in enumerate(_eval_points(stepper, data, it, self.last_loss)):
            self.evals[j].append(point)
            if callbacks.on_eval is not None:
                callbacks.on_eval(j, it, point)

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
                    "completed rounds are kept", members=tuple(bad)
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


def _update_masks(stepper: Stepper, updates: Sequence[MaskUpdate], it: int,
                  callbacks: Callbacks) -> None:
    """Run the updates due at ``it``; hand their new masks to the stepper at once."""
    due = [j for j, u in enumerate(updates) if u.due(it)]
    if not due:
        return
    grads: list[list[dict[str, torch.Tensor]]] = []

    def dense_grads(j: int) -> dict[str, torch.Tensor]:
        if not grads:  # one forward and backward for every replica, only when asked
            grads.append(stepper.dense_grads(it))
        return grads[0][j]

    models, masks = stepper.models(), list(stepper.masks())
    values: list[dict[str, torch.Tensor] | None] = [None] * len(masks)
    changed = False
    for j in due:
        ctx = UpdateContext(it, j, masks[j], models[j], stepper.optimizer_state(j),
                            lambda j=j: dense_grads(j))
        change = updates[j].update(ctx)
        if change is not None:
            masks[j], values[j], changed = change.mask, change.values, True
            if callbacks.on_change is not None:
                callbacks.on_change(j, it, change)
    if changed:
        stepper.set_masks(masks, values)


def _resume(stepper: Stepper, updates: Sequence[MaskUpdate],
            resume: Sequence[TrainState]) -> None:
    """The checkpoint's masks (where they differ from the stepper's) and update states."""
    current = stepper.masks()
    masks = [s.mask if s.mask is not None else m for s, m in zip(resume, current)]
    if not all(same_mask(a, b) for a, b in zip(masks, current)):
        stepper.set_masks(masks)
    for u, s in zip(updates, resume):
        if s.update:
            u.load_state_dict(s.update)


def _saver(callbacks: Callbacks, save: Callable[[int], list[TrainState]], span: Span, it: int
           ) -> Callable[[], None] | None:
    """What writes the checkpoint of iteration ``it`` on preemption (None: nothing to keep)."""
    on_checkpoint = callbacks.on_checkpoint
    if on_checkpoint is None or it == span.start:
        return None
    return lambda: on_checkpoint(save(it))


def run_loop(stepper: Stepper, data: Dataset, span: Span, options: LoopOptions = LoopOptions(),
             callbacks: Callbacks = Callbacks(),
             resume: Sequence[TrainState] | None = None,
             updates: Sequence[MaskUpdate] | None = None) -> list[TrainResult]:
    """Train ``stepper``'s K models over ``span``; one TrainResult per replica.

    ``updates`` (one per replica; default none) may change the masks within the span.
    ``resume`` continues from the states a checkpoint callback was given (the caller restores
    models, optimizer and RNG states first; the masks and update states are in the states).
    Raises TrainingError on a non-finite loss.
    """
    hooks = dict(callbacks.hooks)
    updates = _updates(stepper, updates)
    active = any(u is not NO_UPDATE for u in updates)
    tally = _Tally(stepper.replicas, data.x_train.device, resume)
    if resume:
        _resume(stepper, updates, resume)
    first = resume[0].it if resume else span.start
    save_every = options.checkpoint_every if callbacks.on_checkpoint is not None else 0

    def states(it: int) -> list[TrainState]:
        return tally.states(it, stepper.masks(), updates)

    def at(it: int) -> None:  # what happens when ``it`` iterations are done
        if it in hooks:
            hooks.pop(it)(stepper.models())
        if active:
            _update_masks(stepper, updates, it, callbacks)

    bar = tqdm(total=span.end - first, desc=options.desc, disable=not options.progress,
               leave=False, mininterval=0.5, dynamic_ncols=True)
    for it in range(first, span.end):
        if save_every and it % save_every == 0 and it != first:
            callbacks.on_checkpoint(states(it))  # type: ignore[misc]
        if preempt.requested() is not None:
            preempt.raise_if_requested(it, options.desc, _saver(callbacks, states, span, it))
        at(it)
        if it == span.start or (options.eval_every and it % options.eval_every == 0):
            tally.record(stepper, data, it, options, callbacks)
        tally.loss_sum += stepper.step(it, span.lr(it))
        tally.steps += 1
        bar.update(1)
    bar.close()
    at(span.end)
    tally.record(stepper, data, span.end, options, callbacks)
    return [summarise(evals, span.end, loss, dict(mask)) for evals, loss, mask in
            zip(tally.evals, tally.last_loss, stepper.masks())]


def _updates(stepper: Stepper, updates: Sequence[MaskUpdate] | None) -> list[MaskUpdate]:
    """One update per replica (none given: IMP's constant masks)."""
    out = list(updates) if updates is not None else [NO_UPDATE] * stepper.replicas
    if len(out) != stepper.replicas:
        raise ValueError(f"{len(out)} mask updates for {stepper.replicas} replicas")
    return out
