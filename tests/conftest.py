"""Shared fixtures: tiny in-memory datasets and models, fast enough for every test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from lth.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_SILENT", "true")


def make_blobs(n_train: int = 256, n_test: int = 128, dim: int = 20, classes: int = 4,
               seed: int = 0, val: int = 0) -> Dataset:
    """Gaussian blobs: learnable in a few dozen iterations."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 2

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, classes, (n,), generator=g)
        return centers[y] + torch.randn(n, dim, generator=g), y

    x, y = sample(n_train)
    xt, yt = sample(n_test)
    xv, yv = sample(val) if val else (None, None)
    return Dataset("blobs", x, y, xt, yt, classes, x_val=xv, y_val=yv)


class TinyMLP(nn.Module):
    def __init__(self, dim: int = 20, hidden: int = 32, classes: int = 4) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


@pytest.fixture
def one_thread():
    """Tiny models: a second intra-op thread only adds waits, badly so on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def blobs() -> Dataset:
    return make_blobs()


def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the real CLI in a subprocess (offline W&B, no colour)."""
    env = dict(os.environ)
    env.update(WANDB_SILENT="true", WANDB_MODE="offline", PYTHONPATH=str(ROOT),
               HYDRA_FULL_ERROR="0", WANDB_DIR=str(tmp_path))
    return env


PYTHON = sys.executable
