"""The one atomic writer: a failed or killed write never damages the old file."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

import lth.files as files_module
from lth.errors import StorageError
from lth.faults import ENV
from lth.files import TEMP_SUFFIX, atomic_write, write_text
from tests.conftest import PYTHON, ROOT


def test_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "f.bin"
    assert atomic_write(path, b"old") == path
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"
    write_text(path, "text \u00e9")
    assert path.read_text(encoding="utf-8") == "text \u00e9"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.stat().st_mode == plain.stat().st_mode  # not mkstemp's 0o600


@pytest.mark.parametrize("where", ["fsync", "replace"])
def test_a_failing_write_keeps_the_old_file_and_no_temporary(tmp_path: Path, monkeypatch,
                                                             where: str) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")

    def full(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files_module.os, where, full)
    with pytest.raises(StorageError, match=rf"cannot write {re.escape(str(path))} "
                                           r"\(No space left on device\): free disk space"):
        atomic_write(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_an_interrupted_write_keeps_the_old_file_and_no_temporary(tmp_path: Path,
                                                                  monkeypatch) -> None:
    path = tmp_path / "f.bin"
    atomic_write(path, b"old")
    points = []

    def stop(name: str) -> None:
        points.append(name)
        raise KeyboardInterrupt

    monkeypatch.setattr(files_module, "kill_point", stop)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, b"new")
    assert points == [f"write:{tmp_path.name}/f.bin"]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_the_kill_point_fires_before_the_rename(tmp_path: Path) -> None:
    """A real SIGKILL at ``write:<dir>/<file>``: the old file survives, the temporary (complete,
    not renamed) is what ``RunStore.remove_temporaries`` cleans up."""
    path = tmp_path / "run" / "f.bin"
    atomic_write(path, b"old")
    code = f"from lth.files import atomic_write; atomic_write({str(path)!r}, b'new')"
    env = {**os.environ, ENV: "write:run/f.bin", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([PYTHON, "-c", code], env=env, cwd=ROOT, timeout=120)
    assert result.returncode == -signal.SIGKILL
    assert path.read_bytes() == b"old"
    temps = [p for p in path.parent.iterdir() if p != path]
    assert len(temps) == 1 and temps[0].name.startswith(".f.bin.")
    assert temps[0].name.endswith(TEMP_SUFFIX) and temps[0].read_bytes() == b"new"


def test_no_other_module_of_lth_renames_or_writes_whole_files() -> None:
    """Every writer goes through lth.files (appending logs, like the curve sink, is not a
    whole-file write)."""
    pattern = re.compile(r"os\.(replace|rename)\(|\.write_bytes\(|savefig\((path|out)")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in sorted((ROOT / "lth").rglob("*.py"))
                 if p.name != "files.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
