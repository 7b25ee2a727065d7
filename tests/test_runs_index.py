"""scripts.runs: one line per stored run, only the differing keys, filters, one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from lth.store import run_hash
from scripts import runs as runs_cli
from tests.conftest import PYTHON, ROOT

BASE = {"name": "mnist1d_mlp", "seed": 0, "output_root": "runs",
        "model": {"_target_": "lth.models.MLP1D", "hidden": [100, 100]},
        "optimizer": {"lr": 0.001}, "prune": {"rounds": 2, "fraction": 0.2, "controls": []}}


def store_run(root: Path, cfg: dict, accs: list[float],
              controls: tuple[str, ...] = ()) -> Path:
    """A run directory, named by its config's hash, with the text files scripts.runs reads
    (no weights needed)."""
    hash_ = run_hash(cfg)
    path = root / cfg["name"] / hash_
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(cfg))
    (path / "run.json").write_text(json.dumps({"hash": hash_, "versions": {"lth": "0.1.0"}}))
    (path / "metrics.jsonl").write_text("".join(
        json.dumps({"round": k, "density": 0.8 ** k, "test_acc": a}) + "\n"
        for k, a in enumerate(accs)))
    if controls:
        (path / "controls.jsonl").write_text("".join(
            json.dumps({"round": 1, "control": c, "test_acc": 0.1}) + "\n" for c in controls))
    return path


def merged(**changes) -> dict:
    cfg = json.loads(json.dumps(BASE))
    for dotted, value in changes.items():
        *parents, leaf = dotted.split("__")
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


CONFIGS = {"a": merged(), "b": merged(seed=1), "c": merged(seed=1, prune__fraction=0.5)}
A, B, C = (run_hash(c) for c in CONFIGS.values())


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    store_run(root, CONFIGS["a"], [0.6, 0.62, 0.61], ("random_reinit",))
    store_run(root, CONFIGS["b"], [0.58, 0.6])
    store_run(root, CONFIGS["c"], [0.59])
    (root / ".hydra" / "x").mkdir(parents=True)  # Hydra's job folders are not runs
    return root


def run_json(*argv: str) -> list[dict]:
    return json.loads(_stdout(*argv, "--json"))


def _stdout(*argv: str) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert runs_cli.main(list(argv)) == 0
    return out.getvalue()


def test_lists_exactly_the_differing_keys(store: Path) -> None:
    rows = run_json(str(store))
    assert [r["hash"] for r in rows] == sorted([A, B, C])  # listed in directory order
    rows = sorted(rows, key=lambda r: [A, B, C].index(r["hash"]))
    assert all(set(r["keys"]) == {"seed", "prune.fraction"} for r in rows)
    first = rows[0]
    assert (first["rounds"], first["planned"], first["branches"]) == (3, 3, ["random_reinit"])
    assert first["dense_acc"] == 0.6 and first["ticket_acc"] == 0.62
    assert first["min_density"] == pytest.approx(0.64) and first["lth"] == "0.1.0"
    assert rows[2]["ticket_acc"] is None  # only the dense round is stored
    table = _stdout(str(store), "--wide").splitlines()
    assert table[0].split()[:4] == ["name", "hash", "prune.fraction", "seed"]
    line = {h: next(ln for ln in table if h in ln) for h in (A, C)}
    assert len(table) == 4 and "1/3" in line[C] and "random_reinit" in line[A]


def test_where_filters_and_narrows_the_keys(store: Path) -> None:
    rows = run_json(str(store), "--where", "seed=1")
    assert sorted(r["hash"] for r in rows) == sorted([B, C])
    assert all(set(r["keys"]) == {"prune.fraction"} for r in rows)
    rows = run_json(str(store), "--where", "seed=1", "--where", "prune.fraction=0.5")
    assert [r["hash"] for r in rows] == [C] and rows[0]["keys"] == {}
    assert run_json(str(store), "--where", "model.hidden=[100, 100]", "--where", "seed=0"
                    )[0]["hash"] == A
    assert run_json(str(store), "--where", "seed=7") == []


def test_a_missing_root_through_the_cli_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run([PYTHON, "-X", "importtime", "-m", "scripts.runs",
                             str(tmp_path / "nope")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    errors = [ln for ln in lines if not ln.startswith("import time:")]
    assert errors == [f"error: {tmp_path / 'nope'} is not a directory: give the output_root "
                      "of your runs (default: runs)"]
    assert result.stdout == ""
    # Fast: it reads text files, so it never imports torch.
    imported = {ln.rsplit("|", 1)[-1].strip() for ln in lines if ln.startswith("import time:")}
    assert "yaml" in imported and "torch" not in imported


@pytest.mark.parametrize("make", ["empty", "bad_where"])
def test_an_empty_root_or_bad_filter_is_one_line_and_exit_2(tmp_path: Path, store: Path,
                                                             make: str, capsys) -> None:
    (tmp_path / "empty").mkdir()
    args = {"empty": [str(tmp_path / "empty")], "bad_where": [str(store), "--where", "seed"]}
    assert runs_cli.main(args[make]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: ")
    assert {"empty": "no run directory", "bad_where": "is not key=value"}[make] in err


@pytest.mark.parametrize("damage", ["edited", "no_config"])
def test_a_damaged_run_is_named_not_skipped(store: Path, damage: str, capsys) -> None:
    path = store / "mnist1d_mlp" / B
    config = path / "config.yaml"
    if damage == "edited":
        config.write_text(config.read_text().replace("seed: 1", "seed: 2"))
    else:
        config.unlink()
    assert runs_cli.main([str(store)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"error: {config} ")
    assert {"edited": f"hashes to {run_hash(merged(seed=2))}, not to its directory's name",
            "no_config": "is missing: restore it"}[damage] in err


def test_lines_fit_100_columns_and_show_every_branch(store: Path) -> None:
    # a run with many keys of its own (a student run shares the root) and instability copies
    wide = {**merged(name="distill"), "train": {f"k{i}": "x" * 12 for i in range(30)}}
    path = store_run(store, wide, [0.5, 0.55], ("random_prune",))
    (path / "round_1" / "instability" / "copy_a").mkdir(parents=True)
    table = _stdout(str(store)).splitlines()
    assert max(map(len, table)) <= 100
    assert table[0].split()[:3] == ["name", "hash", "rounds"] and table[0].endswith("keys")
    row = next(ln for ln in table if path.name in ln)
    assert "instability,random_prune" in row and "2/3" in row
    wide_table = _stdout(str(store), "--wide").splitlines()
    assert max(map(len, wide_table)) > 300 and "train.k29" in wide_table[0]
    mine = next(r for r in run_json(str(store)) if r["hash"] == path.name)
    assert mine["branches"] == ["instability", "random_prune"]
