"""experiments.distill: a student stored, seeded and resumed like a lottery run."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import experiments.distill as distill_cli
import experiments.lottery as lottery_cli
from lth.errors import ConfigError
from lth.store import RunStore
from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import ROOT, run_cli

CONF = str(ROOT / "conf")
TEACHER = ["experiment=mnist1d_mlp",  # the machinery on the small MLP
           "train.duration=60it", "train.eval_every=0it", "prune.rounds=1", "progress=false",
           "dataset.num_samples=1200", "wandb.mode=disabled", "device=cpu"]
STUDENT = ["train.duration=40it", "train.eval_every=20it", "progress=false",
           "wandb.mode=disabled", "device=cpu"]


def composed(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> tuple[Path, Path]:
    """Two stored lottery runs (seeds 0 and 1) of a tiny MNIST-1D MLP."""
    root = tmp_path_factory.mktemp("runs")
    return tuple(lottery_cli.run(composed("config", [*TEACHER, f"output_root={root}",
                                                     f"seed={s}"])).root for s in (0, 1))


def student(teacher: Path, *overrides: str) -> RunStore:
    return distill_cli.run(composed("distill", [f"teacher={teacher}", *STUDENT, *overrides]))


def test_student_is_stored_beside_its_teacher_and_skipped_when_complete(teachers, capsys
                                                                         ) -> None:
    store = student(teachers[0], "params_round=1")
    assert store.root.parent == teachers[0].parent.parent / "distill"
    (record,) = store.read_metrics()
    assert record["teacher"] == f"mnist1d_mlp/{teachers[0].name}" and record["round"] == 0
    # Sized to round 1's unpruned weights and biases (80% of the weights).
    teacher_record = RunStore(teachers[0]).read_metrics()[1]
    budget = teacher_record["remaining"] + record["teacher_params"] - teacher_record["total"]
    assert abs(record["params"] - budget) < 0.01 * budget
    final = store.load_tensors(store.final_path(0))
    assert sum(t.numel() for t in final.values()) == record["params"]
    stamps = {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.name != ".lock"}
    capsys.readouterr()
    assert student(teachers[0], "params_round=1").root == store.root
    assert "nothing to train" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in store.root.rglob("*") if p.name != ".lock"} == stamps


def test_hash_changes_with_teacher_round_and_temperature(teachers) -> None:
    roots = {student(teachers[0]).root, student(teachers[0], "temperature=2.0").root,
             student(teachers[1]).root, student(teachers[0], "round=1").root,
             student(teachers[0], "alpha=0.5").root}
    assert len(roots) == 5
    assert student(teachers[0], "train.checkpoint_every=10it").root in roots  # not hashed


class Crash(Exception):
    pass


def test_an_interrupted_student_resumes_bit_identically(teachers, tmp_path, monkeypatch
                                                        ) -> None:
    args = ["train.checkpoint_every=10it", "model=cnn1d", "params=3000"]
    reference = student(teachers[0], *args, f"output_root={tmp_path / 'ref'}")

    def crash(point: str) -> None:
        if point == "checkpoint:0:30":
            raise Crash(point)

    monkeypatch.setattr("lth.lottery.span.kill_point", crash)
    with pytest.raises(Crash):
        student(teachers[0], *args, f"output_root={tmp_path / 'run'}")
    monkeypatch.undo()
    resumed = student(teachers[0], *args, f"output_root={tmp_path / 'run'}")
    a, b = (s.load_tensors(s.final_path(0)) for s in (reference, resumed))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert reference.curve_path(0).read_text() == resumed.curve_path(0).read_text()
    assert not resumed.checkpoint_path(0).exists()
    assert 2500 < count_parameters_of(resumed) < 3500


def count_parameters_of(store: RunStore) -> int:
    return store.read_metrics()[0]["params"]


def test_a_missing_or_wrong_teacher_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="teacher is not set: pass teacher="):
        distill_cli.run(composed("distill", STUDENT))
    with pytest.raises(ConfigError, match=f"teacher={tmp_path} is not a run directory"):
        distill_cli.run(composed("distill", [*STUDENT, f"teacher={tmp_path}"]))


def cli(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, "experiments.distill", *overrides, "progress=false",
                   "train.duration=40it", env=env, threads=None)


def test_cli_student_logs_to_wandb(teachers, tmp_path) -> None:
    """W&B's environment variables are the defaults (project, directory); an explicit
    ``wandb.mode=`` on the command line wins over WANDB_MODE."""
    env = {"WANDB_MODE": "disabled", "WANDB_PROJECT": "students", "WANDB_DIR": str(tmp_path)}
    result = cli(tmp_path, f"teacher={teachers[1]}", f"output_root={tmp_path / 'runs'}",
                 "temperature=3.0", "wandb.mode=offline", env=env)
    assert result.returncode == 0, result.stderr
    root = Path(result.stdout.splitlines()[-1].removeprefix("run directory: "))
    (record,) = RunStore(root).read_metrics()
    run = read_wandb_run(find_wandb_file(tmp_path))
    assert run.group == "distill" and run.config["temperature"] == 3.0
    assert run.project == "students" and run.config["wandb"]["dir"] == str(tmp_path)
    rows = [row for row in run.history if "test/acc" in row and "round" in row]
    assert rows[-1]["test/acc"] == pytest.approx(record["test_acc"])
    assert json.loads((root / "run.json").read_text())["teacher"]["round"] == 0
    assert not (tmp_path / "distill.log").exists(), "Hydra logs to stdout, not into the cwd"


def test_cli_bad_teacher_round_is_one_line(teachers, tmp_path) -> None:
    result = cli(tmp_path, f"teacher={teachers[0]}", "round=7")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith("error: round=7 does not exist in ")
    assert result.stderr.count("\n") == 1 and "completed rounds are 0..1" in result.stderr
    assert not (teachers[0].parent.parent / "distill").exists() or all(
        "round=7" not in p.read_text() for p in
        (teachers[0].parent.parent / "distill").glob("*/config.yaml"))


def test_a_stored_student_reopens_as_its_kind_and_an_edited_one_is_refused(
        teachers, tmp_path, monkeypatch, capsys) -> None:
    from experiments.stored import open_run
    from lth.errors import CheckpointError
    from scripts import runs as runs_cli

    store = student(teachers[0], "params_round=1")  # stored by the first test: not retrained
    opened = open_run(store.root, key="--student-run", kinds=("distill",))
    assert opened.kind == "distill" and opened.cfg.teacher == str(teachers[0])
    with pytest.raises(ConfigError, match="is a run of python -m experiments.distill"):
        open_run(store.root)  # a student is no teacher for a lottery branch
    # The index reads students through the same store readers, hash checked.
    assert runs_cli.main([str(teachers[0].parent.parent)]) == 0
    listed = [ln.split()[:2] for ln in capsys.readouterr().out.splitlines()]
    assert ["distill", store.root.name] in listed
    copy = tmp_path / "distill" / store.root.name
    shutil.copytree(store.root, copy, ignore=shutil.ignore_patterns(".lock"))
    config = copy / "config.yaml"
    config.write_text(config.read_text().replace("temperature: 4.0", "temperature: 2.0"))
    with pytest.raises(CheckpointError, match=f"hashes to .*, not to its directory's name "
                       f"{store.root.name}: it was edited"):
        open_run(copy, kinds=("distill",))
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch_pruning")
    from scripts import deploy_report

    monkeypatch.setattr(sys, "argv", ["deploy_report", "--archs", "", "--out",
                                      str(tmp_path / "report"), "--ticket-run",
                                      str(teachers[0]), "--student-run", str(copy)])
    assert deploy_report.main() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {config} hashes to ")
    assert not (tmp_path / "report").exists()  # refused before anything is measured
