"""The one reopening of a stored run (experiments.stored.open_run, the store's readers) from
every entry point that reads one: a config.yaml that was edited (it no longer hashes to its
directory's name) and a run directory without config.yaml are each one ``error:`` line naming
the fix, exit code 2, and nothing stored changes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

from experiments.stored import open_run
from lth.errors import CheckpointError, ConfigError
from lth.store import RunStore, run_hash
from tests.conftest import PYTHON, ROOT, cli_env

FIXTURE = ROOT / "tests" / "fixtures" / "run_before_mask_state" / "complete" / "fed9c28484ab"
DEPLOY = all(importlib.util.find_spec(m) for m in ("onnxruntime", "torch_pruning"))


def stored(tmp: Path, damage: str | None = None) -> Path:
    """A copy of a stored lottery run (2 rounds, both controls), damaged as named."""
    run = tmp / "runs" / "complete" / FIXTURE.name
    shutil.copytree(FIXTURE, run)
    config = run / "config.yaml"
    if damage == "edited":
        config.write_text(config.read_text().replace("fraction: 0.2", "fraction: 0.3", 1))
    elif damage == "no_config":
        config.unlink()
    return run


def files(root: Path) -> dict[str, bytes]:
    """Every stored file under ``root`` (Hydra's own folders and the lock aside)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".hydra" not in p.parts and p.name != ".lock"}


def command(entry: str, run: Path, tmp: Path) -> list[str]:
    """The command line of ``entry`` on the run directory ``run``."""
    out = str(tmp / "out")
    return {
        "control": ["-m", "experiments.control", f"run_dir={run}", "control=random_prune"],
        "instability": ["-m", "experiments.instability", f"run_dir={run}", "rounds=[1]"],
        "distill": ["-m", "experiments.distill", f"teacher={run}", f"output_root={out}"],
        "export": ["-m", "experiments.export", f"run_dir={run}", "format=sparse"],
        "deploy_report": ["-m", "scripts.deploy_report", "--archs", "", "--out", out,
                          "--ticket-run", str(run)],
        "masks": ["-m", "scripts.masks", str(run), "--out", out],
        "aggregate": ["-m", "scripts.aggregate", str(run), "--out", out],
        "compare_methods": ["-m", "scripts.compare_methods", str(run), "--out", out],
        "runs": ["-m", "scripts.runs", str(run.parent.parent)],
    }[entry]


def expected(entry: str, damage: str, run: Path) -> str:
    """What the one error line says."""
    if damage == "edited":
        return f"{run / 'config.yaml'} hashes to "
    if entry in ("masks", "aggregate", "compare_methods", "runs"):  # found by their files
        return f"{run / 'config.yaml'} is missing: restore it"
    key = {"distill": "teacher=", "deploy_report": "--ticket-run="}.get(entry, "run_dir=")
    return f"{key}{run} is not a run directory (no config.yaml): pass the run directory"


ENTRIES = ["control", "instability", "distill", "export",
           pytest.param("deploy_report", marks=pytest.mark.skipif(
               not DEPLOY, reason="needs the deploy extra")),
           "masks", "aggregate", "compare_methods", "runs"]


@pytest.mark.parametrize("damage", ["edited", "no_config"])
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_damaged_run_is_one_line_exit_2_and_nothing_changes(entry: str, damage: str,
                                                               tmp_path: Path) -> None:
    run = stored(tmp_path, damage)
    before = files(tmp_path / "runs")
    result = subprocess.run([PYTHON, *command(entry, run, tmp_path)], cwd=tmp_path,
                            env={**cli_env(tmp_path), "OMP_NUM_THREADS": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expected(entry, damage, run) in lines[0], lines
    assert files(tmp_path / "runs") == before, "a refused command changes nothing stored"
    assert not files(tmp_path / "out") if (tmp_path / "out").exists() else True


# -- the reopening itself -------------------------------------------------------------------
def test_a_stored_run_reopens_with_its_schema_where_it_lies(tmp_path: Path) -> None:
    run = stored(tmp_path)
    opened = open_run(run)
    assert opened.kind == "lottery" and opened.identity == f"complete/{FIXTURE.name}"
    assert opened.cfg.output_root == str(tmp_path / "runs") and opened.cfg.name == "complete"
    assert opened.cfg.prune.fraction == 0.2 and opened.cfg.analysis.instability is False
    store = RunStore(run)
    assert run_hash(store.read_config()) == run.name  # the store's plain reader agrees


@pytest.mark.parametrize("path, message", [
    (None, "run_dir is not set: pass run_dir=<the run directory printed by"),
    ("missing", "is not a run directory (no such directory)"),
    ("parent", "is not a run directory (no config.yaml)"),
])
def test_paths_that_are_not_run_directories(tmp_path: Path, path: str | None,
                                            message: str) -> None:
    run = stored(tmp_path)
    where = {None: None, "missing": tmp_path / "nope", "parent": run.parent}[path]
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_run(where)


def test_a_run_of_another_kind_or_schema_is_refused(tmp_path: Path) -> None:
    run = stored(tmp_path)
    with pytest.raises(ConfigError, match="is a run of python -m experiments.lottery: pass "
                       "the run directory printed by python -m experiments.distill"):
        open_run(run, key="--student-run", kinds=("distill",))
    config = run / "config.yaml"
    config.write_text(config.read_text().replace("fraction: 0.2", "fraction: lots", 1))
    with pytest.raises(ConfigError, match="does not fit the lottery run schema"):
        open_run(run)
    config.write_text("prune: [unclosed\n")
    with pytest.raises(CheckpointError, match=r"is not YAML at line \d: restore it"):
        open_run(run)
    config.write_text("- a list\n")
    with pytest.raises(CheckpointError, match="is not a mapping of config keys"):
        RunStore(run).read_config()
