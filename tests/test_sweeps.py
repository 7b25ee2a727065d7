"""Seed sweeps through the real CLI, controls added later, and their aggregation.

Multiruns with the basic launcher, experiments.control on a stored run, and scripts.aggregate
over the sweep; the launcher and W&B sweep files compose; the joblib and submitit_local
launchers run a sweep (slow: each job process imports torch again).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from experiments.pair_schema import register  # every command's schema
from lth.tracking import find_wandb_file, read_wandb_run
from scripts.aggregate import main as aggregate_main
from tests.conftest import ROOT, run_cli

TINY = ["experiment=mnist1d_mlp", "train.duration=200it", "prune.rounds=2",
        "dataset.num_samples=1200", "progress=false"]
register()


def cli(tmp: Path, module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    result = run_cli(tmp, module, *args, cwd=ROOT, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def lottery_sweep(tmp: Path, sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return cli(tmp, "experiments.lottery", "-m", "seed=0,1", *TINY,
               f"output_root={tmp / 'runs'}", f"wandb.dir={tmp}",
               f"hydra.sweep.dir={sweep_dir}", *args)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def control_in_process(*overrides: str) -> str:
    """experiments.control's run() on a composed config (a process start saved); its stdout."""
    from experiments.control import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="control", overrides=list(overrides))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            run(cfg)
    finally:
        torch.set_num_threads(threads)
    return out.getvalue()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    """Two seeds with random_prune; random_reinit added later by both routes; aggregated."""
    tmp = tmp_path_factory.mktemp("sweep")
    first = tmp / "multirun"
    lottery_sweep(tmp, first, "prune.controls=[random_prune]", "wandb.mode=offline")
    run_dirs = [Path((first / str(j) / "run_dir.txt").read_text().strip()) for j in (0, 1)]
    stamps = {p: p.stat().st_mtime_ns for d in run_dirs for p in d.rglob("*")
              if p.is_file() and "controls" not in p.parts and p.suffix in (".pt", ".json")}
    stamps.update({d / "metrics.jsonl": (d / "metrics.jsonl").stat().st_mtime_ns
                   for d in run_dirs})
    wandb_file = find_wandb_file(tmp)
    control = control_in_process(f"run_dir={run_dirs[0]}", "control=random_reinit",
                                 "rounds=[2]", "progress=false", "wandb_mode=disabled")
    second = lottery_sweep(tmp, tmp / "multirun2", "prune.controls=[random_reinit,random_prune]",
                           "wandb.mode=disabled")
    out = tmp / "aggregate"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert aggregate_main([str(first), "--out", str(out)]) == 0
    return dict(tmp=tmp, run_dirs=run_dirs, stamps=stamps, wandb_file=wandb_file, out=out,
                control=control, second=second.stdout, aggregate=printed.getvalue())


def test_a_sweep_runs_one_experiment_per_seed(sweep) -> None:
    dirs = sweep["run_dirs"]
    assert len(set(dirs)) == 2 and dirs[0].parent == dirs[1].parent
    for seed, d in enumerate(dirs):
        assert yaml.safe_load((d / "config.yaml").read_text())["seed"] == seed
        assert [r["round"] for r in jsonl(d / "metrics.jsonl")] == [0, 1, 2]


def test_controls_are_stored_and_logged_beside_the_ticket(sweep) -> None:
    run = read_wandb_run(sweep["wandb_file"])
    rows = [r for r in run.history if "control/random_prune/test/acc" in r]
    assert [r["round"] for r in rows] == [1, 2]
    assert run.metrics.get("control/random_prune/test/acc") == "round"
    directory = next(d for d in sweep["run_dirs"] if d.name in run.run_id)
    records = [r for r in jsonl(directory / "controls.jsonl") if r["control"] == "random_prune"]
    for row, record in zip(rows, records[:2]):
        assert row["control/random_prune/test/acc"] == pytest.approx(record["test_acc"])
    for k in (1, 2):
        assert (directory / f"round_{k}" / "controls" / "random_prune" / "final.pt").exists()


def table_rows(output: str) -> str:
    """The printed table's rows of ``output`` (a round number first)."""
    return "\n".join(line for line in output.splitlines() if re.match(r"\s+\d+ ", line))


def test_adding_controls_later_trains_only_them(sweep) -> None:
    assert table_rows(sweep["control"]).count("(random_reinit)") == 1  # round 2 only
    second = table_rows(sweep["second"])  # the rows trained (not the summary's reading)
    assert second.count("(random_reinit)") == 3  # seed 0 round 1, seed 1 rounds 1 and 2
    assert "(random_prune)" not in second  # stored ones are not retrained
    changed = [p for p, t in sweep["stamps"].items() if p.stat().st_mtime_ns != t]
    assert changed == []  # the tickets' files are untouched
    for d in sweep["run_dirs"]:
        pairs = sorted((r["round"], r["control"]) for r in jsonl(d / "controls.jsonl"))
        assert pairs == sorted(itertools.product([1, 2], ["random_prune", "random_reinit"]))


def test_aggregate_writes_the_table_and_figures_of_the_means(sweep) -> None:
    out = sweep["out"]
    for name in ("table.md", "table.tex", "summary.csv", "accuracy.png", "accuracy.pdf",
                 "layer_density.png", "layer_density.pdf"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "accuracy.pdf").read_bytes()[:4] == b"%PDF"
    runs = [(jsonl(d / "metrics.jsonl"), jsonl(d / "controls.jsonl"))
            for d in sweep["run_dirs"]]
    rows = {(r["series"], int(r["round"])): r
            for r in csv.DictReader((out / "summary.csv").open())}
    text = (out / "table.md").read_text()
    table = text.split("\n\n")[0].splitlines()  # the first table: means per series
    header = [c.strip() for c in table[0].strip("|").split("|")]
    cells = {int(line.strip("|").split("|")[0]): [c.strip() for c in line.strip("|").split("|")]
             for line in table[2:] if line.startswith("| ")}
    for k in (0, 1, 2):
        series = {"ticket": [m[k]["test_acc"] for m, _ in runs]}
        if k:
            for name in ("random_prune", "random_reinit"):
                series[name] = [c["test_acc"] for _, cs in runs for c in cs
                                if c["round"] == k and c["control"] == name]
        for name, values in series.items():
            mean = sum(values) / len(values)
            assert len(values) == 2
            assert float(rows[name, k]["test_acc_mean"]) == pytest.approx(mean, abs=1e-12)
            cell = cells[k][header.index(name)]
            assert cell.split(" ± ")[0] == f"{100 * mean:.2f}", (k, name, cell)
    assert "- ticket (n=2): " in text and "ticket − random_prune" in text  # verdict, paired
    assert "seeds 0, 1" in sweep["aggregate"]


def test_w_and_b_sweep_file_passes_hydra_overrides() -> None:
    from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args

    path = ROOT / "scripts" / "sweeps" / "mnist1d_seeds.yaml"  # W&B's, not a Hydra group
    sweep = yaml.safe_load(path.read_text())
    command = create_sweep_command(sweep["command"])
    assert command[-3:] == ["-m", "experiments.lottery", "${args_no_hyphens}"]
    params = sweep["parameters"]
    grid = params["seed"]["values"]
    assert grid == [0, 1, 2, 3, 4]
    for seed in grid:
        args = {k: {"value": v.get("value", seed)} for k, v in params.items()}
        overrides = create_sweep_command_args({"args": args})["args_no_hyphens"]
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            cfg = compose(config_name="config", overrides=overrides)
        assert cfg.seed == seed and cfg.wandb.mode == "online" and cfg.prune.rounds == 15
        assert cfg.name == "mnist1d_mlp"
        assert list(cfg.prune.controls) == ["random_reinit", "random_prune"]


def test_slurm_launcher_config_composes() -> None:
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.timeout_min == 240 and launcher.max_num_timeout == 3


@pytest.mark.slow
@pytest.mark.parametrize("launcher,plugin", [
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], "hydra_joblib_launcher"),
    (["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10",
      "hydra.launcher.cpus_per_task=1"], "hydra_submitit_launcher"),
])
def test_launcher_plugins_run_a_sweep(tmp_path: Path, launcher: list[str], plugin: str) -> None:
    pytest.importorskip(f"hydra_plugins.{plugin}")
    sweep_dir = tmp_path / "multirun"
    lottery_sweep(tmp_path, sweep_dir, "wandb.mode=disabled", "prune.controls=[random_prune]",
                  *launcher)
    for job in (0, 1):
        run_dir = Path((sweep_dir / str(job) / "run_dir.txt").read_text().strip())
        assert len(jsonl(run_dir / "metrics.jsonl")) == 3
        assert len(jsonl(run_dir / "controls.jsonl")) == 2
    if plugin == "hydra_submitit_launcher":
        assert list((sweep_dir / ".submitit").iterdir())
