"""A distilled student as a stored, seeded, resumable run (``python -m experiments.distill``).

The student is the run's one round, round 0, in a run directory of its own
(``<output_root>/<name>/<hash>/``, the hash covering the teacher's identity, temperature,
mixing weight, student model and training): ``init.pt``, ``round_0/{final.pt,curve.json}``,
``round_0/checkpoint.pt`` while it trains, and its record in ``metrics.jsonl`` last. A complete
student is skipped; an interrupted one continues from its checkpoint (bit-identical on CPU),
like a lottery round. The teacher is a frozen stored round, loaded by the caller.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lth.data import Dataset
from lth.faults import kill_point
from lth.lottery.seeds import derive_seed
from lth.models import count_parameters
from lth.models.macs import count_macs
from lth.store.store import RunStore
from lth.tracking import Sink
from lth.train import LoopOptions, TrainResult, TrainState, checkpoint
from lth.train.core import Callbacks
from lth.train.distill import distill
from lth.train.schedule import LRFactor

Record = dict[str, Any]


@dataclass(frozen=True)
class StudentSettings:
    """The student's training, every duration in iterations."""

    seed: int
    iterations: int
    batch_size: int
    temperature: float = 4.0
    alpha: float = 0.9
    eval_every: int = 0
    checkpoint_every: int = 0

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, "student", "init")

    @property
    def data_seed(self) -> int:
        return derive_seed(self.seed, "student", "data")


@dataclass
class StudentRun:
    """One student learning from ``teacher`` on ``data``, stored in ``store``.

    ``fields`` (e.g. the teacher's run and round) are added to the record; ``versions`` are
    noted in run.json when the student completes.
    """

    settings: StudentSettings
    data: Dataset
    teacher: nn.Module
    make_student: Callable[[], nn.Module]
    make_optimizer: Callable[[Iterator[nn.Parameter]], torch.optim.Optimizer]
    lr_factor: LRFactor
    store: RunStore
    sink: Sink
    device: torch.device
    progress: bool = False
    fields: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, str] = field(default_factory=dict)

    def initial_student(self) -> nn.Module:
        """A fresh student at the run's initialisation (init.pt, saved on first use)."""
        torch.manual_seed(self.settings.init_seed)
        student = self.make_student().to(self.device)
        if self.store.init_path.exists():
            student.load_state_dict(self.store.load_tensors(self.store.init_path))
        else:
            self.store.save_tensors(self.store.init_path, student.state_dict())
        return student

    def _resume(self, student: nn.Module, optimizer: torch.optim.Optimizer
                ) -> tuple[TrainState | None, float]:
        """The checkpoint's loop state (restored into student, optimizer, RNGs) and wall time."""
        path = self.store.checkpoint_path(0)
        if not path.exists():
            return None, 0.0
        obj = self.store.load(path, "delete it to restart the student from its beginning")
        ckpt = checkpoint.unpack(obj, path, 0, (0, self.settings.iterations))
        checkpoint.restore(ckpt, path, 0, student, optimizer.load_state_dict)
        return ckpt.state, ckpt.wall_s

    def train(self, student: nn.Module) -> tuple[TrainResult, float]:
        """Train ``student`` (resuming from its checkpoint); the result and its start time."""
        s = self.settings
        optimizer = self.make_optimizer(student.parameters())
        resume, wall = self._resume(student, optimizer)
        began = time.perf_counter() - wall

        def save(states: list[TrainState]) -> None:
            ckpt = checkpoint.capture(states[0], student, optimizer.state_dict(),
                                      time.perf_counter() - began)
            self.store.save(self.store.checkpoint_path(0),
                            checkpoint.pack(0, (0, s.iterations), ckpt))
            kill_point(f"checkpoint:0:{states[0].it}")

        callbacks = Callbacks(on_eval=lambda _, it, point: self.sink.log_curve(0, it, point),
                              on_checkpoint=save)
        options = LoopOptions(eval_every=s.eval_every, checkpoint_every=s.checkpoint_every,
                              progress=self.progress, desc="distill")
        result = distill(student, self.teacher.to(self.device), self.data, optimizer,
                         iterations=s.iterations, batch_size=s.batch_size, seed=s.data_seed,
                         lr_factor=self.lr_factor, temperature=s.temperature, alpha=s.alpha,
                         options=options, callbacks=callbacks, resume=resume)
        return result, began

    def record(self, student: nn.Module, result: TrainResult, began: float) -> Record:
        """The student's record: accuracies, size and cost beside the teacher's."""
        example = self.data.x_train[:1]
        params, teacher_params = count_parameters(student), count_parameters(self.teacher)
        return {
            "round": 0, "test_acc": result.test_acc, "test_loss": result.test_loss,
            "best_test_acc": result.best_test_acc, "best_iter": result.best_iter,
            "early_stop_iter": result.early_stop_iter,
            "early_stop_test_acc": result.early_stop_test_acc, "train_loss": result.train_loss,
            "iterations": self.settings.iterations, "params": params,
            "teacher_params": teacher_params, "relative_params": params / teacher_params,
            "macs_dense": count_macs(student, example).dense,
            "teacher_macs": count_macs(self.teacher, example).dense,
            "wall_s": round(time.perf_counter() - began, 3), **self.fields,
            **({} if result.val_acc is None else
               {"val_acc": result.val_acc, "val_loss": result.val_loss}),
        }

    def run(self) -> tuple[Record, bool]:
        """Train and store the student unless it is complete; (its record, trained now)."""
        stored = self.store.read_metrics()
        if stored:
            return stored[0], False
        student = self.initial_student()
        result, began = self.train(student)
        record = self.record(student, result, began)
        self.store.save_tensors(self.store.final_path(0), student.state_dict())
        self.store.write_text(self.store.curve_path(0), json.dumps(result.evals))
        if self.versions:
            self.store.note_round_versions(0, self.versions)
        self.store.append_metrics(record)
        self.store.remove(self.store.checkpoint_path(0))
        self.sink.log_round(record)
        return record, True
