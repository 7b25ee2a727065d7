"""docs/python-api.md's examples run as written, against a stored run; a portable ticket file
round-trips (same outputs on a batch) and loads in a process that never imports the store."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from experiments.schema import register
from tests.conftest import PYTHON, ROOT

PAGE = ROOT / "docs" / "python-api.md"
PLACEHOLDER = "runs/mnist1d_lottery/<hash>"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run of the main command, in this process: digits, 2 rounds of 40 iterations."""
    from experiments.lottery import run

    register()
    root = tmp_path_factory.mktemp("api")
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "experiment=lenet_digits", "train.duration=40it", "train.eval_every=20it",
            "prune.rounds=1", "prune.controls=[random_prune]", "threads=1", "progress=false",
            "wandb.mode=disabled", f"output_root={root / 'runs'}"])
    threads = torch.get_num_threads()
    try:
        return run(cfg).root
    finally:
        torch.set_num_threads(threads)


def test_the_page_runs_as_written(run_dir: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    code = blocks()
    assert len(code) == 5 and PLACEHOLDER in code[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    threads = torch.get_num_threads()
    try:
        for block in code:
            exec(compile(block.replace(PLACEHOLDER, str(run_dir)), str(PAGE), "exec"),
                 namespace)
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "round 1: " in out and "% of the weights kept" in out
    assert (tmp_path / "ticket_round1.safetensors").is_file()
    assert len(namespace["lottery"].store.read_metrics()) == 3  # rounds 0-2 from Python


def test_a_ticket_round_trips_and_loads_without_the_store(run_dir: Path,
                                                          tmp_path: Path) -> None:
    from lth.tickets import export_ticket, load_round, load_ticket

    ticket = load_round(run_dir)
    path = export_ticket(run_dir, tmp_path / "t.safetensors")
    back = load_ticket(path)
    x = torch.randn(16, *ticket.input_shape)
    assert torch.equal(back.model()(x), ticket.model()(x))
    for part in ("init", "rewind", "final", "mask"):
        a, b = getattr(ticket, part), getattr(back, part)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (back.round, back.hash, back.rewind_iter) == (1, run_dir.name, 0)
    assert back.config == ticket.config and back.record["test_acc"] == ticket.record["test_acc"]
    assert back.versions["torch"] == torch.__version__
    assert all(m.dtype == torch.bool for m in back.mask.values())
    # pruned weights are zero in the model, kept ones are the trained weights
    w, m = back.model().state_dict()["fc1.weight"], back.mask["fc1.weight"]
    assert torch.all(w[~m] == 0) and torch.equal(w[m], back.final["fc1.weight"][m])
    torch.save(x, tmp_path / "x.pt")
    torch.save(ticket.model()(x), tmp_path / "y.pt")
    check = (
        "import sys, torch\n"
        "from lth.tickets.portable import load_ticket\n"
        f"t = load_ticket({str(path)!r})\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
        f"y = torch.load({str(tmp_path / 'y.pt')!r}, weights_only=True)\n"
        "assert torch.equal(t.model()(x), y)\n"
        "bad = [m for m in sys.modules if m.startswith(('lth.store', 'lth.lottery', 'hydra'))]\n"
        "assert not bad, bad\n"
        "print('ok')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([PYTHON, "-c", check], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_a_file_that_is_not_a_ticket_is_named(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from lth.tickets import load_ticket

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="is not an lth ticket file"):
        load_ticket(tmp_path / "other.safetensors")


def test_the_shapes_table_matches_the_loaders() -> None:
    from lth.data import load_dataset
    from lth.data.load import DATASETS, SHAPES
    from lth.data.vision import SPECS

    assert set(SHAPES) == set(DATASETS)
    for name, kw in (("digits", {}), ("mnist1d", {"num_samples": 100})):
        data = load_dataset(name, **kw)
        assert SHAPES[name] == (tuple(data.input_shape), data.num_classes), name
    for name, spec in SPECS.items():
        assert SHAPES[name][1] == spec.num_classes
        assert SHAPES[name][0][0] == len(spec.mean)  # channels
