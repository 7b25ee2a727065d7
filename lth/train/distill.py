"""Knowledge distillation (Hinton et al. 2015): a baseline to compare pruned networks with.

A smaller dense student learns from the dense teacher's softened outputs and the labels:
``loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE``.
The T^2 keeps the soft term's gradients on the scale of the hard one as T changes. The student
trains through the loop core (``lth.train.core``), like every other run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.errors import TrainingError
from lth.train.accel import Accel
from lth.train.core import Callbacks, LoopOptions, Span, TrainResult, TrainState, run_loop
from lth.train.distributed import Dist
from lth.train.loop import SingleStepper
from lth.train.schedule import LRFactor


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Distillation loss (a scalar) of logits [B, classes] against labels [B]."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


class DistillStepper(SingleStepper):
    """The update of a student on ``kd_loss`` against a frozen teacher (eval mode); every
    other part of the step (precision, masking, data parallelism) is ``SingleStepper``'s."""

    def __init__(self, student: nn.Module, teacher: nn.Module,
                 optimizer: torch.optim.Optimizer, batches: BatchIterator, temperature: float,
                 alpha: float, accel: Accel = Accel(), dist: Dist | None = None) -> None:
        super().__init__(student, optimizer, batches, None, accel, dist=dist)
        self.teacher, self.temperature, self.alpha = teacher, temperature, alpha
        self.it = 0
        teacher.eval()

    def step(self, it: int, lr_factor: float) -> torch.Tensor:
        self.it = it  # for the error message
        return super().step(it, lr_factor)

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x)
        loss = kd_loss(self.forward(x), target, y, self.temperature, self.alpha)
        if not torch.isfinite(loss):  # a sync per step, as before: stop at the first one
            raise TrainingError(f"distillation loss became {float(loss.detach())} at "
                                f"iteration {self.it}: lower the learning rate")
        return loss


def distill(student: nn.Module, teacher: nn.Module, data: Dataset,
            optimizer: torch.optim.Optimizer, *, iterations: int, batch_size: int, seed: int,
            lr_factor: LRFactor, temperature: float = 4.0, alpha: float = 0.9,
            options: LoopOptions = LoopOptions(desc="distill"),
            callbacks: Callbacks = Callbacks(), resume: TrainState | None = None) -> TrainResult:
    """Train ``student`` in place for ``iterations`` batches; its result on the test set.

    Batches and learning rates follow ``lth.train.train`` (``BatchIterator(seed)``, base rate
    times ``lr_factor(it)``); ``train_loss`` is the distillation loss, the test and
    validation numbers are cross-entropy and accuracy on the labels. ``callbacks`` and
    ``resume`` are the loop core's (checkpoints of the student; the caller restores its
    model, optimizer and RNG states before resuming). Raises TrainingError at the first
    non-finite loss.
    """
    batches = BatchIterator(data.x_train, data.y_train, batch_size, seed, augment=data.augment)
    stepper = DistillStepper(student, teacher, optimizer, batches, temperature, alpha)
    (result,) = run_loop(stepper, data, Span(0, iterations, lr_factor), options, callbacks,
                         None if resume is None else [resume])
    return result
