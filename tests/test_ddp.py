"""Data parallelism through torchrun on CPU (gloo, 2 processes): the same run as one process,
written once by rank 0, resumable after a kill; bad input is one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from lth.store import RunStore
from tests.conftest import PYTHON, run_cli
from tests.test_resume import without_wall

pytestmark = pytest.mark.slow  # each torchrun starts 2 interpreters with torch (~10 s)
TORCHRUN = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
RUN = ["experiment=mnist1d_mlp",  # the machinery on the small MLP
       "train.duration=200it", "train.eval_every=100it", "train.checkpoint_every=100it",
       "prune.rounds=1", "dataset.num_samples=1200", "progress=false", "wandb.mode=offline",
       "prune.controls=[random_reinit]"]


def lottery(root: Path, *extra: str, ranks: bool = True, env: dict | None = None
            ) -> subprocess.CompletedProcess:
    return run_cli(root.parent, "experiments.lottery", f"output_root={root}",
                   f"wandb.dir={root}", *RUN, *extra, env=env, timeout=600,
                   launcher=TORCHRUN if ranks else [PYTHON])


def only_run(root: Path) -> RunStore:
    (run,) = (root / "mnist1d_mlp").iterdir()
    return RunStore(run)


def files(store: RunStore) -> list[str]:
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def assert_same(a: RunStore, b: RunStore) -> None:
    """Equal metrics up to the reduction order (equal on a 2-core AMD EPYC; the training loss
    1.4e-4 apart on an Intel Xeon with AVX-512) and weights close."""
    ma, mb = without_wall(a.read_metrics()), without_wall(b.read_metrics())
    assert [r["round"] for r in ma] == [r["round"] for r in mb] == [0, 1]
    for ra, rb in zip(ma, mb):
        assert ra["density"] == rb["density"]
        assert ra["test_acc"] == pytest.approx(rb["test_acc"], abs=1 / 240 + 1e-9)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-3)
    for k in (0, 1):
        fa, fb = a.load_tensors(a.final_path(k)), b.load_tensors(b.final_path(k))
        for n in fa:
            # Adam turns the last-bit differences of the reduction order into ~1e-2 after
            # 200 steps (measured 7e-3 on an Intel Xeon with AVX-512)
            torch.testing.assert_close(fa[n], fb[n], rtol=0, atol=2e-2)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> RunStore:
    root = tmp_path_factory.mktemp("one") / "runs"
    result = lottery(root, ranks=False)
    assert result.returncode == 0, result.stderr
    return only_run(root)


def test_two_ranks_equal_one_process_and_write_once(tmp_path: Path, one_process) -> None:
    root = tmp_path / "runs"
    result = lottery(root)
    assert result.returncode == 0, result.stderr
    two = only_run(root)
    assert two.root.name == one_process.root.name  # the same hash
    assert_same(one_process, two)
    assert len(two.read_controls()) == 1
    # One copy of every file, the single process's set (W&B's offline folder: one run).
    assert files(two) == files(one_process)
    assert len(list(root.glob("wandb/offline-run-*"))) == 1
    assert result.stdout.count("run directory:") == 1  # rank 0 prints the table


def test_two_ranks_resume_after_a_kill(tmp_path: Path, one_process) -> None:
    root = tmp_path / "runs"
    killed = lottery(root, env={"LTH_TEST_KILL_AT": "checkpoint:1:100"})
    assert killed.returncode != 0
    store = only_run(root)
    assert store.checkpoint_path(1).exists() and len(store.read_metrics()) == 1
    resumed = lottery(root)
    assert resumed.returncode == 0, resumed.stderr
    assert "stored" in resumed.stdout
    assert_same(one_process, store)
    assert not store.checkpoint_path(1).exists()


def test_a_replica_group_under_two_ranks_equals_it_in_one_process(tmp_path: Path) -> None:
    """replicas=2 with its controls as group members, each rank a slice of every batch."""
    one, two = tmp_path / "one" / "runs", tmp_path / "two" / "runs"
    for root, ranks in ((one, False), (two, True)):
        root.parent.mkdir()
        result = lottery(root, "replicas=2", ranks=ranks)
        assert result.returncode == 0, result.stderr
    runs = [sorted((root / "mnist1d_mlp").iterdir()) for root in (one, two)]
    assert [p.name for p in runs[0]] == [p.name for p in runs[1]] and len(runs[0]) == 2
    for a, b in zip(*runs):
        # replica tolerances (tests/test_replicas.py): half batches through the batched
        # kernels round otherwise than whole ones
        ma, mb = RunStore(a).read_metrics(), RunStore(b).read_metrics()
        for ra, rb in zip(ma, mb):
            assert ra["density"] == rb["density"]
            assert ra["test_acc"] == pytest.approx(rb["test_acc"], abs=2 / 240 + 1e-9)
            assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-3)
        assert len(RunStore(b).read_controls()) == 1


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=127", "error: train.batch_size=127 does not split across 2 ranks: use "
                             "a multiple of 2"),
])
def test_bad_input_under_torchrun_is_one_error_line(tmp_path: Path, override: str,
                                                    message: str) -> None:
    result = lottery(tmp_path / "runs", *override.split())
    assert result.returncode != 0  # each rank exits 2; torchrun reports them and exits 1
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(message), result.stderr
    assert not list((tmp_path / "runs").glob("*/*/config.yaml"))

