"""The real CLI, end to end, in a subprocess: files, W&B records, resume, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import PYTHON, ROOT, cli_env

TINY = ["train.duration=200it", "train.eval_every=100it", "prune.rounds=2",
        "dataset.num_samples=1200", "dataset.val_size=100", "progress=false"]


def lottery(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "experiments.lottery", f"output_root={tmp_path / 'runs'}",
         f"wandb.dir={tmp_path}", *overrides],
        cwd=tmp_path, env=cli_env(tmp_path), capture_output=True, text=True, timeout=300,
    )


def run_dir(result: subprocess.CompletedProcess) -> Path:
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("run directory: ")]
    assert lines, result.stdout + result.stderr
    return Path(lines[-1].removeprefix("run directory: "))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    result = lottery(tmp, *TINY, "wandb.mode=offline")
    assert result.returncode == 0, result.stderr
    return tmp, result


def test_cli_writes_one_record_per_round(first_run) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    assert directory.parent.name == "mnist1d_mlp"
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [0, 1, 2]
    for r in records:
        for key in ("density", "sparsity", "remaining", "test_acc", "best_test_acc", "best_iter",
                    "train_loss", "wall_s", "layer_density", "val_acc"):
            assert key in r, key
    assert records[0]["density"] == 1.0 and records[2]["density"] < records[1]["density"] < 1
    for k in range(3):
        assert (directory / f"round_{k}" / "mask.pt").exists()
        assert (directory / f"round_{k}" / "final.pt").exists()
    assert (directory / "rewind.pt").exists() and (directory / "config.yaml").exists()
    info = json.loads((directory / "run.json").read_text())
    assert info["hash"] == directory.name and "torch" in info["versions"]
    # The table: a header and a line per round, ending with the run directory.
    table = [ln for ln in result.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(table) == 3 and "round" in result.stdout.splitlines()[0]


def test_wandb_run_holds_the_same_numbers(first_run) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    run = read_wandb_run(find_wandb_file(tmp))
    assert run.group == "mnist1d_mlp"
    assert run.config["prune"]["rounds"] == 2 and run.config["seed"] == 0
    rows = [row for row in run.history if "round" in row and "test/acc" in row]
    assert [row["round"] for row in rows] == [0, 1, 2]
    for row, record in zip(rows, records):
        assert row["test/acc"] == pytest.approx(record["test_acc"])
        assert row["density"] == pytest.approx(record["density"])
        for layer, d in record["layer_density"].items():
            assert row[f"layer_density/{layer}"] == pytest.approx(d)
    curves = [row for row in run.history if "curve/train/loss" in row]
    assert len(curves) >= 3 * 3  # iterations 0, 100, 200 of each round
    assert run.metrics.get("test/acc") == "round"


def test_second_invocation_does_no_training(first_run) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    stamps = {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()}
    again = lottery(tmp, *TINY, "wandb.mode=offline")
    assert again.returncode == 0, again.stderr
    assert run_dir(again) == directory
    assert "nothing to train" in again.stdout
    assert again.stdout.count("(stored)") == 3
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()} == stamps


def test_raising_rounds_extends_the_same_run(first_run, tmp_path: Path) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    more = lottery(tmp, *[o for o in TINY if not o.startswith("prune.rounds")],
                   "prune.rounds=3", "wandb.mode=disabled")
    assert more.returncode == 0, more.stderr
    assert run_dir(more) == directory
    assert more.stdout.count("(stored)") == 3
    assert len((directory / "metrics.jsonl").read_text().splitlines()) == 4


@pytest.mark.parametrize("overrides,message", [
    (["prune.fraction=1.5"], "prune.fraction=1.5 is outside [0, 1)"),
    (["train.duration=-5it"], "train.duration='-5it' is not a duration"),
    (["prune.rewind=10000it"], "later than train.duration"),
    (["prune.strategy=biggest"], "prune.strategy='biggest' is unknown"),
    (["dataset=mnist", "dataset.root=/nonexistent/data", "dataset.num_samples=null"],
     "dataset.download=true"),
    (["model=lenet5"], "LeNet5 needs an image input_shape"),
    (["model=cnn1d", "dataset=digits", "dataset.num_samples=null"],
     "CNN1D needs input_shape (C, L)"),
])
def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path: Path, overrides: list[str],
                                                   message: str) -> None:
    result = lottery(tmp_path, *TINY, "wandb.mode=disabled", *overrides)
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_model_fails_at_composition(tmp_path: Path) -> None:
    result = lottery(tmp_path, "model=resnet1000", "wandb.mode=disabled")
    assert result.returncode != 0
    assert "model/resnet1000" in result.stderr or "resnet1000" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_lists_the_groups() -> None:
    result = subprocess.run([PYTHON, "-m", "experiments.lottery", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for group in ("model:", "dataset:", "optimizer:", "prune:", "experiment:"):
        assert group in result.stdout
