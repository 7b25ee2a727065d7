"""Instability branches (Frankle et al. 2020): is a round stable to SGD noise?

For a completed round k, two copies are spawned from the round's start weights (the rewind
point under weight rewinding; for the dense round 0, the rewind point ``rewind.pt``) and trained
with the round's mask and span, each with its own data order and augmentation
(``derive_seed(seed, "instability", k, copy)``). They are branches of kind ``instability``
(``round_<k>/instability/copy_<c>/``, records in ``instability_copies.jsonl``), trained and
stored by the lottery's own round API, with mid-training checkpoints like the ticket's.
Once both are stored, the error along the straight path between them is evaluated
(``lth.measure.interpolate``) on the test set and on a fixed training subset; the curve goes
to ``round_<k>/instability/interpolation.json`` and one record (the round's metrics keys plus
the barriers, in percentage points) to ``instability.jsonl``, written last. Nothing of the
ticket is touched, so the analysis can be added to a finished run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from lth.errors import ConfigError
from lth.lottery.driver import Branch, Lottery, Record, RoundStart
from lth.lottery.seeds import derive_seed
from lth.measure.interpolate import alpha_grid, error_curve, has_batchnorm
from lth.pruning import apply_mask, full_mask
from lth.store.store import RunStore
from lth.tracking.wandb_sink import instability_metrics
from lth.train import Span

COPIES = (0, 1)
KIND = "instability"


@dataclass(frozen=True)
class InstabilityOptions:
    """How the path is evaluated: α points, training-subset size, BatchNorm reset."""

    alpha_points: int = 30
    train_samples: int = 1000   # fixed training subset the train-error barrier is taken on
    bn_reset: bool | None = None  # None: on when the model has BatchNorm

    def __post_init__(self) -> None:
        alpha_grid(self.alpha_points)  # ConfigError if < 2
        if self.train_samples < 1:
            raise ConfigError(f"train_samples={self.train_samples} must be at least 1")


def copy_name(copy: int) -> str:
    return f"copy_{copy}"


def copy_seed(seed: int, k: int, copy: int) -> int:
    """The data-order seed of instability copy ``copy`` of round ``k``."""
    return derive_seed(seed, "instability", k, copy)


def check_spawn(lottery: Lottery, k: int) -> None:
    """ConfigError if the start weights of round ``k`` are not stored."""
    s, store = lottery.settings, lottery.store
    needed = (store.rewind_path if k == 0 or s.retrain == "weight_rewind"
              else store.final_path(k - 1))
    if not needed.is_file():
        raise ConfigError(f"{needed} is missing: round {k}'s start weights are needed to spawn "
                          "the instability copies; rerun experiments.lottery on this run")


def copy_start(lottery: Lottery, k: int, copy: int) -> RoundStart:
    """Instability copy ``copy`` of the stored round ``k``, at the round's start weights."""
    check_spawn(lottery, k)
    s, began = lottery.settings, time.perf_counter()
    states = lottery.states
    model = states.initial_model()
    if k == 0:
        model.load_state_dict(states.load_state(model, lottery.store.rewind_path))
        mask, span = full_mask(model, s.include_bias), Span(s.rewind_iter, s.iterations,
                                                            lottery.lr_factor)
    else:
        mask = states.load_mask(model, k)
        span = states.start_weights(k, model)
        apply_mask(model, mask)
    seed = copy_seed(s.seed, k, copy)
    branch = Branch(copy_name(copy), {"copy": copy, "instability_seed": seed,
                                      "spawn_iter": span.start}, kind=KIND, data_seed=seed)
    return RoundStart(k, model, mask, span, {}, began, branch)


def train_subset(lottery: Lottery, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training samples of a fixed permutation (the same for every seed)."""
    x, y = lottery.data.x_train, lottery.data.y_train
    gen = torch.Generator().manual_seed(derive_seed(0, KIND, "train_subset"))
    idx = torch.randperm(x.shape[0], generator=gen)[:n].to(x.device)
    return x[idx], y[idx]


def analyse(lottery: Lottery, k: int, options: InstabilityOptions) -> Record:
    """Evaluate the path between round ``k``'s two stored copies; store and log its record."""
    began, store = time.perf_counter(), lottery.store
    model = lottery.states.initial_model()
    w1, w2 = (lottery.states.load_state(model, store.final_path(k, copy_name(c), KIND))
              for c in COPIES)
    mask = store.load_tensors(store.mask_path(k, copy_name(0), KIND))
    bn = has_batchnorm(model) if options.bn_reset is None else options.bn_reset
    train = train_subset(lottery, options.train_samples)
    size = lottery.settings.batch_size
    bn_batches = ([train[0][i:i + size] for i in range(0, train[0].shape[0], size)]
                  if bn and has_batchnorm(model) else None)
    curve = error_curve(model, w1, w2, alpha_grid(options.alpha_points), test=(
        lottery.data.x_test, lottery.data.y_test), train=train, mask=mask,
        bn_batches=bn_batches)
    store.write_text(store.interpolation_path(k), json.dumps({
        "alpha": curve.alphas, "test_err": curve.test_err, "train_err": curve.train_err,
        "bn_reset": curve.bn_reset, "alpha_weighs": copy_name(0)}))
    copies = {r["copy"]: r for r in store.read_branches(KIND) if r["round"] == k}
    ticket = next(r for r in store.read_metrics() if r["round"] == k)
    record: Record = {
        **ticket, "spawn_iter": copies[0]["spawn_iter"],
        "barrier_test": curve.barrier_test, "barrier_train": curve.barrier_train,
        "copy_test_err": [curve.test_err[-1], curve.test_err[0]],
        "copy_train_err": [curve.train_err[-1], curve.train_err[0]],
        "alpha_points": options.alpha_points, "train_samples": train[0].shape[0],
        "bn_reset": curve.bn_reset, "instability_seeds": [copies[c]["instability_seed"]
                                                          for c in COPIES],
        "copy_wall_s": [copies[c]["wall_s"] for c in COPIES],
        "analysis_wall_s": round(time.perf_counter() - began, 3),
    }
    store.append_instability(record)
    lottery.sink.log_round(instability_metrics(record))
    return record


def pending_instability(store: RunStore, rounds: Iterable[int] | None = None) -> list[int]:
    """Completed rounds (or ``rounds``, which must be completed) without an instability
    record, in order."""
    done = {r["round"] for r in store.read_instability()}
    completed = store.completed_rounds(rounds)
    return [k for k in completed if k not in done]


def missing_copies(lottery: Lottery, k: int) -> list[int]:
    """Round ``k``'s instability copies not yet stored."""
    done = {r["copy"] for r in lottery.store.read_branches(KIND) if r["round"] == k}
    return [c for c in COPIES if c not in done]


def run_instability(lottery: Lottery, k: int, options: InstabilityOptions) -> Record:
    """Train round ``k``'s missing copies (resuming a checkpointed one), then analyse."""
    for c in missing_copies(lottery, k):
        start = copy_start(lottery, k, c)
        lottery.finish_round(start, lottery.train_round(start))
    return analyse(lottery, k, options)
