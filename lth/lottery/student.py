"""A distilled student as a stored, seeded, resumable run (``python -m experiments.distill``).

The student is the run's one round, round 0, in a run directory of its own
(``<output_root>/<name>/<hash>/``, the hash covering the teacher's identity, temperature,
mixing weight, student model and training): ``init.pt``, ``round_0/{final.pt,curve.json}``,
``round_0/checkpoint.pt`` while it trains, and its record in ``metrics.jsonl`` last. It is a
member of ``lth.lottery.span`` like every round and branch: trained, checkpointed, resumed
(bit-identical on CPU) and finished by the same code; a complete student is skipped. The
teacher is a frozen stored round, loaded by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.lottery import span as spans
from lth.lottery.seeds import derive_seed
from lth.lottery.span import Member, RoundStart
from lth.models import count_parameters
from lth.models.macs import count_macs
from lth.store import RunStore
from lth.tracking import Sink
from lth.train import LoopOptions, Span, TrainResult
from lth.train.distill import DistillStepper
from lth.train.masking import Mask
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

    def member(self, student: nn.Module) -> Member:
        """The student as a member of ``lth.lottery.span``: round 0 of its run directory."""
        s = self.settings
        start = RoundStart(0, student, {}, Span(0, s.iterations, self.lr_factor), {},
                           time.perf_counter())
        return Member(start, self.store, s.data_seed,
                      lambda it, point: self.sink.log_curve(0, it, point), "student")

    def stepper(self, models: list[nn.Module], masks: list[Mask], seeds: list[int]
                ) -> DistillStepper:
        """The student's stepper: ``kd_loss`` against the frozen teacher."""
        (student,), (seed,), s = models, seeds, self.settings
        batches = BatchIterator(self.data.x_train, self.data.y_train, s.batch_size, seed,
                                augment=self.data.augment)
        return DistillStepper(student, self.teacher.to(self.device),
                              self.make_optimizer(student.parameters()), batches,
                              s.temperature, s.alpha)

    def train(self, member: Member) -> TrainResult:
        """Train the student (resuming from its checkpoint), as every round trains."""
        s = self.settings
        options = LoopOptions(eval_every=s.eval_every, checkpoint_every=s.checkpoint_every,
                              progress=self.progress, desc="distill")
        (result,) = spans.train([member], self.stepper, self.data, options)
        return result

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
        member = self.member(self.initial_student())
        result = self.train(member)
        record = self.record(member.start.model, result, member.start.began)
        spans.finish(member, result, record, self.versions)
        self.sink.log_round(record)
        return record, True
