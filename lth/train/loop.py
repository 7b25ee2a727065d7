"""The training loop: SGD steps over in-memory batches with a mask kept applied.

The loop knows nothing about pruning except that pruned weights (mask False) must stay exactly
zero: their gradients are zeroed before each optimizer step (so momentum, weight decay and Adam
state never build up for them). SGD, Adam and AdamW then leave a weight with zero gradient, zero
value and zero state exactly at zero, so for them that one multiply per step is the whole cost
(weights and state are masked once, at the start); any other optimizer also gets its weights
re-masked after each step. All-True mask tensors (the dense round) cost nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from lth.data import BatchIterator, Dataset
from lth.errors import TrainingError
from lth.train.evaluate import evaluate
from lth.train.schedule import LRFactor

Hook = Callable[[nn.Module], None]
EvalCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainState:
    """The loop's own state when ``it`` iterations are done and nothing of iteration ``it`` has
    run yet (no hook, no evaluation). With the model, optimizer and RNG states (saved by the
    caller) it lets ``train(resume=...)`` continue bit-identically.

    ``loss_sum`` (0-d float32) and ``steps`` accumulate the training loss since the last
    evaluation; ``last_loss`` is the mean reported at that evaluation.
    """

    it: int
    loss_sum: torch.Tensor
    steps: int
    last_loss: float
    evals: list[dict[str, float]]


CheckpointCallback = Callable[[TrainState], None]


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


# With zero gradient, value and state, these optimizers' update of a weight is exactly zero
# (momentum, nesterov, weight decay, Adam moments, amsgrad, maximize, fused or not).
ZERO_PRESERVING = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def _masked_pairs(
    model: nn.Module, mask: Mapping[str, torch.Tensor] | None
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if not mask:
        return [], []
    params = dict(model.named_parameters())
    # An all-True tensor masks nothing: skipping it makes the dense round mask-free.
    names = sorted(n for n in mask if not bool(mask[n].all()))
    # Float copies of the masks, so each step is one fused multiply per list.
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


def _eval_point(model: nn.Module, data: Dataset, it: int, train_loss: float) -> dict[str, float]:
    test_loss, test_acc = evaluate(model, data.x_test, data.y_test)
    point = {"iter": it, "train/loss": train_loss, "test/loss": test_loss, "test/acc": test_acc}
    if data.x_val is not None and data.y_val is not None:
        point["val/loss"], point["val/acc"] = evaluate(model, data.x_val, data.y_val)
    return point


def _summarise(evals: list[dict[str, float]], end_iter: int, train_loss: float) -> TrainResult:
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


def set_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], factor: float) -> None:
    """Set each param group's learning rate to its base rate times ``factor``."""
    for group, lr in zip(optimizer.param_groups, base_lrs):
        group["lr"] = lr * factor


def train(
    model: nn.Module,
    data: Dataset,
    optimizer: torch.optim.Optimizer,
    *,
    start_iter: int,
    end_iter: int,
    batch_size: int,
    seed: int,
    lr_factor: LRFactor,
    mask: Mapping[str, torch.Tensor] | None = None,
    eval_every: int = 0,
    hooks: Mapping[int, Hook] | None = None,
    on_eval: EvalCallback | None = None,
    progress: bool = False,
    desc: str = "train",
    checkpoint_every: int = 0,
    on_checkpoint: CheckpointCallback | None = None,
    resume: TrainState | None = None,
) -> TrainResult:
    """Train ``model`` from iteration ``start_iter`` to ``end_iter`` (exclusive) in place.

    Batch ``it`` is ``BatchIterator(seed).batch(it)`` and its learning rate is the optimizer's
    initial rate times ``lr_factor(it)``, so any span of a schedule can be replayed exactly.
    ``hooks[it](model)`` runs when ``it`` iterations are done (before iteration ``it``).
    Evaluation runs at ``start_iter``, every ``eval_every`` iterations (0: never in between)
    and at ``end_iter``. Raises TrainingError on a non-finite training loss.
    ``on_checkpoint(state)`` runs every ``checkpoint_every`` iterations (0: never) strictly
    between the first and the last iteration; ``resume`` continues from such a state (the
    caller restores model, optimizer and RNG states first).
    """
    hooks = dict(hooks or {})
    batches = BatchIterator(data.x_train, data.y_train, batch_size, seed, augment=data.augment)
    params, masks = _masked_pairs(model, mask)
    mask_weights_and_state(optimizer, params, masks)
    remask = bool(params) and type(optimizer) not in ZERO_PRESERVING
    base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, base_lrs):
        group["initial_lr"] = lr
    model.train()
    loss_sum = torch.zeros((), device=data.x_train.device)
    steps = 0
    evals: list[dict[str, float]] = []
    last_loss = math.nan
    first = start_iter
    if resume is not None:
        first, steps, last_loss = resume.it, resume.steps, resume.last_loss
        loss_sum.copy_(resume.loss_sum)
        evals = list(resume.evals)
    save_every = checkpoint_every if on_checkpoint is not None else 0

    def record(it: int) -> None:
        nonlocal loss_sum, steps, last_loss
        if steps:
            last_loss = float(loss_sum) / steps
            if not math.isfinite(last_loss):
                raise TrainingError(
                    f"training loss became {last_loss} before iteration {it} ({desc}): lower "
                    "optimizer.lr or check the data; completed rounds are kept"
                )
        loss_sum.zero_()
        steps = 0
        point = _eval_point(model, data, it, last_loss)
        evals.append(point)
        if on_eval is not None:
            on_eval(it, point)

    bar = tqdm(total=end_iter - first, desc=desc, disable=not progress, leave=False,
               mininterval=0.5, dynamic_ncols=True)
    for it in range(first, end_iter):
        if save_every and it % save_every == 0 and it != first:
            on_checkpoint(TrainState(it, loss_sum.clone(), steps, last_loss, list(evals)))
        if it in hooks:
            hooks.pop(it)(model)
        if it == start_iter or (eval_every and it % eval_every == 0):
            record(it)
        x, y = batches.batch(it)
        set_lr(optimizer, base_lrs, lr_factor(it))
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if params:
            mask_grads(params, masks)
        optimizer.step()
        if remask:
            with torch.no_grad():
                torch._foreach_mul_(params, masks)
        loss_sum += loss.detach()
        steps += 1
        bar.update(1)
    bar.close()
    if end_iter in hooks:
        hooks.pop(end_iter)(model)
    record(end_iter)
    return _summarise(evals, end_iter, last_loss)
