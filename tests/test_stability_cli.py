"""Instability and early-bird detection through the real CLI: added to a completed run it
trains only the copies, a rerun trains nothing, a killed copy resumes bit-identically, bad
input gets one line and exit 2; the analysis keys leave the run's hash alone."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from experiments.setup import to_dict
from lth.store import RunStore, config_hash
from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import ROOT, run_cli
from tests.test_config import DEFAULT_HASH, compose_with

TINY = ["experiment=mnist1d_mlp",  # the machinery on the small MLP
        "train.duration=200it", "train.eval_every=100it", "prune.rounds=1",
        "train.checkpoint_every=50it", "dataset.num_samples=1200", "dataset.val_size=100",
        "progress=false"]
KILL = "LTH_TEST_KILL_AT"


def cli(tmp: Path, module: str, *args: str, env: dict | None = None
        ) -> subprocess.CompletedProcess:
    return run_cli(tmp, module, *args, cwd=ROOT, env=env)


def instability(tmp: Path, run: Path, *args: str, env: dict | None = None
                ) -> subprocess.CompletedProcess:
    return cli(tmp, "experiments.instability", f"run_dir={run}", "progress=false", *args,
               env=env)


def ticket_files(run: Path) -> dict[str, bytes]:
    """Every file of the ticket and its run (not the instability branches, W&B or Hydra)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and "instability" not in p.parts
            and not p.name.startswith("instability") and p.name != ".lock"}


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A completed two-round run (no instability yet), made in-process."""
    from experiments.lottery import run

    tmp = tmp_path_factory.mktemp("base")
    cfg = compose_with([f"output_root={tmp / 'runs'}", *TINY, "wandb.mode=disabled"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            store = run(cfg)  # in-process: the CLI under test is experiments.instability
    finally:
        torch.set_num_threads(threads)
    return store.root


def copy_run(base: Path, tmp: Path) -> Path:
    shutil.copytree(base.parent, tmp / "runs" / base.parent.name)
    return tmp / "runs" / base.parent.name / base.name


@pytest.fixture(scope="module")
def analysed(base: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("analysed")
    run = copy_run(base, tmp)
    before = ticket_files(run)
    first = instability(tmp, run, "rounds=[1]", "wandb_mode=offline")
    assert first.returncode == 0, first.stderr
    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    again = instability(tmp, run, "rounds=[1]", "wandb_mode=disabled")
    assert again.returncode == 0, again.stderr
    return {"tmp": tmp, "run": run, "before": before, "first": first, "again": again,
            "stamps": stamps}


def test_instability_added_to_a_completed_run_trains_only_the_copies(analysed) -> None:
    run, store = analysed["run"], RunStore(analysed["run"])
    assert ticket_files(run) == analysed["before"]
    (record,) = store.read_instability()
    assert record["round"] == 1 and record["alpha_points"] == 30 and not record["bn_reset"]
    assert sorted(r["copy"] for r in store.read_branches("instability")) == [0, 1]
    curve = json.loads(store.interpolation_path(1).read_text())
    assert len(curve["alpha"]) == 30
    assert max(curve["test_err"]) - (curve["test_err"][0] + curve["test_err"][-1]) / 2 \
        == record["barrier_test"]
    assert "barrier test" in analysed["first"].stdout
    for c in (0, 1):
        assert store.final_path(1, f"copy_{c}", "instability").exists()
        assert not store.checkpoint_path(1, f"copy_{c}", "instability").exists()
    rows = read_wandb_run(find_wandb_file(analysed["tmp"] / "runs"))
    logged = [r for r in rows.history if "instability/barrier_test" in r]
    assert [r["round"] for r in logged] == [1]
    assert rows.metrics.get("instability/barrier_test") == "round"
    assert logged[0]["instability/barrier_test"] == pytest.approx(record["barrier_test"])


def test_a_rerun_trains_nothing(analysed) -> None:
    assert "nothing to train" in analysed["again"].stdout
    now = {p: p.stat().st_mtime_ns for p in analysed["run"].rglob("*") if p.is_file()
           and p.name != ".lock"}
    assert {p: now.get(p) for p in analysed["stamps"]} == analysed["stamps"]


@pytest.mark.slow
def test_a_copy_killed_mid_training_resumes_bit_identically(base: Path, analysed,
                                                            tmp_path: Path) -> None:
    run = copy_run(base, tmp_path)
    killed = instability(tmp_path, run, "rounds=[1]", "wandb_mode=disabled",
                         env={KILL: "checkpoint:1:100:instability:copy_1"})
    assert killed.returncode == -9, killed.stderr
    store = RunStore(run)
    assert [r["copy"] for r in store.read_branches("instability")] == [0]
    assert store.checkpoint_path(1, "copy_1", "instability").exists()
    assert not store.read_instability()
    resumed = instability(tmp_path, run, "rounds=[1]", "wandb_mode=disabled")
    assert resumed.returncode == 0, resumed.stderr
    reference = analysed["run"]
    for c in (0, 1):
        name = f"round_1/instability/copy_{c}/final.pt"
        assert (run / name).read_bytes() == (reference / name).read_bytes()
    keys = ("barrier_test", "barrier_train", "copy_test_err")
    (got,), (want,) = store.read_instability(), RunStore(reference).read_instability()
    assert {k: got[k] for k in keys} == {k: want[k] for k in keys}


def remove_rewind(run: Path) -> None:
    (run / "rewind.pt").unlink()


BAD = [
    (["rounds=[5]"], "rounds [5] are not completed rounds of", None),
    (["alpha_points=1"], "alpha_points=1 must be at least 2", None),
    pytest.param((["rounds=[1]"], "rewind.pt is missing: round 1's start weights are needed",
                  remove_rewind), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: " ".join(c[0]) if isinstance(c, tuple)
                         else "missing start weights")
def test_bad_instability_input_gives_one_line_and_exit_2(base: Path, tmp_path: Path,
                                                         case: tuple) -> None:
    overrides, message, prepare = case
    run = copy_run(base, tmp_path)
    if prepare:
        prepare(run)
    before = ticket_files(run)
    result = instability(tmp_path, run, *overrides, "wandb_mode=disabled")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert ticket_files(run) == before
    assert not (run / "instability_copies.jsonl").exists()


@pytest.mark.slow
def test_an_early_bird_threshold_outside_its_range_is_one_line(tmp_path: Path) -> None:
    result = cli(tmp_path, "experiments.lottery", f"output_root={tmp_path / 'runs'}", *TINY,
                 "analysis.early_bird_every=50it", "analysis.early_bird_threshold=1.5",
                 "wandb.mode=disabled")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: analysis.early_bird_threshold=1.5 must")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("*.pt"))


# -- the hash ---------------------------------------------------------------------------------
def test_analysis_keys_are_hash_neutral_unless_the_early_bird_ticket_is_on() -> None:
    assert config_hash(to_dict(compose_with([]))) == DEFAULT_HASH
    for override in ["analysis.instability=true", "analysis.alpha_points=10",
                     "analysis.bn_reset=true", "analysis.train_samples=50",
                     "analysis.early_bird_every=100it", "analysis.early_bird_threshold=0.2"]:
        assert config_hash(to_dict(compose_with([override]))) == DEFAULT_HASH, override
    ticket = config_hash(to_dict(compose_with(["analysis.early_bird_every=100it",
                                               "analysis.early_bird_ticket=true"])))
    assert ticket != DEFAULT_HASH
    assert config_hash(to_dict(compose_with(["analysis.early_bird_every=200it",
                                             "analysis.early_bird_ticket=true"]))) != ticket


# -- the reports ------------------------------------------------------------------------------
def test_aggregate_instability_tables_the_barrier_by_rewind_point(analysed, tmp_path) -> None:
    from scripts.aggregate import main as aggregate_main

    assert aggregate_main([str(analysed["run"]), "--out", str(tmp_path), "--instability"]) == 0
    (record,) = RunStore(analysed["run"]).read_instability()
    (row,) = json.loads((tmp_path / "instability.json").read_text())
    assert row["rewind_iter"] == 0 and row["round"] == 1
    assert row["barrier_test"][0] == record["barrier_test"]
    assert row["stable"] == (record["barrier_test"] < 2.0)
    assert (tmp_path / "instability.png").exists()
    assert "| 0 | 1 |" in (tmp_path / "instability.md").read_text()


def test_masks_compares_the_ticket_with_one_shot_pruning(analysed, tmp_path) -> None:
    from scripts.masks import main as masks_main

    assert masks_main([str(analysed["run"]), "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "masks.json").read_text())
    overall = [r for r in rows if r["layer"] == "overall"]
    # Round 1 of IMP is one-shot pruning of round 0's weights: the very same mask.
    assert [(r["round"], r["comparison"]) for r in overall] == [(1, "iterative vs one-shot")]
    assert overall[0]["jaccard"][0] == 1.0 and overall[0]["hamming"][0] == 0.0
    assert overall[0]["chance_jaccard"] < 1.0 and (tmp_path / "masks.png").exists()


def test_a_stable_threshold_outside_0_100_is_one_line_and_exit_2(analysed, tmp_path) -> None:
    result = cli(tmp_path, "scripts.aggregate", str(analysed["run"]), "--out", str(tmp_path),
                 "--instability", "--stable", "150")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: --stable 150.0 must be in (0, 100): a barrier in "
                                     "percentage points (the paper uses 2)")
