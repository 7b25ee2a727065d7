"""Run directories written before masks became training state (tests/fixtures/
run_before_mask_state, checkpoint format 1) skip and resume under the current code, under the
hash they were stored with."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from lth.store import RunStore
from tests.conftest import PYTHON, ROOT, cli_env

FIXTURE = ROOT / "tests" / "fixtures" / "run_before_mask_state"
HASH = "fed9c28484ab"
ARGS = ["experiment=mnist1d_mlp", "model.hidden=[24,24]", "train.duration=150it",
        "train.eval_every=50it", "train.checkpoint_every=50it", "prune.rounds=2",
        "dataset.num_samples=600", "dataset.val_size=100", "progress=false",
        "wandb.mode=disabled"]


def copied(tmp_path: Path, name: str) -> RunStore:
    root = tmp_path / "runs"
    shutil.copytree(FIXTURE / name, root / name)
    return RunStore(root / name / HASH)


def rerun(tmp_path: Path, name: str, controls: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", *ARGS, f"name={name}",
         f"prune.controls={controls}", f"output_root={tmp_path / 'runs'}"],
        cwd=tmp_path, env={**cli_env(tmp_path), "OMP_NUM_THREADS": "1"}, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f"{name}/{HASH}")
    return result


def digests(store: RunStore) -> dict[str, str]:
    return {str(p.relative_to(store.root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(store.root.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_complete_old_run_is_skipped_and_nothing_stored_changes(tmp_path: Path) -> None:
    store = copied(tmp_path, "complete")
    before = digests(store)
    result = rerun(tmp_path, "complete", "[random_reinit,random_prune]")
    assert "all 3 rounds are complete; nothing to train" in result.stdout
    assert digests(store) == before


@pytest.mark.parametrize("name,k,control", [("interrupted", 1, None),
                                            ("interrupted_control", 1, "random_prune")])
def test_an_old_checkpoint_resumes(tmp_path: Path, name: str, k: int, control: str | None
                                   ) -> None:
    store = copied(tmp_path, name)
    path = store.checkpoint_path(k, control)
    old = store.load(path, "")
    assert old["format"] == 1 and "mask" not in old["train"]
    kept = {p: d for p, d in digests(store).items() if not p.endswith(("checkpoint.pt",
                                                                       "checkpoint.pt.sha256"))}
    rerun(tmp_path, name, "[random_prune]")
    after = digests(store)
    changed = [p for p, d in kept.items() if after[p] != d]
    # the records gain lines and run.json the versions of the rounds trained now
    assert all(p.endswith(".jsonl") or p == "run.json" for p in changed), changed
    points = json.loads(store.curve_path(k, control).read_text())
    # resumed, not restarted: the evaluations before the checkpoint are the checkpoint's own
    n = len(old["train"]["evals"])
    assert json.dumps(points[:n]) == json.dumps(old["train"]["evals"])  # NaN-safe
    assert [r["round"] for r in store.read_metrics()] == [0, 1, 2]
    assert {(r["round"], r["control"]) for r in store.read_controls()} == {
        (1, "random_prune"), (2, "random_prune")}
    assert not list(store.root.rglob("checkpoint.pt"))
    reference = [json.loads(line) for line in
                 (FIXTURE / "reference" / "metrics.jsonl").read_text().splitlines()]
    for got, want in zip(store.read_metrics(), reference):
        assert got["density"] == want["density"]
        # The same numbers on the machine that wrote the fixture; elsewhere kernels may
        # round otherwise in the last bit, so the accuracy is compared to a few test samples.
        assert got["test_acc"] == pytest.approx(want["test_acc"], abs=4 / 120 + 1e-9)
