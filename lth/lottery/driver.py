"""The IMP driver: train, prune, rewind, retrain, round after round, resumably.

Round 0 trains the dense network and saves the rewind point. Round k >= 1 prunes the trained
weights of round k-1 to the scheduled density and retrains according to ``retrain``:

- ``weight_rewind``: survivors reset to the rewind point, schedule replayed from it
  (Frankle & Carbin 2019; late rewinding, Frankle et al. 2020);
- ``lr_rewind``: trained weights kept, learning-rate schedule replayed from the rewind point
  (Renda et al. 2020);
- ``finetune``: trained weights kept, ``finetune_iters`` more iterations at the final rate.

Round k's target density is ``(1 - p) ** k`` per group; with ``oneshot`` round 1 prunes the
dense trained network straight to the density of ``rounds`` rounds (and is the last round);
with ``schedule`` round k targets ``schedule[k - 1]`` (see ``LotterySettings``); with ``at_init``
each round prunes its own start weights (``lth.lottery.prune_inputs``).

A round is begun (``begin_round``: its model at the start state, mask, span, hooks), trained
(``train_round``) and finished (``finish_round``: files, record, sink). Branches trained beside
a stored round (``lth.lottery.controls``, the copies of ``lth.lottery.instability``) go through
the same three steps with a ``Branch``. With ``early_bird_every`` round 0 also runs early-bird
detection (``lth.lottery.early_bird``) as hooks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.data import Dataset
from lth.faults import kill_point, with_signal_hook
from lth.lottery.cost import round_cost
from lth.lottery.early_bird import EarlyBirdTracker, early_bird_mask
from lth.lottery.settings import LotterySettings
from lth.lottery.states import RunStates
from lth.measure.supermask import supermask_test_acc
from lth.pruning import (
    Mask,
    apply_mask,
    full_mask,
    layer_density,
    layer_rates,
    prune_mask,
    remaining,
    total,
)
from lth.pruning.structured import ChannelPruner
from lth.store.store import RunStore
from lth.tracking import Sink
from lth.tracking.wandb_sink import control_metrics
from lth.train import (
    LoopOptions,
    Span,
    TrainResult,
    TrainState,
    checkpoint,
    train,
)
from lth.train.accel import Accel
from lth.train.checkpoint import Checkpoint
from lth.train.distributed import Dist, barrier, check_same_mask
from lth.train.schedule import LRFactor

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
Record = dict[str, Any]


@dataclass(frozen=True)
class Branch:
    """A run trained beside a stored round: ``round_<k>/<kind>/<name>/``, its record in the
    kind's JSONL file (``RunStore.branch_log_path``) with ``fields`` added (e.g. the
    control's name and seed). ``data_seed`` replaces the run's data order (None: the
    ticket's own, as controls replay it)."""

    name: str
    fields: Mapping[str, Any]
    kind: str = "controls"
    data_seed: int | None = None


@dataclass
class RoundStart:
    """A round ready to train: its model (at the start state), mask, span and hooks."""

    k: int
    model: nn.Module
    mask: Mask
    span: Span
    hooks: dict[int, Callable[[nn.Module], None]]
    began: float  # perf_counter() when the round began (earlier by a resumed run's time)
    branch: Branch | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more record keys, set while training
    early_bird: EarlyBirdTracker | None = None  # round 0's detector (analysis.early_bird_every)


@dataclass
class Lottery:
    """One IMP experiment: settings, data, how to build the model and optimizer, where to log.

    ``pruner`` has ``prune_mask``'s signature (``lth.pruning.structured.ChannelPruner`` for
    channel pruning); ``versions`` (lth version, commit, ...) is noted in run.json for each
    round this process completes; ``accel``: precision and compilation of the training step.
    """

    settings: LotterySettings
    data: Dataset
    make_model: Callable[[], nn.Module]
    make_optimizer: OptimizerFactory
    lr_factor: LRFactor
    store: RunStore
    sink: Sink
    device: torch.device
    progress: bool = False
    pruner: Callable[..., Mask] = prune_mask
    versions: Mapping[str, str] = field(default_factory=dict)
    accel: Accel = field(default_factory=Accel)
    dist: Dist | None = None  # data parallelism: this rank (store and sink are rank 0's)

    @property
    def states(self) -> RunStates:
        """The run's stored start states (init, rewind point, rounds' weights and masks)."""
        return RunStates(self.store, self.settings, self.make_model, self.lr_factor,
                         self.device)

    def _prune(self, k: int, model: nn.Module) -> tuple[Mask, Span]:
        """Round k's (>= 1) mask, with ``model`` at its start state (unmasked) and its span."""
        s = self.settings
        inputs = self.states.prune_inputs(k, model)
        mask = early_bird_mask(self.store, model) if k == 1 and s.early_bird_ticket else None
        if mask is None:
            rates = layer_rates(model, sorted(inputs.mask), s.rates)
            mask = self.pruner(inputs.weights, inputs.mask, strategy=s.strategy,
                               densities=s.round_densities(k, rates), seed=s.prune_seed(k),
                               initial=inputs.initial)
        return mask, self.states.start_weights(k, model, None if s.at_init else inputs.weights)

    def begin_round(self, k: int) -> RoundStart:
        """Round ``k``'s model at its start state, mask, span and hooks (no training yet)."""
        began = time.perf_counter()
        if self.versions:
            self.store.read_info()  # fail before training, not after, if run.json is damaged
        model = self.states.initial_model()
        s, hooks, extra = self.settings, {}, {}
        tracker = None
        if k == 0:
            mask, span = full_mask(model, s.include_bias), Span(0, s.iterations, self.lr_factor)
            hooks[s.rewind_iter] = lambda m: self.store.save_tensors(
                self.store.rewind_path, m.state_dict())
            if s.early_bird_every:
                tracker = EarlyBirdTracker(self.states, self.pruner, extra)
                tracker.add_hooks(hooks, span.start, span.end)
        else:
            mask, span = self._prune(k, model)
            check_same_mask(mask, self.dist, f"round {k}")
            apply_mask(model, mask)
            if k == 1 and s.early_bird_ticket:
                extra["early_bird_ticket"] = self.store.early_bird_mask_path.exists()
        return RoundStart(k, model, mask, span, hooks, began, extra=extra, early_bird=tracker)

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_path(self, start: RoundStart) -> Path:
        """Where the mid-round checkpoint of a begun round (or branch) is kept."""
        b = start.branch
        return (self.store.checkpoint_path(start.k) if b is None
                else self.store.checkpoint_path(start.k, b.name, b.kind))

    def load_checkpoint(self, start: RoundStart) -> Checkpoint | None:
        """The mid-round checkpoint of ``start``, if there is one (not restored)."""
        path = self.checkpoint_path(start)
        if not path.exists():
            return None
        obj = self.store.load(path, f"delete it to restart round {start.k} from its beginning")
        return checkpoint.unpack(obj, path, start.k, (start.span.start, start.span.end))

    def save_checkpoint(self, start: RoundStart, ckpt: Checkpoint) -> None:
        """Store the mid-round checkpoint of ``start`` (a round or a branch)."""
        span = (start.span.start, start.span.end)
        self.store.save(self.checkpoint_path(start), checkpoint.pack(start.k, span, ckpt))

    def loop_options(self, start: RoundStart, desc: str) -> LoopOptions:
        """Evaluation and checkpoint intervals of a round or branch."""
        every = self.settings.checkpoint_every
        return LoopOptions(eval_every=self.settings.eval_every, checkpoint_every=every,
                           progress=self.progress, desc=desc)

    # -- training ------------------------------------------------------------------------------
    def train_round(self, start: RoundStart) -> TrainResult:
        """Train a begun round (resuming from its checkpoint); the model holds the result."""
        s, k, model = self.settings, start.k, start.model
        optimizer = self.make_optimizer(model.parameters())
        scaler = self.accel.scaler(self.device)
        ckpt, resume = self.load_checkpoint(start), None
        if ckpt is not None:
            checkpoint.restore(ckpt, self.checkpoint_path(start), k, model,
                               lambda state: checkpoint.load_optimizer(optimizer, scaler, state))
            resume, start.began = ckpt.state, start.began - ckpt.wall_s
            if start.early_bird is not None and "early_bird" in ckpt.extra:
                start.early_bird.load(ckpt.extra["early_bird"])
        elif start.early_bird is not None:  # round 0 from its start: an old early-bird mask is
            self.store.remove(self.store.early_bird_mask_path)  # not this training's

        def save(state: TrainState) -> None:
            wall = time.perf_counter() - start.began
            extra = {"early_bird": start.early_bird.state()} if start.early_bird else None
            optim = checkpoint.optimizer_state(optimizer, scaler)
            self.save_checkpoint(start, checkpoint.capture(state, model, optim, wall, extra))
            where = f":{start.branch.kind}:{start.branch.name}" if start.branch else ""
            kill_point(f"checkpoint:{k}:{state.it}{where}")

        branch = start.branch
        name = f"round {k}" + (f" {branch.name}" if branch else "")
        log_curve = branch is None
        seed = branch.data_seed if branch and branch.data_seed is not None else s.data_seed
        return train(
            model, self.data, optimizer, start.span, batch_size=s.batch_size,
            seed=seed, mask=start.mask, options=self.loop_options(start, name),
            hooks=with_signal_hook(start.hooks, k), resume=resume, accel=self.accel,
            on_checkpoint=save, dist=self.dist, scaler=scaler,
            on_eval=(lambda it, point: self.sink.log_curve(k, it, point)) if log_curve else None,
        )

    def record(self, start: RoundStart, result: TrainResult) -> Record:
        """The round's (or branch's) record: density, accuracies, iterations, wall time."""
        mask, kept, size = start.mask, remaining(start.mask), total(start.mask)
        record: Record = {
            "round": start.k, "density": kept / size, "sparsity": 1 - kept / size,
            "remaining": kept, "total": size, "test_acc": result.test_acc,
            "test_loss": result.test_loss, "best_test_acc": result.best_test_acc,
            "best_iter": result.best_iter, "early_stop_iter": result.early_stop_iter,
            "early_stop_test_acc": result.early_stop_test_acc, "train_loss": result.train_loss,
            "iterations": start.span.iterations,
            "wall_s": round(time.perf_counter() - start.began, 3),
            "layer_density": layer_density(mask),
            **round_cost(start.model, mask, self.data.x_train[:8],
                         isinstance(self.pruner, ChannelPruner)),
        }
        if result.val_acc is not None:
            record.update(val_acc=result.val_acc, val_loss=result.val_loss)
        record.update(start.extra)
        if self.settings.supermask and start.branch is None and start.k >= 1:
            record["supermask_test_acc"] = supermask_test_acc(
                self.states.initial_model(), mask, self.data, self.settings.supermask_constant)
        if start.branch is not None:
            record.update(start.branch.fields)
        return record

    def finish_round(self, start: RoundStart, result: TrainResult) -> Record:
        """Store the round's (or branch's) files and record (the record last) and log it."""
        k, branch = start.k, start.branch
        name, kind = (branch.name, branch.kind) if branch else (None, "controls")
        record = self.record(start, result)
        self.store.save_tensors(self.store.mask_path(k, name, kind), start.mask)
        self.store.save_tensors(self.store.final_path(k, name, kind), start.model.state_dict())
        self.store.write_text(self.store.curve_path(k, name, kind), json.dumps(result.evals))
        if branch is not None:
            self.store.append_branch(kind, record)
            self.store.remove(self.checkpoint_path(start))
            if kind == "controls":
                self.sink.log_round(control_metrics(record))
        else:
            if self.versions:
                self.store.note_round_versions(k, self.versions)
            self.store.append_metrics(record)
            self.store.remove(self.store.checkpoint_path(k))
            self.sink.log_round(record)
        barrier(self.dist)  # data parallel: the other ranks read the files rank 0 wrote
        return record

    def run_round(self, k: int) -> Record:
        """Run round ``k`` (its predecessors must be complete) and store its files."""
        start = self.begin_round(k)
        return self.finish_round(start, self.train_round(start))

    # -- the rounds ----------------------------------------------------------------------------
    def pending_rounds(self) -> list[int]:
        """Rounds not yet complete, in order."""
        return self.store.pending_rounds(self.settings.last_round)

    def remove_stale_checkpoints(self) -> None:
        """Delete checkpoints of completed rounds (a kill between a round's metrics line and
        its checkpoint's removal leaves one)."""
        for k in range(len(self.store.read_metrics())):
            if self.store.checkpoint_path(k).exists():
                self.store.remove(self.store.checkpoint_path(k))

    def run(self, on_round: Callable[[Record], None] | None = None) -> list[Record]:
        """Run every pending round; returns all records, stored ones included."""
        self.remove_stale_checkpoints()
        for k in self.pending_rounds():
            record = self.run_round(k)
            if on_round is not None:
                on_round(record)
        return self.store.read_metrics()
