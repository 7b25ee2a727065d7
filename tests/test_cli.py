"""The real CLI, end to end, in a subprocess: files, W&B records, resume, errors."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from lth.store import RunStore
from lth.store.lock import RunLock
from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import PYTHON, ROOT, cli_env, run_cli

# The CLI's machinery on the small MLP of the former default (mnist1d_mlp): no controls, fast.
TINY = ["experiment=mnist1d_mlp", "train.duration=200it", "train.eval_every=100it",
        "prune.rounds=2",
        "dataset.num_samples=1200", "dataset.val_size=100", "progress=false"]


def lottery(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None,
            **popen) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, "experiments.lottery", f"output_root={tmp_path / 'runs'}",
                   f"wandb.dir={tmp_path}", *overrides, env=env, threads=None, **popen)


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
    # Cost per round: an MLP's weights are each used once per sample, so its sparse MACs are
    # its remaining weights (the mask holds the weights only), its dense MACs all of them.
    assert {r["macs_dense"] for r in records} == {records[0]["total"]}
    assert [r["macs_sparse"] for r in records] == [r["remaining"] for r in records]
    for k in range(3):
        assert (directory / f"round_{k}" / "mask.pt").exists()
        assert (directory / f"round_{k}" / "final.pt").exists()
    assert (directory / "rewind.pt").exists() and (directory / "config.yaml").exists()
    info = json.loads((directory / "run.json").read_text())
    assert info["hash"] == directory.name and "torch" in info["versions"]
    # The table: a header and a line per round, ending with the run directory.
    table = [ln for ln in result.stdout.splitlines() if re.match(r"\s+\d+\s+\d+\.\d+%", ln)]
    lines = result.stdout.splitlines()
    assert len(table) == 3 and lines[0].startswith("threads: ") and "round" in lines[1]
    assert "summary (seed 0; final test accuracy, test_acc):" in lines


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
    # All files but the lock, which records the latest holder's PID.
    stamps = {p: p.stat().st_mtime_ns for p in directory.rglob("*")
              if p.is_file() and p.name != ".lock"}
    again = lottery(tmp, *TINY, "wandb.mode=offline")
    assert again.returncode == 0, again.stderr
    assert run_dir(again) == directory
    assert "nothing to train" in again.stdout
    assert again.stdout.count("(stored)") == 3
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*")
            if p.is_file() and p.name != ".lock"} == stamps


def test_raising_rounds_extends_the_same_run(first_run, tmp_path: Path) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    wandb_files = sorted(tmp.rglob("*.wandb"))
    # WANDB_MODE=disabled in the environment (no wandb.mode= given) writes no W&B run at all.
    more = lottery(tmp, *[o for o in TINY if not o.startswith("prune.rounds")],
                   "prune.rounds=3", env={"WANDB_MODE": "disabled"})
    assert more.returncode == 0, more.stderr
    assert sorted(tmp.rglob("*.wandb")) == wandb_files and wandb_files
    assert run_dir(more) == directory
    assert more.stdout.count("(stored)") == 3
    assert len((directory / "metrics.jsonl").read_text().splitlines()) == 4


# -- bad input ---------------------------------------------------------------------------
def completed(tmp: Path) -> tuple[RunStore, int]:
    """The copied run store of ``first_run`` and its number of completed rounds."""
    store = RunStore(next((tmp / "runs" / "mnist1d_mlp").iterdir()))
    return store, len(store.read_metrics())


def other_models_mask(tmp: Path) -> list[str]:
    store, n = completed(tmp)  # a mask copied over from a conv model's run (checksum valid)
    store.save_tensors(store.mask_path(n - 1),
                       {"conv1.weight": torch.ones(8, 1, 3, dtype=torch.bool)})
    return [f"prune.rounds={n}"]


def corrupt_mask(tmp: Path) -> list[str]:
    store, n = completed(tmp)
    data = bytearray(store.mask_path(n - 1).read_bytes())
    data[len(data) // 2] ^= 0xFF
    store.mask_path(n - 1).write_bytes(bytes(data))
    return [f"prune.rounds={n}"]


def corrupt_checkpoint(tmp: Path) -> list[str]:
    store, n = completed(tmp)  # a checkpoint cut short, e.g. copied off a full disk
    store.round_dir(n).mkdir()
    store.checkpoint_path(n).write_bytes(store.final_path(n - 1).read_bytes()[:2000])
    return [f"prune.rounds={n}"]


def empty_root(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["dataset=mnist", f"dataset.root={tmp / 'empty'}", "dataset.num_samples=null"]


def output_root_is_a_file(tmp: Path) -> list[str]:
    # chmod cannot make a directory unwritable for root; a regular file in the way can.
    (tmp / "a_file").write_text("")
    return [f"output_root={tmp / 'a_file'}"]


def next_round_on_a_full_disk(tmp: Path) -> list[str]:
    return [f"prune.rounds={completed(tmp)[1]}", "train.checkpoint_every=50it"]


def small_files_only() -> None:
    # A full disk, without root or a mount: writes past 100 kB fail with EFBIG (Python
    # ignores SIGXFSZ). init/final (64 kB) fit; a checkpoint with Adam's state (200 kB) does not.
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))


NAN = ["optimizer=sgd", "optimizer.lr=0.05", "train.milestones=[199it]", "train.gamma=1e4",
       "prune.retrain=finetune", "prune.finetune_duration=100it"]


def nan_in_round_1_keeps_round_0(tmp: Path) -> None:
    runs = [d for d in (tmp / "runs" / "mnist1d_mlp").iterdir()
            if d.name != completed(tmp)[0].root.name]
    assert [r["round"] for r in RunStore(runs[0]).read_metrics()] == [0]


def files(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` but the lock (which records the latest holder's PID)."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


# (overrides, the message's text, prepare(tmp) -> more overrides, check(tmp), subprocess args)
# Rows marked slow repeat a mechanism a default row covers (each row is a CLI call).
BAD_INPUT: list = [
    (["prune.fraction=1.5"], "prune.fraction=1.5 is outside [0, 1)"),
    (["train.duration=-5it"], "train.duration='-5it' is not a duration"),
    pytest.param((["prune.rewind=5x"], "prune.rewind='5x' is not a duration"),
                 marks=pytest.mark.slow),
    (["prune.rewind=10000it"], "later than train.duration"),
    (["prune.strategy=biggest"], "prune.strategy='biggest' is unknown"),
    (["model=resnet1000"], "model=resnet1000 is unknown: choose one of cnn1d,"),
    pytest.param((["dataset=imagenet"], "dataset=imagenet is unknown: choose one of cifar10,"),
                 marks=pytest.mark.slow),
    (["dataset=mnist", "dataset.root=/nonexistent/data", "dataset.num_samples=null"],
     "dataset.download=true"),
    pytest.param(([], "empty has no MNIST files (MNIST/raw/", empty_root),
                 marks=pytest.mark.slow),
    (["model=lenet5"], "LeNet5 needs an image input_shape"),
    (["prune.nm=4:4"], "prune.nm=4:4: N must be in 1..M-1 (N kept of every M)"),
    (["prune.nm=3:7"], "fc1.weight has 40 inputs per output, not a multiple of M=7"),
    (["prune.strategy=wanda", "prune.calibration_samples=100000"],
     "prune.calibration_samples=100000 must be in 1..860 (the training set's size)"),
    (["prune.strategy=sparsegpt", "model=cnn1d"],
     "prune.strategy=sparsegpt prunes nn.Linear weights only, and conv1.weight is a Conv1d"),
    (["model=cnn1d", "dataset=digits", "dataset.num_samples=null"],
     "CNN1D needs input_shape (C, L)"),
    ([], "/mask.pt has layers the model lacks (conv1.weight): it was made for another model",
     other_models_mask),
    pytest.param(([], "/mask.pt is corrupt or truncated (its sha256 differs from mask.pt.sha256):"
                      " delete it and the metrics lines", corrupt_mask), marks=pytest.mark.slow),
    ([], "/checkpoint.pt is corrupt or truncated (", corrupt_checkpoint),
    (NAN, "training loss became nan before iteration 300 (round 1): lower optimizer.lr",
     None, nan_in_round_1_keeps_round_0),
    ([], "a_file/.hydra/mnist1d_mlp/", output_root_is_a_file),
    ([], "/checkpoint.pt (File too large): free disk space or set output_root",
     next_round_on_a_full_disk, None, {"preexec_fn": small_files_only}),
]


def case_id(case: tuple) -> str:
    return " ".join(case[0]) or case[2].__name__


@pytest.mark.parametrize("case", BAD_INPUT, ids=lambda c: case_id(c if isinstance(c, tuple)
                                                                 else c.values[0]))
def test_bad_input_gives_one_line_and_nonzero_exit(first_run, tmp_path: Path,
                                                   case: tuple) -> None:
    overrides, message, prepare, check, kw = (*case, None, None, None)[:5]
    # Completed rounds of the same experiment, which no bad input may touch.
    shutil.copytree(run_dir(first_run[1]).parent, tmp_path / "runs" / "mnist1d_mlp")
    more = prepare(tmp_path) if prepare else []
    before = files(tmp_path / "runs")
    result = lottery(tmp_path, *TINY, "wandb.mode=disabled", *overrides, *(more or []),
                     **(kw or {}))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    after = files(tmp_path / "runs")
    assert {p: after.get(p) for p in before} == before, "completed rounds were touched"
    assert not list((tmp_path / "runs").rglob("*.tmp"))
    if check:
        check(tmp_path)


def test_full_error_shows_the_traceback(tmp_path: Path) -> None:
    result = lottery(tmp_path, *TINY, "wandb.mode=disabled", "prune.fraction=1.5",
                     env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError: prune.fraction=1.5" in result.stderr


@pytest.mark.slow
def test_wandb_without_api_key_warns_once_and_goes_on(first_run, tmp_path: Path) -> None:
    shutil.copytree(run_dir(first_run[1]).parent, tmp_path / "runs" / "mnist1d_mlp")
    env = {k: v for k, v in cli_env(tmp_path).items() if not k.startswith("WANDB_")}
    env.update(WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"), WANDB_SILENT="true",
               NETRC=str(tmp_path / "netrc"), WANDB_INIT_TIMEOUT="20")
    n = completed(tmp_path)[1]
    result = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", f"output_root={tmp_path / 'runs'}",
         f"wandb.dir={tmp_path}", *TINY, f"prune.rounds={n}", "wandb.mode=online"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: W&B could not start"), lines
    assert "continuing with local logs only" in lines[0]
    assert len(completed(tmp_path)[0].read_metrics()) == n + 1


# -- crash and resume ------------------------------------------------------------------------
RESUMABLE = [*TINY, "wandb.mode=disabled", "train.checkpoint_every=50it"]


def assert_same_rounds(reference: Path, resumed: Path, rounds: int) -> None:
    """Same metrics (all but wall_s), masks and weights as the uninterrupted reference."""
    a, b = RunStore(reference), RunStore(resumed)
    drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    assert drop(b.read_metrics()) == drop(a.read_metrics()[:rounds + 1])
    for k in range(rounds + 1):
        for path in ("mask_path", "final_path"):
            ta, tb = a.load_tensors(getattr(a, path)(k)), b.load_tensors(getattr(b, path)(k))
            assert ta.keys() == tb.keys() and all(torch.equal(ta[n], tb[n]) for n in ta)
    assert not list(resumed.rglob("checkpoint.pt*")) and not list(resumed.rglob("*.tmp"))


def test_sigkill_anywhere_then_rerun_is_bit_identical(first_run, tmp_path: Path) -> None:
    """Kill -9 while writing round 0's files, then during a later round; rerun; compare.

    (More points, in-process: test_resume.py; real external kills: the slow test below.)
    """
    points = ["write:round_0/final.pt",  # round 0's weights half written (temp not renamed)
              "checkpoint:1:150"]        # round 1, right after its last checkpoint
    for point in points:
        killed = lottery(tmp_path, *RESUMABLE, env={"LTH_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    store = RunStore(next((tmp_path / "runs" / "mnist1d_mlp").iterdir()))
    assert store.checkpoint_path(1).exists() and len(store.read_metrics()) == 1
    done = lottery(tmp_path, *RESUMABLE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("(stored)") == 1
    assert_same_rounds(run_dir(first_run[1]), store.root, 2)


@pytest.mark.slow
@pytest.mark.parametrize("wait_for,delay", [
    ("round_0/checkpoint.pt", 0.0), ("round_1/checkpoint.pt", 0.0),
    ("round_1/final.pt", 0.0), ("round_2/checkpoint.pt", 0.3), ("metrics.jsonl", 0.05),
])
def test_external_sigkill_then_rerun_is_bit_identical(first_run, tmp_path: Path,
                                                      wait_for: str, delay: float) -> None:
    """A real ``kill -9`` from outside, as soon as a file appears (plus ``delay`` s)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "experiments.lottery", f"output_root={tmp_path / 'runs'}",
         f"wandb.dir={tmp_path}", *RESUMABLE, "train.checkpoint_every=20it"],
        cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "runs").glob(f"mnist1d_mlp/*/{wait_for}")):
        assert proc.poll() is None and time.monotonic() < deadline, "finished before the kill"
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done = lottery(tmp_path, *RESUMABLE, "train.checkpoint_every=20it")
    assert done.returncode == 0, done.stderr
    assert_same_rounds(run_dir(first_run[1]), run_dir(done), 2)


def test_second_process_on_the_same_run_exits_at_once(tmp_path: Path) -> None:
    long = [*TINY, "wandb.mode=disabled", "train.duration=1000000it", "prune.rounds=0"]
    first = subprocess.Popen(
        [PYTHON, "-m", "experiments.lottery", f"output_root={tmp_path / 'runs'}", *long],
        cwd=tmp_path, env=cli_env(tmp_path), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not any(p.read_text().strip() == str(first.pid)
                      for p in (tmp_path / "runs").glob("mnist1d_mlp/*/.lock")):
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = lottery(tmp_path, *long)
        assert first.poll() is None, "the first process must be unharmed"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert second.returncode == 2
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, second.stderr
    assert f"is in use by process {first.pid}" in lines[0]
    assert "wait for it to finish, or kill it" in lines[0]
    lock = next((tmp_path / "runs").glob("mnist1d_mlp/*/.lock"))
    with RunLock(lock):  # the kernel dropped the killed holder's lock
        assert lock.read_text().strip() == str(os.getpid())


def test_scripts_runs_indexes_a_real_store(first_run) -> None:
    tmp, result = first_run
    directory = run_dir(result)
    listed = subprocess.run([PYTHON, "-m", "scripts.runs", str(tmp / "runs"), "--json"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout) if r["hash"] == directory.name]
    records = [json.loads(line) for line in (directory / "metrics.jsonl").read_text().splitlines()]
    assert row["name"] == "mnist1d_mlp" and row["rounds"] >= 3
    assert row["dense_acc"] == records[0]["test_acc"]
