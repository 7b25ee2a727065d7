"""Shared fixtures: tiny in-memory datasets and models, fast enough for every test."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from lth.data import Dataset

if os.environ.get("PYTEST_XDIST_WORKER"):  # -n auto: one worker per core, one thread each
    torch.set_num_threads(1)

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


def run_cli(tmp: Path, module: str, *args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: int = 300,
            launcher: Sequence[str] = (PYTHON,), threads: int | None = 1, **popen: Any
            ) -> subprocess.CompletedProcess:
    """The real entry point ``python -m <module> <args>`` in a subprocess (in ``cwd``, default
    ``tmp``): offline W&B under ``tmp``, ``threads`` intra-op threads (tiny models: a second
    thread only contends on a busy CPU), output captured as text; ``popen`` goes to
    ``subprocess.run`` (e.g. ``preexec_fn``)."""
    environment = {**cli_env(tmp), **({"OMP_NUM_THREADS": str(threads)} if threads else {}),
                   **(env or {})}
    return subprocess.run([*launcher, "-m", module, *args], cwd=cwd or tmp, env=environment,
                          capture_output=True, text=True, timeout=timeout, **popen)


def run_dirs(result: subprocess.CompletedProcess) -> list[Path]:
    """The run directories an entry point printed (``run directory: <path>`` lines)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return [Path(ln.removeprefix("run directory: ")) for ln in result.stdout.splitlines()
            if ln.startswith("run directory: ")]


@pytest.fixture
def cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli`` under this test's tmp_path: ``cli("experiments.lottery", *overrides)``."""
    return functools.partial(run_cli, tmp_path)


def sgd(params: Any) -> torch.optim.Optimizer:
    """The tiny lotteries' optimizer."""
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-4)


def make_lottery(root: Path, *, data: Dataset | None = None,
                 model: Callable[[], nn.Module] = TinyMLP,
                 optimizer: Callable[..., torch.optim.Optimizer] = sgd,
                 milestones: Sequence[int] = (30,), lottery: dict[str, Any] | None = None,
                 **settings: Any):
    """A Lottery on a tiny problem, built whole, stored under ``root`` with no sink.
    ``settings`` override ``LotterySettings`` (defaults: 3 rounds of 40 iterations, batch 32,
    global magnitude pruning of 30% a round, evaluation every 20); ``lottery`` passes more of
    ``Lottery``'s fields (``pruner``, ``mask_update``, ``accel``, ...)."""
    from lth.lottery import Lottery, LotterySettings
    from lth.pruning import PruneRates
    from lth.store import RunStore
    from lth.tracking import NullSink
    from lth.train import step_schedule

    kw: dict[str, Any] = dict(seed=0, rounds=3, iterations=40, batch_size=32, rewind_iter=0,
                              strategy="magnitude_global", rates=PruneRates(0.3), eval_every=20)
    kw.update(settings)
    return Lottery(LotterySettings(**kw), data if data is not None else make_blobs(), model,
                   optimizer, step_schedule(list(milestones)), RunStore(root), NullSink(),
                   torch.device("cpu"), **(lottery or {}))
