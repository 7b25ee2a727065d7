"""Sinks, and what really reaches W&B: real wandb in offline mode, read back from the
`.wandb` file it writes. Nothing here mocks wandb."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lth.errors import ConfigError
from lth.tracking import (
    CurveFileSink,
    NullSink,
    WandbSink,
    find_wandb_file,
    open_wandb,
    read_wandb_records,
    read_wandb_run,
    round_metrics,
)

wandb = pytest.importorskip("wandb")

CONFIG = {"seed": 3, "prune": {"fraction": 0.2, "rounds": 2}, "train": {"duration": "100it"}}
LAYERS = ("fc1.weight", "fc2.weight", "fc3.weight")


@pytest.fixture(autouse=True)
def isolated_wandb(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """No credentials, no network, no user settings; a fresh wandb singleton per test so
    the environment below is the one it reads."""
    home = tmp_path_factory.mktemp("home")
    for var in (
        "WANDB_API_KEY",
        "WANDB_MODE",
        "WANDB_DIR",
        "WANDB_RUN_ID",
        "WANDB_RESUME",
        "WANDB_PROJECT",
        "WANDB_ENTITY",
        "WANDB_RUN_GROUP",
        "WANDB_TAGS",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(home / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # refused at once if tried
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "20")
    wandb.teardown()
    yield
    wandb.teardown()


def _open(directory: Path, mode: str = "offline", run_id: str = "lth0abc", **kw):
    args = dict(
        mode=mode,
        project="lth-test",
        group="lenet_mnist",
        name="seed3",
        run_id=run_id,
        config=CONFIG,
        directory=directory,
        tags=("imp", "test"),
    )
    return open_wandb(**{**args, **kw})


def _record(r: int) -> dict:
    density = 0.8**r
    return {
        "round": r,
        "density": density,
        "sparsity": 1 - density,
        "remaining": 1000 - r,
        "test_acc": 0.9 + r / 100,
        "test_loss": 0.3,
        "best_test_acc": 0.95,
        "best_iter": 80,
        "val_acc": None,
        "early_stop_iter": None,
        "train_loss": 0.1,
        "wall_s": 1.5,
        "iterations": 100,
        "layer_density": {name: density for name in LAYERS},
    }


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_offline_run_reaches_wandb(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sink = _open(tmp_path)
    assert isinstance(sink, WandbSink)
    for r in range(3):
        for it in (0, 50, 100):
            sink.log_curve(r, it, {"test/acc": 0.5 + r / 10 + it / 1000, "train/loss": 1.0})
        sink.log_round(_record(r))
    sink.close()
    sink.close()  # idempotent

    run = read_wandb_run(find_wandb_file(tmp_path))
    assert (run.run_id, run.group, run.name, run.project) == (
        "lth0abc",
        "lenet_mnist",
        "seed3",
        "lth-test",
    )
    assert run.tags == ["imp", "test"]
    assert run.config == CONFIG
    assert run.exited

    rounds = [row for row in run.history if "round" in row]
    assert [row["round"] for row in rounds] == [0, 1, 2]
    for r, row in enumerate(rounds):
        assert row["test/acc"] == pytest.approx(0.9 + r / 100)
        assert row["density"] == pytest.approx(0.8**r)
        assert row["test/best_acc"] == 0.95 and row["test/best_iter"] == 80
        assert row["time/round_s"] == 1.5 and row["round_iters"] == 100
        for name in LAYERS:
            assert row[f"layer_density/{name}"] == pytest.approx(0.8**r)
        assert "val/acc" not in row and "early_stop/iter" not in row  # None is skipped

    curves = [row for row in run.history if "curve/global_iter" in row]
    assert [(c["curve/round"], c["curve/iter"]) for c in curves] == [
        (r, it) for r in range(3) for it in (0, 50, 100)
    ]
    assert [c["curve/global_iter"] for c in curves] == [0, 50, 100, 100, 150, 200, 200, 250, 300]
    assert curves[4]["curve/test/acc"] == pytest.approx(0.65)
    assert all(c["curve/train/loss"] == 1.0 for c in curves)

    steps = [row["_step"] for row in run.history]
    assert steps == sorted(set(steps))  # strictly increasing: W&B drops nothing
    assert run.metrics["test/acc"] == "round"
    assert run.metrics["layer_density/fc1.weight"] == "round"
    assert run.metrics["curve/test/acc"] == "curve/global_iter"
    assert read_wandb_records(find_wandb_file(tmp_path)) == run.history
    assert _warnings(capsys.readouterr().err) == []


def test_resume_makes_a_second_offline_folder(tmp_path: Path) -> None:
    # W&B cannot resume offline runs: each process writes its own folder with the same id.
    first = _open(tmp_path)
    first.log_round(_record(0))
    first.close()
    time.sleep(1.1)  # folder names carry a per-second timestamp
    second = _open(tmp_path)
    second.log_round(_record(0))  # the lottery loop replays completed rounds...
    second.log_curve(1, 10, {"test/acc": 0.5})  # ...so the curve axis continues after them
    second.log_round(_record(1))
    second.close()

    assert len(list((tmp_path / "wandb").glob("offline-run-*-lth0abc"))) == 2
    latest = read_wandb_run(find_wandb_file(tmp_path, run_id="lth0abc"))
    assert [row["round"] for row in latest.history if "round" in row] == [0, 1]
    assert [row["curve/global_iter"] for row in latest.history if "curve/iter" in row] == [110]


def test_disabled_never_imports_wandb(tmp_path: Path) -> None:
    code = (
        "import sys; import lth.tracking as t\n"
        f"s = t.open_wandb(mode='disabled', project='p', group='g', name='n', run_id='r',"
        f" config={{}}, directory={str(tmp_path)!r})\n"
        "assert isinstance(s, t.NullSink), s\n"
        "assert 'wandb' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])
    assert not (tmp_path / "wandb").exists()


@pytest.mark.parametrize("mode", ["Offline", "dryrun", "", "shared"])
def test_bad_mode_is_a_config_error(tmp_path: Path, mode: str) -> None:
    with pytest.raises(ConfigError, match="wandb.mode"):
        _open(tmp_path, mode=mode)


def test_directory_that_is_a_file_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Left alone, wandb would quietly write to a temp dir instead; open_wandb refuses.
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    sink = _open(not_a_dir)
    assert isinstance(sink, NullSink)
    err = capsys.readouterr().err
    assert len(_warnings(err)) == 1 and "W&B could not start" in err


def test_online_without_credentials_warns_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No key in env or netrc and stderr is not a terminal: wandb raises UsageError at once,
    # before any network access (the base URL is a closed local port anyway).
    start = time.monotonic()
    sink = _open(tmp_path, mode="online")
    assert time.monotonic() - start < 20
    assert isinstance(sink, NullSink)
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: W&B could not start (")
    assert warnings[0].endswith(
        "continuing with local logs only (set wandb.mode=offline or disabled)"
    )


def test_wandb_init_error_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sink = _open(tmp_path, run_id="not/valid")  # wandb.init itself rejects the id
    assert isinstance(sink, NullSink)
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1 and "UsageError" in warnings[0]


def test_logging_failure_warns_once_and_disables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = _open(tmp_path)
    assert isinstance(sink, WandbSink)
    sink.run.finish()  # the run ends under the sink's feet: wandb now raises on log
    sink.log_round(_record(0))
    sink.log_curve(0, 1, {"test/acc": 0.1})
    sink.log_round(_record(1))
    sink.close()
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1 and "W&B logging failed" in warnings[0]
    assert sink.run is None


def test_reader_handles_records_split_across_blocks(tmp_path: Path) -> None:
    big = {"blob": "x" * 100_000, "seed": 1}  # one record spanning several 32 KiB blocks
    sink = _open(tmp_path, config=big)
    for it in range(2000):
        sink.log_curve(0, it, {"train/loss": it / 2000})
    sink.close()
    path = find_wandb_file(tmp_path)
    assert path.stat().st_size > 3 * 32768
    run = read_wandb_run(path)
    assert run.config == big
    assert [row["curve/iter"] for row in run.history] == list(range(2000))


def test_round_metrics_names() -> None:
    row = round_metrics(
        {
            "round": 1,
            "test_acc": 0.9,
            "wall_s": 2.0,
            "iterations": 7,
            "best_test_acc": 0.95,
            "best_iter": 3,
            "early_stop_iter": 5,
            "val_loss": 0.2,
            "lr_final": 0.01,
            "val_acc": None,
            "layer_density": {"a.weight": 0.5, "b.weight": None},
        }
    )
    assert row == {
        "round": 1,
        "test/acc": 0.9,
        "time/round_s": 2.0,
        "round_iters": 7,
        "test/best_acc": 0.95,
        "test/best_iter": 3,
        "early_stop/iter": 5,
        "val/loss": 0.2,
        "lr_final": 0.01,
        "layer_density/a.weight": 0.5,
    }


def test_curve_file_sink(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "curves.jsonl"
    sink = CurveFileSink(path)
    sink.log_round(_record(0))
    sink.log_curve(0, 0, {"test/acc": 0.1})
    sink.log_curve(1, 25, {"test/acc": 0.2, "train/loss": 0.5})
    assert len(path.read_text().splitlines()) == 2  # flushed before close
    sink.close()
    sink.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"round": 0, "iter": 0, "test/acc": 0.1},
        {"round": 1, "iter": 25, "test/acc": 0.2, "train/loss": 0.5},
    ]
