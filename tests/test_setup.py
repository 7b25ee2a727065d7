"""experiments.setup through the real CLI: W&B replays once, library errors become one line,
runs record the versions that made them, and `--help` stays light."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import lth
from experiments import versions as provenance
from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import PYTHON, ROOT, cli_env
from tests.test_cli import TINY, lottery, run_dir

NAME = "mnist1d_mlp"
FAST = [*TINY, "prune.rounds=1", "train.duration=100it", "train.eval_every=50it"]


def run_files(root: Path) -> dict[Path, bytes]:
    """Every file of the run store under ``root`` (Hydra's own logs and the lock aside)."""
    return {p: p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.name != ".lock" and ".hydra" not in p.parts}


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory) -> Path:
    """A completed tiny run (rounds 0 and 1, no W&B): its output root."""
    tmp = tmp_path_factory.mktemp("setup")
    result = lottery(tmp, *FAST, "wandb.mode=disabled")
    assert result.returncode == 0, result.stderr
    return tmp / "runs"


def copy_of(stored_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(stored_run / NAME, tmp_path / "runs" / NAME)
    return next((tmp_path / "runs" / NAME).iterdir())


# -- W&B: each round once per seed's run ------------------------------------------------------
def test_replicas_resume_logs_each_round_once_to_wandb(tmp_path: Path) -> None:
    tiny = [*FAST, "replicas=2", "wandb.mode=offline"]

    def rounds_in_wandb(directory: Path) -> list[int]:
        run = read_wandb_run(find_wandb_file(tmp_path, run_id=f"{NAME}-{directory.name}"))
        return [row["round"] for row in run.history if "round" in row and "test/acc" in row]

    first = lottery(tmp_path, *tiny)
    assert first.returncode == 0, first.stderr
    dirs = [Path(ln.removeprefix("run directory: ")) for ln in first.stdout.splitlines()
            if ln.startswith("run directory: ")]
    assert len(dirs) == 2 and [rounds_in_wandb(d) for d in dirs] == [[0, 1], [0, 1]]
    more = lottery(tmp_path, *[o for o in tiny if o != "prune.rounds=1"], "prune.rounds=2")
    assert more.returncode == 0, more.stderr
    assert more.stdout.count("stored)") == 4  # two rounds of each seed were kept
    # The newest W&B folder of each seed (this process's) holds every round exactly once.
    assert [rounds_in_wandb(d) for d in dirs] == [[0, 1, 2], [0, 1, 2]]


# -- library exceptions: one line naming the key --------------------------------------------
LIBRARY_ERRORS = [
    (["optimizer=sgd", "optimizer.momentum=-1"], "optimizer.momentum=-1.0"),
    (["optimizer.betas=[2,0.9]"], "optimizer.betas=[2.0, 0.9]"),
    (["optimizer.weight_decay=-1"], "optimizer.weight_decay=-1.0"),
    (["+optimizer.foo=1"], "optimizer.foo is not a parameter of torch.optim.Adam"),
    (["train.gamma=-1"], "train.gamma=-1.0 must be a positive number"),
    (["model.hidden=[ab]"], "model.hidden=['ab'] is invalid for lth.models.MLP1D"),
    (["+model.foo=1"], "model.foo is not a parameter of lth.models.MLP1D"),
]


@pytest.mark.parametrize("overrides,message", LIBRARY_ERRORS,
                         ids=[" ".join(overrides) for overrides, _ in LIBRARY_ERRORS])
def test_library_errors_give_one_line_naming_the_key(stored_run: Path, tmp_path: Path,
                                                     overrides: list[str], message: str) -> None:
    copy_of(stored_run, tmp_path)
    before = run_files(tmp_path / "runs")
    result = lottery(tmp_path, *FAST, "wandb.mode=disabled", *overrides)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr
    assert run_files(tmp_path / "runs") == before, "a run directory was touched or created"


# -- versions ---------------------------------------------------------------------------------
def test_run_json_records_the_versions(stored_run: Path) -> None:
    info = json.loads(next((stored_run / NAME).iterdir()).joinpath("run.json").read_text())
    assert info["versions"]["lth"] == lth.__version__
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|unknown", info["versions"]["commit"])


def test_other_lth_version_warns_once_and_resumes(stored_run: Path, tmp_path: Path) -> None:
    directory = copy_of(stored_run, tmp_path)
    info = json.loads((directory / "run.json").read_text())
    info["versions"]["lth"] = "0.0.1"
    (directory / "run.json").write_text(json.dumps(info))
    result = lottery(tmp_path, *FAST, "wandb.mode=disabled", "prune.rounds=2")
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: "), result.stderr
    assert "lth 0.0.1" in lines[0] and f"lth {lth.__version__}" in lines[0]
    assert run_dir(result) == directory and result.stdout.count("(stored)") == 2
    assert len((directory / "metrics.jsonl").read_text().splitlines()) == 3
    rounds = json.loads((directory / "run.json").read_text())["rounds"]
    assert rounds["2"]["lth"] == lth.__version__ and rounds["2"]["commit"]
    again = lottery(tmp_path, *FAST, "wandb.mode=disabled", "prune.rounds=2")
    assert "lth 0.0.1" in again.stderr, "a run of mixed versions warns at every resume"


def test_stored_versions_are_the_runs_and_every_rounds() -> None:
    info = {"versions": {"lth": "0.1.0"}, "rounds": {"2": {"lth": "0.3"}, "10": {"lth": "0.4"},
                                                     "11": {"lth": "0.4"}}}
    assert provenance.stored_versions(info) == ["0.1.0", "0.3", "0.4"]
    assert provenance.stored_versions({"versions": {"lth": "0.1.0"}}) == ["0.1.0"]
    assert provenance.stored_versions({}) == []


def test_commit_is_unknown_outside_a_checkout_or_without_git(tmp_path, monkeypatch) -> None:
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", provenance.git_commit())  # tests run in one
    (tmp_path / "lth").mkdir()
    try:
        provenance.git_commit.cache_clear()
        monkeypatch.setattr(lth, "__file__", str(tmp_path / "lth" / "__init__.py"))
        assert provenance.git_commit() == "unknown"
        monkeypatch.undo()
        provenance.git_commit.cache_clear()
        monkeypatch.setenv("PATH", str(tmp_path))  # no git to run
        assert provenance.git_commit() == "unknown"
    finally:
        provenance.git_commit.cache_clear()


# -- lazy imports -----------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"]])
def test_help_and_composing_do_not_import_torch(args: list[str]) -> None:
    for module in ("experiments.lottery", "experiments.control", "experiments.export",
                   "experiments.distill"):
        result = subprocess.run([PYTHON, "-X", "importtime", "-m", module, *args], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        if args == ["--help"]:
            assert result.returncode == 0, result.stderr
        imported = {ln.rsplit("|", 1)[-1].strip() for ln in result.stderr.splitlines()
                    if ln.startswith("import time:")}
        assert "hydra" in imported and "torch" not in imported, module


# -- experiments.control on a run whose config no longer hashes to its directory ----------------
def test_control_on_a_changed_config_is_refused_before_anything_is_written(
        stored_run: Path, tmp_path: Path) -> None:
    directory = copy_of(stored_run, tmp_path)
    config = directory / "config.yaml"
    config.write_text(config.read_text().replace("fraction: 0.2", "fraction: 0.3", 1))
    before = run_files(tmp_path / "runs")
    result = subprocess.run(
        [PYTHON, "-m", "experiments.control", f"run_dir={directory}", "control=random_prune"],
        cwd=tmp_path, env={**cli_env(tmp_path)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "hashes to" in lines[0] and lines[0].startswith("error:"), lines
    assert run_files(tmp_path / "runs") == before, "a refused control writes nothing"
    assert sorted(p.name for p in (tmp_path / "runs" / NAME).iterdir()) == [directory.name]
