"""A portable ticket file imports back into a run store: ``experiments.transfer
source=<file>`` trains the same run, bit for bit and in the same directory, as the run
directory it was exported from; a damaged, edited or mismatched file is refused before
anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from experiments.pair_schema import register
from lth.errors import ConfigError
from tests.conftest import ROOT
from tests.test_python_api import run_dir  # noqa: F401 - the module's stored run

SAME = ("round", "density", "train_loss", "test_loss", "test_acc", "source", "source_round",
        "source_test_acc", "output_reinitialised", "transfer")


def transfer(source: Path | str, root: Path, *extra: str) -> Path:
    from experiments.transfer import run

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="transfer", overrides=[
            f"source={source}", "dataset=digits", "progress=false", "wandb.mode=disabled",
            f"output_root={root}", *extra])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run(cfg)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ticket_file(run_dir: Path, tmp_path_factory) -> Path:  # noqa: F811
    from lth.tickets import export_ticket

    return export_ticket(run_dir, tmp_path_factory.mktemp("file") / "t.safetensors", round=1)


def test_a_ticket_file_trains_the_run_its_directory_trains(run_dir: Path,  # noqa: F811
                                                           ticket_file: Path,
                                                           tmp_path: Path, capsys) -> None:
    from lth.store import RunStore
    from lth.tickets import load_round, load_ticket

    from_dir = transfer(run_dir, tmp_path / "a", "round=1")
    from_file = transfer(ticket_file, tmp_path / "b")  # round: the file's own
    assert from_dir.relative_to(tmp_path / "a") == from_file.relative_to(tmp_path / "b")
    a, b = RunStore(from_dir).read_metrics(), RunStore(from_file).read_metrics()
    assert len(a) == len(b) == 1
    assert {k: a[0][k] for k in SAME} == {k: b[0][k] for k in SAME}
    assert b[0]["source"] == f"{run_dir.parent.name}/{run_dir.name}"
    for path in ("init.pt", "round_0/mask.pt", "round_0/final.pt"):
        x = torch.load(from_dir / path, weights_only=True)
        y = torch.load(from_file / path, weights_only=True)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), path
    # the imported run is a run directory like any other: it reopens and exports again
    again = load_round(from_file, round=0)
    ticket = load_ticket(ticket_file)
    assert all(torch.equal(again.mask[k], ticket.mask[k]) for k in ticket.mask)
    capsys.readouterr()
    assert transfer(ticket_file, tmp_path / "b") == from_file
    assert "nothing to train" in capsys.readouterr().out


def _rewrite(src: Path, dst: Path, edit) -> Path:  # noqa: ANN001
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(src), framework="pt") as f:
        meta = json.loads(f.metadata()["lth"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    edit(meta)
    save_file(tensors, str(dst), metadata={"lth": json.dumps(meta)})
    return dst


@pytest.mark.parametrize("case,match", [
    ("edited", "hashes to .* not to the ticket's hash .* export it again"),
    ("round", "holds round 1, not round 0: pass round=1"),
    ("damaged", "is not a readable ticket file"),
    ("other", "is not a readable ticket file .*is not an lth ticket file"),
])
def test_a_bad_ticket_file_is_refused_before_writing(ticket_file: Path, tmp_path: Path,
                                                     case: str, match: str) -> None:
    from safetensors.torch import save_file

    extra: list[str] = []
    path = tmp_path / "bad.safetensors"
    if case == "edited":
        _rewrite(ticket_file, path, lambda m: m["config"]["optimizer"].update(lr=1.0))
    elif case == "round":
        path, extra = ticket_file, ["round=0"]
    elif case == "damaged":
        path.write_bytes(ticket_file.read_bytes()[:200])
    else:
        save_file({"w": torch.zeros(2)}, str(path))
    root = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        transfer(path, root, *extra)
    assert not root.exists()
