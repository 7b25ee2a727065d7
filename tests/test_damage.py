"""Records that survive damage: a hand-damaged run directory or a bad option is one ``error:``
line naming the fix (exit code 2), refused before anything trains or is written, and nothing
stored is rewritten or lost."""

from __future__ import annotations

import json
import math
import shutil
from contextlib import ExitStack
from pathlib import Path

import pytest

from lth.errors import CheckpointError, ConfigError
from lth.store import RunStore
from tests.conftest import ROOT, make_lottery, run_cli

FIXTURE = ROOT / "tests" / "fixtures" / "run_before_mask_state" / "complete" / "fed9c28484ab"
NOT_RECORDS = ["{}", "[1, 2]", '"round"', "3"]


def stored(tmp: Path) -> Path:
    """A copy of a finished lottery run (rounds 0-2, both controls)."""
    run = tmp / "runs" / "complete" / FIXTURE.name
    shutil.copytree(FIXTURE, run)
    return run


def one_error(result, *parts: str) -> str:
    """The one ``error:`` line of a refused command (exit code 2), holding ``parts``."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


# -- run.json is never rewritten ------------------------------------------------------------
def test_a_deleted_config_is_rewritten_and_run_json_kept(tmp_path: Path) -> None:
    from experiments import setup
    from experiments.stored import open_run, prepared

    run = stored(tmp_path)
    opened = open_run(run)
    _, settings = prepared(opened)
    before = (run / "run.json").read_bytes()
    assert json.loads(before)["rounds"]  # the per-round version records
    (run / "config.yaml").unlink()
    with ExitStack() as stack:
        store = setup.open_store(opened.cfg, settings, stack)
    assert store.root == run and (run / "config.yaml").is_file()
    assert (run / "run.json").read_bytes() == before


@pytest.mark.slow
def test_a_students_run_json_survives_a_deleted_config(tmp_path: Path) -> None:
    args = (f"teacher={stored(tmp_path)}", f"output_root={tmp_path / 'out'}",
            "train.duration=10it", "train.eval_every=10it", "progress=false")
    first = run_cli(tmp_path, "experiments.distill", *args)
    assert first.returncode == 0, first.stderr
    (student,) = (tmp_path / "out").glob("distill/*")
    info = json.loads((student / "run.json").read_text())
    assert info["rounds"]["0"]["kernels"]
    (student / "config.yaml").unlink()
    result = run_cli(tmp_path, "experiments.distill", *args)
    assert result.returncode == 0, result.stderr
    assert json.loads((student / "run.json").read_text()) == info


# -- JSONL lines that are JSON but not records; lost lines ----------------------------------
@pytest.mark.parametrize("line", NOT_RECORDS)
@pytest.mark.parametrize("name", ["metrics.jsonl", "controls.jsonl"])
def test_a_line_that_is_not_a_record_is_named(tmp_path: Path, name: str, line: str) -> None:
    run = stored(tmp_path)
    path = run / name
    path.write_text(path.read_text() + line + "\n")
    n = len(path.read_text().splitlines())
    store = RunStore(run)
    with pytest.raises(CheckpointError, match=rf"{name} line {n} is not a record"):
        store.read_metrics() if name == "metrics.jsonl" else store.read_controls()


@pytest.mark.parametrize("entry", ["experiments.control", "experiments.instability"])
def test_branches_name_the_line_that_is_not_a_record(tmp_path: Path, entry: str) -> None:
    run = stored(tmp_path)
    for name in ("metrics.jsonl", "controls.jsonl"):
        path = run / name
        path.write_text(path.read_text() + "{}\n")
        args = [f"run_dir={run}", "progress=false"]
        args += ["control=random_prune"] if entry == "experiments.control" else []
        one_error(run_cli(tmp_path, entry, *args), f"{name} line", "not a record")
        path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))


def test_a_lost_round_line_is_refused_not_retrained(tmp_path: Path, one_thread) -> None:
    lottery = make_lottery(tmp_path / "run", rounds=3, iterations=20, eval_every=10)
    lottery.run()
    path = lottery.store.metrics_path
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(lines[2:]))  # round 1's line deleted
    damaged = path.read_bytes()
    with pytest.raises(CheckpointError, match=r"line 2 is round 2, not round 1.*delete line 2"):
        make_lottery(tmp_path / "run", rounds=3, iterations=20, eval_every=10).run()
    assert path.read_bytes() == damaged  # nothing retrained, nothing rewritten


# -- experiments.distill ----------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [math.nan, math.inf, -1.0, 0.0])
def test_distill_weights_must_be_finite(temperature: float) -> None:
    from experiments.distill import check_weights

    with pytest.raises(ConfigError, match="temperature"):
        check_weights(0.5, temperature)
    check_weights(0.5, 4.0)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_distill_refuses_a_non_finite_temperature_at_once(tmp_path: Path, value: str) -> None:
    out = tmp_path / "out"
    result = run_cli(tmp_path, "experiments.distill", f"teacher={stored(tmp_path)}",
                     f"output_root={out}", f"temperature={value}", "progress=false")
    one_error(result, f"temperature={value}")
    assert not (out / "distill").exists()  # no student directory left behind


# -- experiments.export ---------------------------------------------------------------------
def test_export_numbers_are_checked_before_any_file() -> None:
    from lth.export.pipeline import check_numbers

    check_numbers(17, (32, 50, 5), 8, 32)
    for args, key in [((5, (32, 50, 5), 8, 32), "opset=5"), ((17, (32, 0, 5), 8, 32),
                      "latency_repeats=0"), ((17, (32, 50, 5), 8, 0), "batch_size=0"),
                      ((17, (0, 50, 5), 8, 32), "latency_batch=0"),
                      ((17, (32, 50, -1), 8, 32), "latency_warmup=-1"),
                      ((99, (32, 50, 5), 8, 32), "opset=99")]:
        with pytest.raises(ConfigError, match=key):
            check_numbers(*args)


@pytest.mark.parametrize(("args", "says"), [
    (["round=abc"], "round"),
    (["no_such_key=1"], "no_such_key"),
    (["opset=5"], "opset=5"),
    (["latency_repeats=0"], "latency_repeats=0"),
    (["quantize=int8", "batch_size=0"], "batch_size=0"),
])
def test_export_bad_options_are_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    run = stored(tmp_path)
    one_error(run_cli(tmp_path, "experiments.export", f"run_dir={run}", *args), says)
    assert not (run / "export").exists()  # no model.onnx without its report.json


@pytest.mark.parametrize("text", ["", "a: [b\n"])
def test_export_of_a_damaged_config_is_one_line(tmp_path: Path, text: str) -> None:
    run = stored(tmp_path)
    (run / "config.yaml").write_text(text)
    one_error(run_cli(tmp_path, "experiments.export", f"run_dir={run}", "format=sparse"),
              "config.yaml")


def test_export_that_cannot_write_names_out_dir(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    result = run_cli(tmp_path, "experiments.export", f"run_dir={stored(tmp_path)}",
                     "format=sparse", f"out_dir={tmp_path / 'a_file' / 'x'}")
    line = one_error(result, "out_dir")
    assert "output_root" not in line


# -- scripts.runs -----------------------------------------------------------------------------
@pytest.mark.parametrize("text", ['{"versions": "x"}', '{"versions": {"lth": 3}}'])
def test_runs_index_reads_an_odd_run_json(tmp_path: Path, text: str, capsys) -> None:
    from scripts import runs

    run = stored(tmp_path)
    (run / "run.json").write_text(text)
    assert runs.main([str(tmp_path / "runs"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["lth"] is None and row["rounds"] == 3


@pytest.mark.parametrize("text", ["[1]", "3"])
def test_runs_index_names_a_run_json_that_is_not_an_object(tmp_path: Path, text: str,
                                                           capsys) -> None:
    from scripts import runs

    run = stored(tmp_path)
    (run / "run.json").write_text(text)
    assert runs.main([str(tmp_path / "runs")]) == 2
    assert "run.json" in capsys.readouterr().err


def test_runs_index_does_not_count_a_non_record_as_a_round(tmp_path: Path, capsys) -> None:
    from scripts import runs

    run = stored(tmp_path)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text() + "{}\n")
    assert runs.main([str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "metrics.jsonl line 4 is not a record" in err and "4/3" not in err


# -- a control that cannot train is refused before anything trains ------------------------
@pytest.mark.parametrize("args", [
    ["prune.granularity=channel"],
    ["analysis.early_bird_ticket=true", "analysis.early_bird_every=10it"],
])
def test_invert_that_cannot_train_is_refused_before_training(tmp_path: Path,
                                                             args: list[str]) -> None:
    out = tmp_path / "runs"
    result = run_cli(tmp_path, "experiments.lottery", "experiment=mnist1d_mlp",
                     "train.duration=20it", "train.eval_every=10it", "prune.rounds=2",
                     "prune.controls=[invert]", f"output_root={out}", "progress=false",
                     "wandb.mode=disabled", *args)
    one_error(result, "invert")
    assert not list(out.glob("*/*/metrics.jsonl"))  # no round trained


def test_invert_beside_an_early_bird_round_1_is_refused_by_control(tmp_path: Path) -> None:
    from lth.lottery.controls import check_trainable
    from lth.lottery.settings import LotterySettings
    from lth.pruning import PruneRates

    s = LotterySettings(seed=0, rounds=3, iterations=40, batch_size=32, rewind_iter=0,
                        strategy="magnitude_global", rates=PruneRates(0.2), eval_every=20,
                        early_bird_every=10, early_bird_ticket=True)
    check_trainable(["invert"], s, "weight", [2, 3])  # later rounds can be ranked
    check_trainable(["random_prune"], s, "channel")
    with pytest.raises(ConfigError, match="rounds=\\[2"):
        check_trainable(["invert"], s, "weight")
    with pytest.raises(ConfigError, match="prune.granularity=channel"):
        check_trainable(["invert"], s, "channel", [2])


# -- a mistyped run_dir creates nothing -----------------------------------------------------
@pytest.mark.parametrize("entry", ["experiments.control", "experiments.instability"])
def test_a_mistyped_run_dir_creates_nothing(tmp_path: Path, entry: str) -> None:
    typo = tmp_path / "typo" / "x"
    args = [f"run_dir={typo}"] + (["control=invert"] if entry == "experiments.control" else [])
    one_error(run_cli(tmp_path, entry, *args), "is not a run directory")
    assert not (tmp_path / "typo").exists()


# -- train.compile: not hashed, so recorded and said --------------------------------------
def test_compile_is_recorded_as_a_kernel_fact_and_documented() -> None:
    from lth.kernels import differing, kernel_facts

    eager, compiled = kernel_facts(compile=False), kernel_facts(compile=True)
    assert differing(eager, compiled) == ["compile False -> True"]
    row = next(ln for ln in (ROOT / "docs" / "config.md").read_text().splitlines()
               if ln.startswith("| `train.compile`"))
    assert "not bit-identical" in row
