"""Crash and resume, integrity, locking and loading safety, in-process (fast).

The same properties through the real CLI, with real SIGKILLs, are in test_resume_cli.py.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import lth.files as files_module
import lth.lottery.driver as driver_module
import lth.lottery.span as span_module
from lth.data import load_dataset
from lth.errors import CheckpointError, DataError, LockError, StorageError, TrainingError
from lth.lottery import Lottery
from lth.store import RunStore
from lth.store.lock import RunLock
from lth.train import checkpoint
from tests.conftest import ROOT, TinyMLP, make_lottery, sgd
from tests.datafiles import make_cifar10


class DropoutMLP(TinyMLP):
    """Draws from the global torch RNG every step: resuming must restore that RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(torch.relu(self.fc2(torch.relu(self.fc1(x))))))


def make(root: Path, adam: bool = False, model: type[nn.Module] = DropoutMLP,
         **overrides) -> Lottery:
    kw = {"rounds": 2, "checkpoint_every": 10, **overrides}
    opt = (lambda p: torch.optim.Adam(p, lr=0.01)) if adam else sgd
    return make_lottery(root, model=model, optimizer=opt, milestones=[25], **kw)


class Crash(BaseException):
    """Stands in for SIGKILL in-process (a BaseException, like KeyboardInterrupt)."""


def crash_at(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    def kill_point(name: str) -> None:
        if name == point:
            raise Crash(name)

    monkeypatch.setattr(span_module, "kill_point", kill_point)
    monkeypatch.setattr(files_module, "kill_point", kill_point)


def without_wall(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


def assert_same_run(a: RunStore, b: RunStore, rounds: int) -> None:
    assert without_wall(a.read_metrics()) == without_wall(b.read_metrics())
    for k in range(rounds + 1):
        for name in ("mask_path", "final_path"):
            ta = a.load_tensors(getattr(a, name)(k))
            tb = b.load_tensors(getattr(b, name)(k))
            assert ta.keys() == tb.keys()
            assert all(torch.equal(ta[n], tb[n]) for n in ta), (name, k)
        assert a.curve_path(k).read_text() == b.curve_path(k).read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[bool, RunStore]:
    runs = {}
    for adam in (False, True):
        lottery = make(tmp_path_factory.mktemp(f"full{int(adam)}"), adam=adam)
        lottery.run()
        runs[adam] = lottery.store
    return runs


@pytest.mark.parametrize("adam,point", [
    (True, "checkpoint:0:30"),          # during round 0, after the evaluation at 20
    (False, "checkpoint:2:20"),         # during a later round
    (True, "write:round_1/final.pt"),   # while writing a round's files
    (False, "write:round_0/curve.json"),
])
def test_resume_after_a_crash_is_bit_identical(tmp_path: Path, monkeypatch, uninterrupted,
                                               adam: bool, point: str) -> None:
    crash_at(monkeypatch, point)
    with pytest.raises(Crash):
        make(tmp_path, adam=adam).run()
    monkeypatch.undo()
    resumed = make(tmp_path, adam=adam)
    ran = []
    resumed.run(on_round=lambda r: ran.append(r["round"]))
    assert ran and ran[0] == int(re.findall(r"\d+", point)[0])
    assert_same_run(uninterrupted[adam], resumed.store, 2)
    assert not list(tmp_path.rglob("checkpoint.pt*")), "checkpoints are removed once complete"


def test_the_resume_test_fails_without_the_rng_restore(tmp_path: Path, monkeypatch,
                                                       uninterrupted) -> None:
    """The test above can fail: skipping the RNG restore changes the dropout masks."""
    crash_at(monkeypatch, "checkpoint:0:10")
    with pytest.raises(Crash):
        make(tmp_path).run()
    monkeypatch.undo()
    monkeypatch.setattr(checkpoint, "set_rng_state", lambda state: None)
    records = make(tmp_path, rounds=0).run()
    assert without_wall(records) != without_wall(uninterrupted[False].read_metrics()[:1])


def test_checkpoint_holds_only_plain_data(tmp_path: Path, monkeypatch) -> None:
    crash_at(monkeypatch, "checkpoint:1:20")
    with pytest.raises(Crash):
        make(tmp_path, adam=True).run()
    path = RunStore(tmp_path).checkpoint_path(1)
    ckpt = torch.load(path, weights_only=True)  # raises if anything needs unpickling code
    assert ckpt["round"] == 1 and ckpt["train"]["it"] == 20 and ckpt["span"] == [0, 40]
    assert {"torch", "numpy", "python"} <= set(ckpt["rng"])
    # Taken before anything of iteration 20 runs, its evaluation included.
    assert [e["iter"] for e in ckpt["train"]["evals"]] == [0]
    sidecar = path.with_name("checkpoint.pt.sha256").read_text()
    assert sidecar.endswith("  checkpoint.pt\n") and len(sidecar.split()[0]) == 64


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def truncate_unchecked(path: Path) -> None:
    """A file written before checksums existed, or by a crash between file and checksum."""
    truncate(path)
    path.with_name(path.name + ".sha256").unlink()


@pytest.mark.parametrize("target,damage", [
    ("mask", flip_byte), ("mask", truncate_unchecked), ("checkpoint", truncate),
    ("rewind", flip_byte),
])
def test_damaged_files_give_one_line_errors(tmp_path: Path, monkeypatch, damage,
                                            target: str) -> None:
    crash_at(monkeypatch, "checkpoint:1:20")
    with pytest.raises(Crash):
        make(tmp_path).run()
    monkeypatch.undo()
    store = RunStore(tmp_path)
    path = {"mask": store.mask_path(0), "checkpoint": store.checkpoint_path(1),
            "final": store.final_path(0), "rewind": store.rewind_path}[target]
    damage(path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(CheckpointError) as info:
        make(tmp_path).run()
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "is corrupt or truncated" in message
    assert "delete" in message
    # Nothing was retrained or rewritten over the existing files.
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_deleting_a_corrupt_checkpoint_restarts_its_round(tmp_path: Path, monkeypatch,
                                                          uninterrupted) -> None:
    crash_at(monkeypatch, "checkpoint:1:20")
    with pytest.raises(Crash):
        make(tmp_path).run()
    monkeypatch.undo()
    store = RunStore(tmp_path)
    truncate(store.checkpoint_path(1))
    store.checkpoint_path(1).unlink()  # what the message says to do
    make(tmp_path).run()
    assert_same_run(uninterrupted[False], store, 2)


def test_a_checkpoint_of_other_settings_is_refused(tmp_path: Path, monkeypatch) -> None:
    crash_at(monkeypatch, "checkpoint:0:20")
    with pytest.raises(Crash):
        make(tmp_path).run()
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match=r"checkpoint.pt covers iterations \[0, 40\].*"
                                              r"delete it to restart round 0"):
        make(tmp_path, iterations=60).run()


def test_files_of_another_model_are_refused(tmp_path: Path) -> None:
    make(tmp_path, model=TinyMLP, rounds=0).run()
    store = RunStore(tmp_path)

    class Wider(TinyMLP):
        def __init__(self) -> None:
            super().__init__(hidden=48)

    with pytest.raises(CheckpointError, match=r"init.pt does not match the model"):
        make(tmp_path, model=Wider, rounds=1).run()
    # A mask written for other layers (with a valid checksum: copied from another run).
    store.save_tensors(store.mask_path(0), {"conv.weight": torch.ones(3, 3, dtype=torch.bool)})
    with pytest.raises(CheckpointError, match=r"mask.pt has layers the model lacks"):
        make(tmp_path, model=TinyMLP, rounds=1).run()
    assert len(store.read_metrics()) == 1


class PoisonMLP(TinyMLP):
    """Its loss becomes NaN once ``poisoned`` is set (by the test, in round 2)."""

    poisoned = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out * float("nan") if self.poisoned else out


def test_nan_loss_stops_the_round_and_keeps_earlier_rounds(tmp_path: Path, monkeypatch) -> None:
    lottery = make(tmp_path, model=PoisonMLP, rounds=3)
    begin = Lottery.begin_round

    def poisoned_begin(self: Lottery, k: int) -> driver_module.RoundStart:
        start = begin(self, k)
        start.model.poisoned = k == 2
        return start

    monkeypatch.setattr(Lottery, "begin_round", poisoned_begin)
    with pytest.raises(TrainingError, match=r"training loss became nan .*\(round 2\).*"
                                            r"completed rounds are kept"):
        lottery.run()
    store = RunStore(tmp_path)
    assert [r["round"] for r in store.read_metrics()] == [0, 1]
    assert not store.final_path(2).exists()


def test_a_full_disk_is_a_storage_error_and_keeps_files(tmp_path: Path, monkeypatch) -> None:
    make(tmp_path, rounds=0).run()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files_module.os, "replace", full)
    with pytest.raises(StorageError, match=r"cannot write .*No space left on device.*rerun"):
        make(tmp_path, rounds=1).run()
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_lock_admits_one_holder(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.prepare()
    with RunLock(store.lock_path):
        assert store.lock_path.read_text().strip() == str(os.getpid())
        with pytest.raises(LockError, match=rf"in use by process {os.getpid()} .*wait for it"):
            with RunLock(store.lock_path):
                pass
    with RunLock(store.lock_path):  # released on exit
        pass


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    (tmp_path / "round_1").mkdir(parents=True)
    leftovers = [tmp_path / ".metrics.jsonl.x1.tmp", tmp_path / "round_1" / ".final.pt.x.tmp"]
    for p in leftovers:
        p.write_bytes(b"half")
    store.remove_temporaries()
    assert not any(p.exists() for p in leftovers)


# -- loading safety -------------------------------------------------------------------------
def _call(text: str, start: int) -> str:
    """The source of the call whose "(" is at ``start``, parentheses balanced."""
    depth = 0
    for i in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i + 1]
    return text[start:]


# (call, what makes it safe or None if never safe, name)
UNSAFE = [
    (re.compile(r"\btorch\.load\("), "weights_only=True", "torch.load without weights_only"),
    (re.compile(r"\bpickle\.loads?\(|\bUnpickler\("), None, "pickle.load"),
    (re.compile(r"\byaml\.(?:unsafe_)?load\("), "Loader=yaml.SafeLoader", "yaml.load"),
    (re.compile(r"\bnp\.load\("), "allow_pickle=False", "np.load without allow_pickle=False"),
]


def unsafe_calls(text: str) -> list[tuple[int, str]]:
    """(line, what) of each unsafe load in ``text``."""
    found = []
    for pattern, safe, what in UNSAFE:
        for m in pattern.finditer(text):
            if safe is None or safe not in _call(text, m.end() - 1):
                found.append((text.count("\n", 0, m.start()) + 1, what))
    return found


def test_nothing_is_unpickled_from_disk() -> None:
    """Every torch.load in the source passes weights_only=True; no pickle/unsafe yaml."""
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        if ".venv" in path.parts or path.name == "test_resume.py":
            continue
        for line, what in unsafe_calls(path.read_text()):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not offenders, "\n".join(offenders)


def test_the_scan_catches_unsafe_loads() -> None:
    unsafe = ["torch.load(path)", "torch.load(io.BytesIO(b), map_location='cpu')",
              "torch.load(p, weights_only=False)", "pickle.load(f)", "pickle.loads(b)",
              "yaml.load(text)", "np.load(f, allow_pickle=True)"]
    for sample in unsafe:
        assert unsafe_calls(sample), sample
    safe = ["torch.load(io.BytesIO(data), map_location='cpu', weights_only=True)",
            "yaml.load(text, Loader=yaml.SafeLoader)", "np.load(f, allow_pickle=False)"]
    for sample in safe:
        assert not unsafe_calls(sample), sample


class _Doctored:
    """Unpickling this with the stock pickle module would create ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_doctored_cifar_file_cannot_run_code(tmp_path: Path) -> None:
    """CIFAR's python batches are pickles by format: only arrays, lists and strings load."""
    make_cifar10(tmp_path)
    marker = tmp_path / "code_ran"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _Doctored(marker), "labels": [0]}))
    with pytest.raises(DataError, match=r"CIFAR-10 file .* is corrupt \(pathlib.*Path.touch is "
                                        r"not allowed in a dataset file\)"):
        load_dataset("cifar10", root=str(tmp_path))
    assert not marker.exists()


def test_metrics_lines_are_plain_json(tmp_path: Path) -> None:
    make(tmp_path, rounds=0).run()
    line = RunStore(tmp_path).metrics_path.read_text().splitlines()[0]
    assert json.loads(line)["round"] == 0


def test_a_damaged_run_json_stops_before_the_round_trains(tmp_path: Path) -> None:
    import dataclasses

    lottery = dataclasses.replace(make(tmp_path, rounds=1), versions={"lth": "x", "commit": "y"})
    lottery.store.write_text(lottery.store.info_path, "{not json")
    with pytest.raises(CheckpointError, match=r"run.json cannot be read .*: restore it"):
        lottery.run()
    assert not lottery.store.metrics_path.exists() and not lottery.store.init_path.exists()
    lottery.store.remove(lottery.store.info_path)
    lottery.run()  # without run.json the rounds note their versions in a fresh one
    info = json.loads(lottery.store.info_path.read_text())
    assert info["rounds"] == {"0": {"lth": "x", "commit": "y"}, "1": {"lth": "x", "commit": "y"}}
