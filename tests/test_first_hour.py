"""What a new user meets first: the scripts installed with the package and runnable from any
folder, with a real --help; launchers without their plugin named in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import tomllib
import torch
from setuptools import find_packages

from tests.conftest import ROOT, run_cli

SCRIPTS = sorted(p.stem for p in (ROOT / "scripts").glob("*.py")
                 if not p.stem.startswith("_") and p.stem != "__init__")


def test_the_package_installs_the_scripts() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(str(ROOT), include=include)
    assert {"lth", "experiments", "scripts"} <= set(packages)
    assert "tests" not in packages


@pytest.mark.parametrize("script", ["runs", "aggregate", "masks", "compare_methods",
                                    "bench_denormals"])
def test_a_script_runs_from_another_folder_with_its_help(tmp_path: Path, script: str) -> None:
    out = run_cli(tmp_path, f"scripts.{script}", "--help", cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python -m scripts.{script}")
    assert len(out.stdout.splitlines()) > 8  # the module's description, not bare argparse


@pytest.mark.parametrize("launcher", ["joblib", "slurm"])
def test_a_cluster_launcher_without_its_plugin_names_the_extra(tmp_path: Path,
                                                               launcher: str) -> None:
    # A regular package named hydra_plugins first on the path hides the installed plugins,
    # as on a machine installed without the cluster extra.
    (tmp_path / "noplug" / "hydra_plugins").mkdir(parents=True)
    (tmp_path / "noplug" / "hydra_plugins" / "__init__.py").write_text("")
    out = run_cli(tmp_path, "experiments.lottery", f"hydra/launcher={launcher}", "--cfg",
                  "hydra", env={"PYTHONPATH": f"{tmp_path / 'noplug'}:{ROOT}"}, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: hydra/launcher={launcher} needs its Hydra plugin, which is not installed: "
        'pip install -e ".[cluster]"']


def test_the_subnormal_benchmark_flushes_only_its_own_run() -> None:
    from scripts.bench_denormals import measure

    flushed = measure(300, flush=True, block=150)
    assert [b["iterations"] for b in flushed["blocks"]] == [150, 300]
    assert all(b["subnormal_exp_avg"] == 0 for b in flushed["blocks"])
    tiny = torch.tensor(torch.finfo(torch.float32).tiny)
    assert float(tiny / 2) > 0  # flushing ends with the measurement: subnormals exist again
