"""experiments.barrier and experiments.transport on two stored seeds: what is stored in B and
logged to B's W&B run (the real CLI, slow), a rerun computes nothing, and bad sources are
refused with one message naming the fix, before any file is written (in-process, and one
line with exit 2 through the CLI)."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from lth.store import RunStore
from lth.tracking import find_wandb_file, read_wandb_run
from tests.conftest import ROOT, run_cli
from tests.test_config import CONF, compose_with

TINY = ["experiment=mnist1d_mlp", "model.hidden=[24,24]", "train.duration=80it",
        "train.eval_every=0it", "prune.rounds=1", "dataset.num_samples=1200", "progress=false",
        "prune.controls=[]", "wandb.mode=disabled", "train.checkpoint_every=40it"]


def cli(tmp: Path, module: str, *args: str) -> subprocess.CompletedProcess:
    return run_cli(tmp, module, *args, cwd=ROOT)


def made(root: Path, *overrides: str) -> Path:
    from experiments.lottery import run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return run(compose_with([f"output_root={root}", *TINY, *overrides])).root
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, Path]:
    """Two seeds of one tiny experiment and a run of another width, made in-process."""
    tmp = tmp_path_factory.mktemp("seeds")
    return {"a": made(tmp / "runs", "seed=0"), "b": made(tmp / "runs", "seed=1"),
            "wide": made(tmp / "runs", "seed=0", "model.hidden=[32,24]")}


def pair(seeds: dict, tmp: Path) -> tuple[Path, Path]:
    """Copies of A and B under ``tmp/runs`` (B is written to)."""
    out = []
    for key in ("a", "b"):
        dest = tmp / "runs" / seeds[key].parent.name / seeds[key].name
        shutil.copytree(seeds[key], dest)
        out.append(dest)
    return out[0], out[1]


def files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def entry(module: str, *overrides: str):
    """``experiments.<module>.run`` on the composed config of ``conf/<module>.yaml``."""
    import importlib

    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=module, overrides=list(overrides))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        root = importlib.import_module(f"experiments.{module}").run(cfg)
    return root, out.getvalue()


def test_in_process_both_commands_store_in_b_and_a_rerun_does_nothing(seeds, tmp_path,
                                                                     one_thread) -> None:
    a, b = pair(seeds, tmp_path)
    args = (f"run_a={a}", f"run_b={b}", "wandb_mode=disabled", "progress=false")
    entry("barrier", *args, "alpha_points=3", "train_samples=100", "rounds=[0,1]")
    entry("transport", *args, "variants=[permuted]")
    assert [r["round"] for r in RunStore(b).read_barriers()] == [0, 1]
    assert [r["transport"] for r in RunStore(b).read_branches("transport")] == ["permuted"]
    stored = files(b)
    _, said = entry("barrier", *args, "alpha_points=3", "train_samples=100", "rounds=[0,1]")
    assert "nothing to compute" in said
    _, said = entry("transport", *args, "variants=[permuted]")
    assert "nothing to train" in said
    assert files(b) == stored
    entry("barrier", *args, "alpha_points=4", "train_samples=100")  # another key: computed
    assert len(RunStore(b).read_barriers()) == 3


@pytest.fixture(scope="module")
def done(seeds, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("done")
    a, b = pair(seeds, tmp)
    first = cli(tmp, "experiments.barrier", f"run_a={a}", f"run_b={b}", "alpha_points=5",
                "train_samples=200", "wandb_mode=offline")
    moved = cli(tmp, "experiments.transport", f"run_a={a}", f"run_b={b}", "progress=false",
                "wandb_mode=offline")
    stored = files(b)
    again = [cli(tmp, "experiments.barrier", f"run_a={a}", f"run_b={b}", "alpha_points=5",
                 "train_samples=200"),
             cli(tmp, "experiments.transport", f"run_a={a}", f"run_b={b}")]
    return {"tmp": tmp, "a": a, "b": b, "first": first, "moved": moved, "stored": stored,
            "again": again}


@pytest.mark.slow
def test_barrier_is_stored_in_b_and_logged(done) -> None:
    assert done["first"].returncode == 0, done["first"].stderr
    (record,) = RunStore(done["b"]).read_barriers()
    assert record["round"] == 0 and record["run_a"] == f"{done['a'].parent.name}/" \
        f"{done['a'].name}" and record["alpha_points"] == 5
    assert record["barrier_test_after"] <= record["barrier_test_before"]
    assert "aligned" in done["first"].stdout and "run directory: " in done["first"].stdout
    rows = read_wandb_run(find_wandb_file(done["tmp"] / "runs"))
    key = f"barrier/{done['a'].name}/barrier_test_after"
    logged = [r for r in rows.history if key in r]
    assert logged and logged[-1][key] == pytest.approx(record["barrier_test_after"])


@pytest.mark.slow
def test_transport_branches_are_stored_in_b_and_logged(done) -> None:
    assert done["moved"].returncode == 0, done["moved"].stderr
    records = RunStore(done["b"]).read_branches("transport")
    assert [(r["round"], r["transport"]) for r in records] == [
        (1, "permuted"), (1, "unpermuted"), (1, "random")]
    assert "permuted (B's ticket" in done["moved"].stdout
    rows = read_wandb_run(find_wandb_file(done["tmp"] / "runs"))
    logged = [r for r in rows.history if "transport/permuted/test/acc" in r]
    assert logged[-1]["transport/permuted/test/acc"] == pytest.approx(records[0]["test_acc"])


@pytest.mark.slow
def test_a_rerun_computes_nothing_and_changes_nothing(done) -> None:
    barrier, transport = done["again"]
    assert barrier.returncode == 0 and "nothing to compute" in barrier.stdout
    assert transport.returncode == 0 and "nothing to train" in transport.stdout
    assert files(done["b"]) == done["stored"]


def no_such_run(a: Path, b: Path, wide: Path, tmp: Path) -> list[str]:
    return [f"run_a={tmp / 'nowhere'}", f"run_b={b}"]


BAD = [
    ("unknown run", no_such_run, "run_a=", "is not a run directory (no such directory)"),
    ("missing round", lambda a, b, w, t: [f"run_a={a}", f"run_b={b}", "rounds=[4]"],
     "rounds [4] are not completed rounds", None),
    ("other architecture", lambda a, b, w, t: [f"run_a={w}", f"run_b={b}"],
     "have different models (model.hidden differ)", None),
    ("same run", lambda a, b, w, t: [f"run_a={b}", f"run_b={b}"], "are the same run", None),
    ("no run_b", lambda a, b, w, t: [f"run_a={a}"], "run_b is not set", None),
    ("unknown method", lambda a, b, w, t: [f"run_a={a}", f"run_b={b}", "match.method=sinkhorn"],
     "match.method='sinkhorn' is unknown", None),
]


@pytest.mark.parametrize("module", ["barrier", "transport"])
@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_sources_are_refused_before_anything_is_written(seeds, tmp_path, module,
                                                            case) -> None:
    from lth.errors import LthError

    _, overrides, message, more = case
    a, b = pair(seeds, tmp_path)
    before = {run: files(run) for run in (a, b, seeds["wide"])}
    with pytest.raises(LthError) as raised:
        entry(module, *overrides(a, b, seeds["wide"], tmp_path), "wandb_mode=offline")
    assert message in str(raised.value) and "\n" not in str(raised.value)
    assert more is None or more in str(raised.value)
    assert {run: files(run) for run in before} == before
    assert not (tmp_path / "nowhere").exists()
    assert not (b / "barrier.jsonl").exists() and not (b / "transport.jsonl").exists()


@pytest.mark.slow
@pytest.mark.parametrize("module", ["experiments.barrier", "experiments.transport"])
@pytest.mark.parametrize("case", BAD[:3], ids=[c[0] for c in BAD[:3]])
def test_bad_sources_give_one_line_and_write_nothing(seeds, tmp_path, module, case) -> None:
    _, overrides, message, more = case
    a, b = pair(seeds, tmp_path)
    before = {run: files(run) for run in (a, b, seeds["wide"])}
    result = cli(tmp_path, module, *overrides(a, b, seeds["wide"], tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert more is None or more in lines[0]
    assert {run: files(run) for run in before} == before
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.glob("*.log"))
    assert not (b / "barrier.jsonl").exists() and not (b / "transport.jsonl").exists()


@pytest.mark.slow
def test_a_transported_mask_killed_mid_training_resumes_bit_identically(seeds, done,
                                                                        tmp_path) -> None:
    from lth.lottery.pairs import MatchOptions, OtherRun
    from lth.lottery.transport import branch_name, transport_key

    a, b = pair(seeds, tmp_path)
    key = transport_key(OtherRun(RunStore(a), ""), RunStore(b), 1, MatchOptions())
    name = branch_name("permuted", key)
    args = (f"run_a={a}", f"run_b={b}", "progress=false", "wandb_mode=disabled",
            "variants=[permuted]")
    killed = run_cli(tmp_path, "experiments.transport", *args, cwd=ROOT,
                     env={"LTH_TEST_KILL_AT": f"checkpoint:1:40:transport:{name}"})
    assert killed.returncode == -9, killed.stderr
    assert RunStore(b).checkpoint_path(1, name, "transport").exists()
    assert not RunStore(b).read_branches("transport")
    resumed = cli(tmp_path, "experiments.transport", *args)
    assert resumed.returncode == 0, resumed.stderr
    final = f"round_1/transport/{name}/final.pt"
    assert (b / final).read_bytes() == (done["b"] / final).read_bytes()
