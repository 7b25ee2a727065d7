"""Knowledge distillation (Hinton et al. 2015): a baseline to compare pruned networks with.

A smaller dense student learns from the dense teacher's softened outputs and the labels:
``loss = alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)) + (1 - alpha) * CE``.
The T^2 keeps the soft term's gradients on the scale of the hard one as T changes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.errors import TrainingError
from lth.train.evaluate import evaluate
from lth.train.schedule import LRFactor


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.9) -> torch.Tensor:
    """Distillation loss (a scalar) of logits [B, classes] against labels [B]."""
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.log_softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean", log_target=True)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * temperature**2 * soft + (1.0 - alpha) * hard


def distill(student: nn.Module, teacher: nn.Module, data: Dataset,
            optimizer: torch.optim.Optimizer, *, iterations: int, batch_size: int, seed: int,
            lr_factor: LRFactor, temperature: float = 4.0, alpha: float = 0.9
            ) -> tuple[float, float]:
    """Train ``student`` in place for ``iterations`` batches; returns its (test loss, acc).

    The teacher runs in eval mode without gradients; batches and learning rates follow
    ``lth.train.train`` (``BatchIterator(seed)``, base rate times ``lr_factor(it)``).
    """
    teacher.eval()
    student.train()
    batches = BatchIterator(data.x_train, data.y_train, batch_size, seed, augment=data.augment)
    base = [g["lr"] for g in optimizer.param_groups]
    for it in range(iterations):
        x, y = batches.batch(it)
        for group, lr in zip(optimizer.param_groups, base):
            group["lr"] = lr * lr_factor(it)
        with torch.no_grad():
            target = teacher(x)
        loss = kd_loss(student(x), target, y, temperature, alpha)
        if not torch.isfinite(loss):
            raise TrainingError(f"distillation loss became {float(loss)} at iteration {it}: "
                                "lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return evaluate(student, data.x_test, data.y_test)
