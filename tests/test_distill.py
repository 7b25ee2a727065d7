"""Knowledge distillation: the loss, and a student that learns from a teacher."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lth.errors import TrainingError
from lth.train import Span, constant_schedule, train
from lth.train.distill import distill, kd_loss
from tests.conftest import TinyMLP, make_blobs


def test_kd_loss_limits() -> None:
    torch.manual_seed(0)
    s, t, y = torch.randn(8, 4), torch.randn(8, 4), torch.randint(0, 4, (8,))
    assert torch.allclose(kd_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))
    assert float(kd_loss(t, t, y, alpha=1.0)) < 1e-6  # matching the teacher costs nothing
    assert float(kd_loss(s, t, y, alpha=1.0)) > 0


def test_student_learns_from_the_teacher() -> None:
    data = make_blobs()
    torch.manual_seed(0)
    teacher = TinyMLP()
    train(teacher, data, torch.optim.SGD(teacher.parameters(), lr=0.05),
          Span(0, 60, constant_schedule(1.0)), batch_size=32, seed=0)
    student = TinyMLP(hidden=8)
    result = distill(student, teacher, data, torch.optim.Adam(student.parameters(), lr=1e-2),
                     iterations=60, batch_size=32, seed=0, lr_factor=constant_schedule(1.0))
    assert result.test_acc > 0.8


def test_a_diverging_student_stops_at_the_first_non_finite_loss() -> None:
    data = make_blobs()
    torch.manual_seed(0)
    teacher, student = TinyMLP(), TinyMLP(hidden=8)
    with pytest.raises(TrainingError, match=r"distillation loss became (nan|inf) at iteration "
                                            r"(\d+): lower the learning rate") as caught:
        distill(student, teacher, data, torch.optim.SGD(student.parameters(), lr=1e12),
                iterations=500, batch_size=32, seed=0, lr_factor=constant_schedule(1.0))
    assert int(caught.value.args[0].split("iteration ")[1].split(":")[0]) < 50
