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
with ``schedule`` round k targets ``schedule[k - 1]`` (see ``target_densities``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.data import Dataset
from lth.errors import CheckpointError, ConfigError
from lth.lottery import checkpoint
from lth.lottery.faults import kill_point
from lth.lottery.seeds import derive_seed
from lth.lottery.store import RunStore
from lth.pruning import (
    Mask,
    PruneRates,
    apply_mask,
    check_mask,
    check_strategy,
    full_mask,
    layer_density,
    layer_rates,
    prune_mask,
    remaining,
    scheduled_densities,
    target_densities,
    total,
)
from lth.tracking import Sink
from lth.train import TrainResult, TrainState, constant_schedule, train
from lth.train.schedule import LRFactor

RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")
OptimizerFactory = Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]


@dataclass(frozen=True)
class LotterySettings:
    """Everything the loop needs, in iterations. Built once from the config, at the edge."""

    seed: int
    rounds: int
    iterations: int
    batch_size: int
    rewind_iter: int
    strategy: str
    rates: PruneRates
    retrain: str = "weight_rewind"
    finetune_iters: int = 0
    eval_every: int = 0
    include_bias: bool = False
    checkpoint_every: int = 0  # iterations between mid-round checkpoints (0: none)
    oneshot: bool = False               # one step from dense to the density of `rounds` rounds
    schedule: tuple[float, ...] = ()    # explicit target density of each round k >= 1

    def __post_init__(self) -> None:
        check_strategy(self.strategy)
        if self.rounds < 0:
            raise ConfigError(f"prune.rounds={self.rounds} is negative; use 0 or more")
        if self.iterations <= 0:
            raise ConfigError("train.duration is 0: train for at least one iteration")
        if self.rewind_iter > self.iterations:
            raise ConfigError(
                f"prune.rewind ({self.rewind_iter} iterations) is later than train.duration "
                f"({self.iterations} iterations): rewind to an earlier point"
            )
        if self.retrain not in RETRAIN_MODES:
            raise ConfigError(
                f"prune.retrain={self.retrain!r} is unknown; choose one of "
                f"{', '.join(RETRAIN_MODES)}"
            )
        if self.retrain == "finetune" and self.finetune_iters <= 0:
            raise ConfigError("prune.retrain=finetune needs prune.finetune_duration > 0it")
        if self.oneshot and self.schedule:
            raise ConfigError("prune.oneshot=true and prune.schedule both set: choose one")
        steps = (1.0, *self.schedule)
        if not all(0 < b < a for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"prune.schedule={list(self.schedule)} must be densities in "
                              "(0, 1) that decrease round by round, e.g. [0.5, 0.2, 0.05]")

    @property
    def last_round(self) -> int:
        """The last round to run: ``rounds``, or fewer when one-shot or a schedule ends."""
        if self.oneshot:
            return min(self.rounds, 1)
        if self.schedule:
            return min(self.rounds, len(self.schedule))
        return self.rounds

    def round_densities(self, k: int, rates: dict[str, float]) -> dict[str, float]:
        """Each tensor's target density in round ``k`` >= 1, from its per-round rate."""
        if self.oneshot:
            return scheduled_densities(rates, self.rounds)
        if self.schedule:
            return target_densities(rates, self.rates.fraction, self.schedule[k - 1])
        return scheduled_densities(rates, k)

    @property
    def data_seed(self) -> int:
        # The same data order in every round, as in open_lth.
        return derive_seed(self.seed, "data")

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, "init")

    def prune_seed(self, round_index: int) -> int:
        return derive_seed(self.seed, "prune", round_index)


@dataclass
class RoundStart:
    """A round ready to train: its model (at the start state), mask, span and hooks."""

    k: int
    model: nn.Module
    mask: Mask
    span: dict[str, Any]  # start, end (iterations) and lr (the LRFactor)
    hooks: dict[int, Callable[[nn.Module], None]]
    began: float  # perf_counter() when the round began


@dataclass
class Lottery:
    """One IMP experiment: settings, data, how to build the model and optimizer, where to log."""

    settings: LotterySettings
    data: Dataset
    make_model: Callable[[], nn.Module]
    make_optimizer: OptimizerFactory
    lr_factor: LRFactor
    store: RunStore
    sink: Sink
    device: torch.device
    progress: bool = False
    on_round_start: Callable[[int, nn.Module, Mask], None] | None = None
    # prune_mask's signature; lth.pruning.structured.ChannelPruner for channel pruning.
    pruner: Callable[..., Mask] = prune_mask

    # -- helpers ---------------------------------------------------------------------------
    def _load_state(self, model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
        """The tensors of ``path``, checked to fit ``model`` name by name and shape by shape."""
        state = self.store.load_tensors(path)
        expected = {n: tuple(t.shape) for n, t in model.state_dict().items()}
        if {n: tuple(t.shape) for n, t in state.items()} != expected:
            odd = sorted(set(state).symmetric_difference(expected)) or sorted(
                n for n in state if tuple(state[n].shape) != expected[n])
            raise CheckpointError(
                f"{path} does not match the model (layers {', '.join(odd[:3])} differ): it was "
                "made for another model; delete the run directory or choose the matching model")
        return state

    def _initial_model(self) -> nn.Module:
        torch.manual_seed(self.settings.init_seed)
        model = self.make_model().to(self.device)
        if self.store.init_path.exists():
            model.load_state_dict(self._load_state(model, self.store.init_path))
        else:
            self.store.save_tensors(self.store.init_path, model.state_dict())
        return model

    def _resume(self, k: int, span: dict[str, Any], model: nn.Module,
                optimizer: torch.optim.Optimizer) -> tuple[TrainState | None, float]:
        """Restore round ``k``'s checkpoint, if there is one: (loop state, wall time so far)."""
        path = self.store.checkpoint_path(k)
        if not path.exists():
            return None, 0.0
        ckpt = self.store.load(path, f"delete it to restart round {k} from its beginning")
        return checkpoint.unpack(ckpt, path, k, (span["start"], span["end"]), model, optimizer)

    def _checkpoint(self, k: int, span: dict[str, Any], state: TrainState, model: nn.Module,
                    optimizer: torch.optim.Optimizer, wall_s: float) -> None:
        self.store.save(self.store.checkpoint_path(k), checkpoint.pack(
            k, (span["start"], span["end"]), state, model, optimizer, wall_s))
        kill_point(f"checkpoint:{k}:{state.it}")

    def _round_start(self, k: int, model: nn.Module) -> tuple[Mask, dict[str, Any]]:
        """Mask and (start, end, lr factor) of round k, with ``model`` set to its start state."""
        s = self.settings
        if k == 0:
            return full_mask(model, s.include_bias), dict(
                start=0, end=s.iterations, lr=self.lr_factor)
        prev_mask = self.store.load_tensors(self.store.mask_path(k - 1))
        check_mask(model, prev_mask, str(self.store.mask_path(k - 1)))
        prev_final = self._load_state(model, self.store.final_path(k - 1))
        rates = layer_rates(model, sorted(prev_mask), s.rates)
        mask = self.pruner(prev_final, prev_mask, strategy=s.strategy,
                           densities=s.round_densities(k, rates), seed=s.prune_seed(k))
        span = self.start_weights(k, model)
        apply_mask(model, mask)
        return mask, span

    def start_weights(self, k: int, model: nn.Module) -> dict[str, Any]:
        """Load round k's (>= 1) start weights into ``model``, unmasked; its (start, end, lr).

        The controls start from here too, so they replay exactly the ticket's span.
        """
        s = self.settings
        if s.retrain == "weight_rewind":
            model.load_state_dict(self._load_state(model, self.store.rewind_path))
            return dict(start=s.rewind_iter, end=s.iterations, lr=self.lr_factor)
        model.load_state_dict(self._load_state(model, self.store.final_path(k - 1)))
        if s.retrain == "lr_rewind":
            return dict(start=s.rewind_iter, end=s.iterations, lr=self.lr_factor)
        final_lr = constant_schedule(self.lr_factor(s.iterations - 1))
        return dict(start=s.iterations, end=s.iterations + s.finetune_iters, lr=final_lr)

    def _record(self, k: int, mask: Mask, result: TrainResult, iters: int,
                wall: float) -> dict[str, Any]:
        kept, size = remaining(mask), total(mask)
        record: dict[str, Any] = {
            "round": k, "density": kept / size, "sparsity": 1 - kept / size,
            "remaining": kept, "total": size, "test_acc": result.test_acc,
            "test_loss": result.test_loss, "best_test_acc": result.best_test_acc,
            "best_iter": result.best_iter, "early_stop_iter": result.early_stop_iter,
            "early_stop_test_acc": result.early_stop_test_acc, "train_loss": result.train_loss,
            "iterations": iters, "wall_s": round(wall, 3), "layer_density": layer_density(mask),
        }
        if result.val_acc is not None:
            record.update(val_acc=result.val_acc, val_loss=result.val_loss)
        return record

    # -- the loop --------------------------------------------------------------------------
    def begin_round(self, k: int) -> RoundStart:
        """Round ``k``'s model at its start state, mask, span and hooks (no training yet)."""
        began = time.perf_counter()
        model = self._initial_model()
        mask, span = self._round_start(k, model)
        if self.on_round_start is not None:
            self.on_round_start(k, model, mask)
        hooks: dict[int, Callable[[nn.Module], None]] = {}
        if k == 0:
            hooks[self.settings.rewind_iter] = lambda m: self.store.save_tensors(
                self.store.rewind_path, m.state_dict())
        return RoundStart(k, model, mask, span, hooks, began)

    def finish_round(self, start: RoundStart, result: TrainResult) -> dict[str, Any]:
        """Store round ``start.k``'s files and record (the record last) and log it."""
        k, span = start.k, start.span
        record = self._record(k, start.mask, result, span["end"] - span["start"],
                              time.perf_counter() - start.began)
        self.store.save_tensors(self.store.mask_path(k), start.mask)
        self.store.save_tensors(self.store.final_path(k), start.model.state_dict())
        self.store.write_text(self.store.curve_path(k), json.dumps(result.evals))
        self.store.append_metrics(record)
        self.store.remove(self.store.checkpoint_path(k))
        self.sink.log_round(record)
        return record

    def run_round(self, k: int) -> dict[str, Any]:
        """Run round ``k`` (its predecessors must be complete) and store its files."""
        s = self.settings
        start = self.begin_round(k)
        model, mask, span, hooks = start.model, start.mask, start.span, start.hooks
        optimizer = self.make_optimizer(model.parameters())
        resume, spent = self._resume(k, span, model, optimizer)
        start.began -= spent  # wall time includes what a killed process already spent
        result = train(
            model, self.data, optimizer, start_iter=span["start"], end_iter=span["end"],
            batch_size=s.batch_size, seed=s.data_seed, lr_factor=span["lr"], mask=mask,
            eval_every=s.eval_every, hooks=hooks, progress=self.progress,
            on_eval=lambda it, point: self.sink.log_curve(k, it, point),
            desc=f"round {k}", checkpoint_every=s.checkpoint_every, resume=resume,
            on_checkpoint=lambda state: self._checkpoint(
                k, span, state, model, optimizer, time.perf_counter() - start.began),
        )
        return self.finish_round(start, result)

    def pending_rounds(self) -> list[int]:
        """Rounds not yet complete, in order."""
        done = len(self.store.read_metrics())
        return list(range(done, self.settings.last_round + 1))

    def run(self, on_round: Callable[[dict[str, Any]], None] | None = None
            ) -> list[dict[str, Any]]:
        """Run every pending round; returns all records, stored ones included."""
        for k in range(len(self.store.read_metrics())):
            # A kill between a round's metrics line and its checkpoint's removal leaves one.
            if self.store.checkpoint_path(k).exists():
                self.store.remove(self.store.checkpoint_path(k))
        for k in self.pending_rounds():
            record = self.run_round(k)
            if on_round is not None:
                on_round(record)
        return self.store.read_metrics()
