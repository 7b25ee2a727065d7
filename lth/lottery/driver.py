"""The IMP driver: train, prune, rewind, retrain, round after round, resumably.

Round 0 trains the dense network and saves the rewind point. Round k >= 1 prunes the trained
weights of round k-1 to the scheduled density and retrains according to ``retrain``:

- ``weight_rewind``: survivors reset to the rewind point, schedule replayed from it
  (Frankle & Carbin 2019; late rewinding, Frankle et al. 2020);
- ``lr_rewind``: trained weights kept, learning-rate schedule replayed from the rewind point
  (Renda et al. 2020);
- ``finetune``: trained weights kept, ``finetune_iters`` more iterations at the final rate
  (0: none, the pruned network is only evaluated: one-shot pruning without retraining).

A criterion that updates the kept weights when it prunes (SparseGPT, through the pruner's
``solve``) hands them to the round: under ``lr_rewind`` and ``finetune`` the round starts
from them; ``weight_rewind`` rewinds them like any other.

Round k's target density is ``(1 - p) ** k`` per group; with ``oneshot`` round 1 prunes the
dense trained network straight to the density of ``rounds`` rounds (and is the last round);
with ``schedule`` round k targets ``schedule[k - 1]`` (see ``LotterySettings``); with ``at_init``
each round prunes its own start weights (``lth.lottery.states``).

A round is begun (``begin_round``: its model at the start state, mask, span, hooks, mask
update), trained (``train_round``, through ``lth.lottery.span``) and finished
(``finish_round``: files, record, sink). Branches trained beside a stored round
(``lth.lottery.controls``, the copies of ``lth.lottery.instability``) go through the same
three steps with a ``Branch``; several begun rounds or branches train as one replica group
(``lth.lottery.replicas``). IMP's mask is constant within a round; with
``early_bird_every`` round 0's mask update observes it (``lth.lottery.early_bird``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.lottery import span as spans
from lth.lottery.cost import round_cost, training_cost
from lth.lottery.early_bird import EarlyBirdDetector, early_bird_mask
from lth.lottery.settings import LotterySettings
from lth.lottery.span import Branch, Member, Record, RoundStart
from lth.lottery.sparse import SparseTraining
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
from lth.pruning.densities import mask_densities
from lth.store import RunStore
from lth.tracking import Sink
from lth.tracking.wandb_sink import control_metrics
from lth.train import LoopOptions, Span, TrainResult
from lth.train.accel import Accel
from lth.train.core import Stepper
from lth.train.distributed import Dist, barrier, check_same_mask
from lth.train.loop import SingleStepper
from lth.train.masking import Chain, MaskChange, MaskUpdate
from lth.train.replicas import ReplicaStepper
from lth.train.schedule import LRFactor

OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
UpdateFactory = Callable[[RoundStart], MaskUpdate | None]

__all__ = ["Branch", "Lottery", "Record", "RoundStart"]


@dataclass
class Lottery:
    """One IMP experiment: settings, data, how to build the model and optimizer, where to log.

    ``pruner`` has ``prune_mask``'s signature (``lth.pruning.pruner.Pruner`` for every
    registered score; its ``granularity`` says whether it prunes whole channels);
    ``versions`` (lth version, commit, ...) is noted in run.json for each round this process
    completes; ``accel``: precision and compilation of the training step;
    ``mask_update(start)`` gives a begun round the update that may change its mask during
    its training (its state is checkpointed with the round).
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
    mask_update: UpdateFactory | None = None  # a round's mask update (None: IMP's constant)
    sparse: SparseTraining | None = None  # sparse training: round 0 from its start mask, updated

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
        final = None if s.at_init else inputs.weights
        if mask is None:
            rates = layer_rates(model, sorted(inputs.mask), s.rates)
            densities = s.round_densities(k, rates) if s.distribution is None else \
                mask_densities(inputs.mask, s.round_density(k), s.distribution)
            args = dict(strategy=s.strategy, densities=densities, seed=s.prune_seed(k),
                        initial=inputs.initial)
            solve = getattr(self.pruner, "solve", None)
            if solve is None:
                mask = self.pruner(inputs.weights, inputs.mask, **args)
            else:  # a criterion that updates the kept weights (SparseGPT) trains on from them
                pruned = solve(inputs.weights, inputs.mask, **args)
                mask, updated = pruned.mask, pruned.weights or {}
                final = None if final is None else {**final, **updated}
        return mask, self.states.start_weights(k, model, final)

    def begin_round(self, k: int) -> RoundStart:
        """Round ``k``'s model at its start state, mask, span and hooks (no training yet)."""
        began = time.perf_counter()
        if self.versions:
            self.store.read_info()  # fail before training, not after, if run.json is damaged
        model = self.states.initial_model()
        s, hooks, extra = self.settings, {}, {}
        start = RoundStart(k, model, {}, Span(0, s.iterations, self.lr_factor), hooks, began,
                           extra=extra)
        updates: list[MaskUpdate] = []
        if k == 0:
            start.mask = full_mask(model, s.include_bias)
            if self.sparse is not None:
                start.mask = self.sparse.start_mask(start.mask, s.seed)
                apply_mask(model, start.mask)
                sparse_update = self.sparse.update(start.mask, s.seed)
                updates += [sparse_update] if sparse_update is not None else []
            hooks[s.rewind_iter] = lambda m: self.store.save_tensors(
                self.store.rewind_path, m.state_dict())
            if s.early_bird_every:
                updates.append(EarlyBirdDetector(self.states, self.pruner, extra, 0,
                                                 s.iterations))
                if not self.store.checkpoint_path(0).exists():  # an old early-bird mask is
                    self.store.remove(self.store.early_bird_mask_path)  # not this training's
        else:
            start.mask, start.span = self._prune(k, model)
            check_same_mask(start.mask, self.dist, f"round {k}")
            apply_mask(model, start.mask)
            if k == 1 and s.early_bird_ticket:
                extra["early_bird_ticket"] = self.store.early_bird_mask_path.exists()
        own = self.mask_update(start) if self.mask_update is not None else None
        updates += [own] if own is not None else []
        if updates:
            start.update = updates[0] if len(updates) == 1 else Chain(updates)
        return start

    # -- training ------------------------------------------------------------------------------
    def loop_options(self, desc: str, names: Sequence[str] = ()) -> LoopOptions:
        """Evaluation and checkpoint intervals of a round, branch or group (``names``: how
        errors name each member of a group)."""
        return LoopOptions(eval_every=self.settings.eval_every,
                           checkpoint_every=self.settings.checkpoint_every,
                           progress=self.progress, desc=desc, replica_names=tuple(names))

    def member(self, start: RoundStart) -> Member:
        """A begun round or branch of this run, ready for ``lth.lottery.span.train``: the
        ticket's data order (or the branch's own) and, for the ticket, its curve sink."""
        b, s = start.branch, self.settings
        seed = b.data_seed if b is not None and b.data_seed is not None else s.data_seed
        on_eval = (lambda it, point, k=start.k: self.sink.log_curve(k, it, point)) \
            if b is None else None

        def on_change(it: int, change: MaskChange, k: int = start.k) -> None:
            # data parallel: every rank must make the same update (TrainingError otherwise)
            check_same_mask(change.mask, self.dist, f"round {k}'s update at iteration {it}")
            if b is None:
                self.sink.log_curve(k, it, change.stats)

        label = f"seed {s.seed}" + (f" {b.name}" if b else "")
        return Member(start, self.store, seed, on_eval, label, on_change)

    def stepper(self, models: list[nn.Module], masks: list[Mask], seeds: list[int]) -> Stepper:
        """What trains ``models`` (one: a ``SingleStepper``; several: one replica group)."""
        if len(models) == 1:
            batches = BatchIterator(self.data.x_train, self.data.y_train,
                                    self.settings.batch_size, seeds[0],
                                    augment=self.data.augment)
            return SingleStepper(models[0], self.make_optimizer(models[0].parameters()),
                                 batches, masks[0], self.accel, dist=self.dist)
        return ReplicaStepper(models, self.data, self.make_optimizer,
                              batch_size=self.settings.batch_size, seeds=seeds, masks=masks,
                              accel=self.accel, dist=self.dist)

    def train_members(self, members: Sequence[Member], desc: str) -> list[TrainResult]:
        """Train begun rounds or branches (of this run or of runs like it, one per seed) as
        one group, resuming from their checkpoints; the models hold the results."""
        names = [m.label for m in members] if len(members) > 1 else []
        return spans.train(members, self.stepper, self.data, self.loop_options(desc, names))

    def train_round(self, start: RoundStart) -> TrainResult:
        """Train a begun round or branch (resuming from its checkpoint); the model holds the
        result."""
        b = start.branch
        desc = f"round {start.k}" + (f" {b.name}" if b else "")
        (result,) = self.train_members([self.member(start)], desc)
        return result

    def record(self, start: RoundStart, result: TrainResult) -> Record:
        """The round's (or branch's) record: density (of its final mask), accuracies,
        iterations, wall time, cost."""
        mask = result.mask or start.mask
        kept, size = remaining(mask), total(mask)
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
                         getattr(self.pruner, "granularity", "weight") == "channel"),
        }
        record.update(self.cost(start))
        if result.val_acc is not None:
            record.update(val_acc=result.val_acc, val_loss=result.val_loss)
        record.update(start.extra)
        if self.settings.supermask and start.branch is None and start.k >= 1:
            record["supermask_test_acc"] = supermask_test_acc(
                self.states.initial_model(), mask, self.data, self.settings.supermask_constant)
        if start.branch is not None:
            record.update(start.branch.fields)
        return record

    def cost(self, start: RoundStart) -> Record:
        """What the round's (or branch's) training spent (``lth.lottery.cost``) and, for a
        round, ``search_cost``: every round's from round 0 on (None where a stored round
        lacks its cost); pruning at init: its own."""
        s = self.settings
        cost: Record = training_cost(start.model, start.mask, start.update,
                                     (start.span.start, start.span.end), self.data.x_train[:8],
                                     s.batch_size, s.iterations)
        if start.branch is None:  # at init, a round needs no earlier round's training
            before = [] if s.at_init else [r.get("train_cost") for r in
                                           self.store.read_metrics() if r["round"] < start.k]
            cost["search_cost"] = None if None in before else sum(before) + cost["train_cost"]
        return cost

    def finish_round(self, start: RoundStart, result: TrainResult) -> Record:
        """Store the round's (or branch's) files and record (the record last) and log it."""
        branch, record = start.branch, self.record(start, result)
        spans.finish(self.member(start), result, record, self.versions)
        if branch is None:
            self.sink.log_round(record)
        elif branch.kind == "controls":
            self.sink.log_round(control_metrics(record))
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
