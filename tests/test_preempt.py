"""Preemption: SIGTERM (Slurm) or SIGUSR2 (Submitit) -> checkpoint at once -> exit -> the
rerun resumes there and ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from lth.errors import Preempted
from lth.store import RunStore
from lth.train.preempt import handle_preemption
from tests.conftest import run_cli
from tests.test_resume import assert_same_run, make

RUN = ["experiment=mnist1d_mlp",  # the machinery on the small MLP
       "train.duration=300it", "train.eval_every=100it", "train.checkpoint_every=100it",
       "prune.rounds=1", "dataset.num_samples=1200", "progress=false", "wandb.mode=disabled"]


def lottery(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_cli(root.parent, "experiments.lottery", f"output_root={root}", *RUN, env=env,
                   threads=None)


def store_of(result: subprocess.CompletedProcess) -> RunStore:
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("run directory: ")][-1]
    return RunStore(Path(line.removeprefix("run directory: ")))


def test_sigterm_checkpoints_at_once_and_the_rerun_is_bit_identical(tmp_path: Path) -> None:
    full = lottery(tmp_path / "full")
    assert full.returncode == 0, full.stderr
    # A real SIGTERM when 150 iterations of round 1 are done: half-way between periodic
    # checkpoints (100, 200), so resuming from the last periodic one would lose 50.
    stopped = lottery(tmp_path / "stopped", env={"LTH_TEST_SIGNAL_AT": "1:150"})
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    assert stopped.stderr.strip() == ("preempted: stopped by SIGTERM at iteration 151 "
                                      "(round 1), checkpoint written: rerun the same command "
                                      "to resume"), stopped.stderr
    root = next((tmp_path / "stopped").glob("mnist1d_mlp/*"))
    store = RunStore(root)
    ckpt = store.load(store.checkpoint_path(1), "")
    assert ckpt["train"]["it"] == 151  # the signal's iteration, not the periodic 100
    assert [r["round"] for r in store.read_metrics()] == [0]
    resumed = lottery(tmp_path / "stopped")
    assert resumed.returncode == 0, resumed.stderr
    assert "stored" in resumed.stdout.splitlines()[2]  # round 0 was not retrained (after the
    # threads line and the header)
    assert_same_run(store_of(full), store_of(resumed), 1)
    assert not store.checkpoint_path(1).exists()


def test_sigusr2_checkpoints_then_hands_over_to_the_previous_handler(tmp_path: Path) -> None:
    """Submitit's SIGUSR2 handler requeues the job: lth checkpoints first, then calls it."""
    calls: list[int] = []
    old = signal.signal(signal.SIGUSR2, lambda signum, frame: calls.append(signum))
    try:
        lottery_ = make(tmp_path, checkpoint_every=0)
        start = lottery_.begin_round(0)
        start.hooks[25] = lambda model: signal.raise_signal(signal.SIGUSR2)
        with handle_preemption(), pytest.raises(Preempted) as info:
            lottery_.train_round(start)
        assert calls == []  # lth's handler only set the flag
        info.value.forward()
        assert calls == [signal.SIGUSR2]
    finally:
        signal.signal(signal.SIGUSR2, old)
    ckpt = lottery_.store.load(lottery_.store.checkpoint_path(0), "")
    assert ckpt["train"]["it"] == 26
    assert "SIGUSR2 at iteration 26" in str(info.value)
    assert signal.getsignal(signal.SIGTERM) is not None  # handlers were restored
