"""Sparse training as a run: bit-identical resume across an update, replicas, the CLI (store,
hash, W&B per-update statistics, bad input) and two gloo ranks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lth.lottery import ReplicaLottery
from lth.lottery.sparse import SparseTraining
from lth.pruning import PruneRates
from lth.store import RunStore
from lth.store.hashing import config_hash
from lth.tracking import find_wandb_file, read_wandb_records
from lth.train.updates import sparse_settings
from lth.train.updates.dropgrow import DropGrow
from tests.conftest import PYTHON, make_blobs, make_lottery, run_cli, run_dirs
from tests.test_resume import Crash, DropoutMLP, assert_same_run, crash_at


def make(root: Path, method: str, adam: bool = True):
    s = sparse_settings(method, 0.2, "erk", 40, update_every=5)
    opt = (lambda p: torch.optim.Adam(p, lr=0.01)) if adam else None
    return make_lottery(root, model=DropoutMLP, rounds=0, checkpoint_every=10,
                        lottery={"sparse": SparseTraining(s)},
                        **({"optimizer": opt} if adam else {}))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, RunStore]:
    out = {}
    for method in ("set", "rigl", "gmp"):
        lottery = make(tmp_path_factory.mktemp(method), method)
        lottery.run()
        out[method] = lottery.store
    return out


@pytest.mark.parametrize("method", ["set", "rigl", "gmp"])
def test_a_run_killed_between_two_updates_resumes_bit_for_bit(tmp_path: Path, monkeypatch,
                                                              uninterrupted, method: str,
                                                              one_thread) -> None:
    crash_at(monkeypatch, "checkpoint:0:20")  # updates at 15 and 25 (GMP: 10, 15, 20, 25)
    with pytest.raises(Crash):
        make(tmp_path, method).run()
    monkeypatch.undo()
    make(tmp_path, method).run()
    assert_same_run(uninterrupted[method], RunStore(tmp_path), 0)
    full = uninterrupted[method]
    assert full.start_mask_path(0).exists()  # the mask changed during the training


def test_the_resume_test_fails_without_the_updates_state(tmp_path: Path, monkeypatch,
                                                         uninterrupted, one_thread) -> None:
    """SET's generator is part of the checkpoint: not restoring it grows other weights."""
    crash_at(monkeypatch, "checkpoint:0:20")
    with pytest.raises(Crash):
        make(tmp_path, "set").run()
    monkeypatch.undo()
    monkeypatch.setattr(DropGrow, "load_state_dict", lambda self, state: None)
    make(tmp_path, "set").run()
    full, resumed = uninterrupted["set"], RunStore(tmp_path)
    a, b = full.load_tensors(full.mask_path(0)), resumed.load_tensors(resumed.mask_path(0))
    assert not all(torch.equal(a[n], b[n]) for n in a)


def test_replicas_each_update_their_own_mask_as_alone(tmp_path: Path, one_thread) -> None:
    s = sparse_settings("set", 0.2, "erk", 40, update_every=5)
    data = make_blobs()

    def lot(root: Path, seed: int):
        return make_lottery(root, rounds=0, seed=seed, data=data,
                            lottery={"sparse": SparseTraining(s)})

    alone = [lot(tmp_path / f"alone{seed}", seed) for seed in (0, 1)]
    for one in alone:
        one.run()
    group = [lot(tmp_path / f"group{seed}", seed) for seed in (0, 1)]
    ReplicaLottery(group, ()).run()
    masks = []
    for a, g in zip(alone, group):
        ma, mg = a.store.load_tensors(a.store.mask_path(0)), g.store.load_tensors(
            g.store.mask_path(0))
        assert all(torch.equal(ma[n], mg[n]) for n in ma)
        masks.append(ma)
    assert not all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])


# -- the CLI ---------------------------------------------------------------------------------
TINY = ["experiment=mnist1d_mlp", "train.duration=200it", "train.eval_every=100it",
        "train.checkpoint_every=100it", "dataset.num_samples=1200", "progress=false"]


def test_the_cli_stores_one_sparse_round_with_its_cost_and_wandb_stats(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "experiments.lottery", f"output_root={tmp_path / 'runs'}", *TINY,
                     "sparse.method=rigl", "sparse.density=0.1", "sparse.update_every=50it",
                     "wandb.mode=offline", f"wandb.dir={tmp_path}")
    (run,) = run_dirs(result)
    store = RunStore(run)
    (record,) = store.read_metrics()
    assert record["round"] == 0 and record["density"] == pytest.approx(0.1, abs=1e-3)
    assert 0.1 < record["train_cost"] == record["search_cost"] < 0.2
    rows = read_wandb_records(find_wandb_file(tmp_path))
    stats = [r for r in rows if "curve/sparse/regrown" in r]
    assert [r["curve/iter"] for r in stats] == [50, 100]  # before end = 150
    assert all(0 < r["curve/sparse/regrown"] < 0.3 for r in stats)
    assert stats[0]["curve/sparse/density/fc1.weight"] < 1
    rounds = [r for r in rows if "cost/train" in r]
    assert rounds and rounds[-1]["cost/train"] == record["train_cost"]
    assert rounds[-1]["cost/search"] == record["search_cost"]
    # the hash: the sparse node is hashed when a method is set, and only then
    cfg = yaml.safe_load(store.config_path.read_text())
    assert run.name == config_hash(cfg)
    assert config_hash({**cfg, "sparse": {**cfg["sparse"], "method": None}}) != run.name


@pytest.mark.parametrize("override,message", [
    ("sparse.density=1.5", "error: sparse.density=1.5 is outside (0, 1]"),
    pytest.param("sparse.update_every=0it", "error: sparse.update_every=0it must be in 1..200",
                 marks=pytest.mark.slow),
    pytest.param("sparse.update_every=300it", "error: sparse.update_every=300it must be in",
                 marks=pytest.mark.slow),
    pytest.param("sparse.distribution=gauss", "error: sparse.distribution='gauss' is unknown",
                 marks=pytest.mark.slow),
    pytest.param("sparse.drop_fraction=1.0", "error: sparse.drop_fraction=1.0 is outside [0, 1)",
                 marks=pytest.mark.slow),
    pytest.param("sparse.method=snfs", "error: sparse.method='snfs' is unknown",
                 marks=pytest.mark.slow),
])
def test_bad_sparse_input_is_one_error_line(tmp_path: Path, override: str, message: str) -> None:
    extra = [] if override.startswith("sparse.method") else ["sparse.method=rigl"]
    result = run_cli(tmp_path, "experiments.lottery", f"output_root={tmp_path / 'runs'}", *TINY,
                     "wandb.mode=disabled", *extra, override)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr
    assert not (tmp_path / "runs" / "mnist1d_mlp").exists()


@pytest.mark.slow  # a torchrun of 2 interpreters and a single process
def test_two_gloo_ranks_agree_on_every_mask(tmp_path: Path) -> None:
    """Every update's mask is compared across the ranks (``check_same_mask``: a TrainingError
    if they differ), so a completed run under torchrun is one whose ranks agreed at each."""
    torchrun = [PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = [*TINY, "sparse.method=rigl", "sparse.update_every=50it", "wandb.mode=disabled"]
    one = RunStore(run_dirs(run_cli(tmp_path, "experiments.lottery",
                                    f"output_root={tmp_path / 'one'}", *args, timeout=600))[0])
    result = run_cli(tmp_path, "experiments.lottery", f"output_root={tmp_path / 'two'}", *args,
                     launcher=torchrun, timeout=600)
    two = RunStore(run_dirs(result)[0])
    assert one.root.name == two.root.name
    (ra,), (rb,) = one.read_metrics(), two.read_metrics()
    assert ra["layer_density"] == rb["layer_density"]
    assert ra["test_acc"] == pytest.approx(rb["test_acc"], abs=0.02)


def test_compare_sparse_puts_imp_and_sparse_training_on_one_table(tmp_path: Path,
                                                                    one_thread) -> None:
    from scripts.compare_sparse import main

    def root(cfg: dict) -> Path:  # a run directory named by its config (as load_run checks)
        cfg = {"seed": 0, "name": "cmp", **cfg}
        path = tmp_path / "runs" / "cmp" / config_hash(cfg)
        path.mkdir(parents=True)
        (path / "config.yaml").write_text(yaml.safe_dump(cfg))
        return path

    make_lottery(root({"prune": {"at_init": False}}), rounds=2,
                 strategy="magnitude_layerwise", rates=PruneRates(0.5)).run()
    for method in ("static", "rigl"):
        s = sparse_settings(method, 0.25, "uniform", 40, update_every=10)
        make_lottery(root({"sparse": {"method": method, "distribution": "uniform"}}), rounds=0,
                     lottery={"sparse": SparseTraining(s)}).run()
    assert main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    table = (tmp_path / "out" / "table.md").read_text()
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in table.splitlines()[2:]}
    assert {r for r in rows} == {"IMP", "static (uniform)", "rigl (uniform)"}
    assert "| 25.00% | 1 |" in rows["IMP"] and "| 1.750 ± 0.000 |" in rows["IMP"]
    assert "| 0.250 ± 0.000 | 0.250 ± 0.000 |" in rows["static (uniform)"]
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 10_000
