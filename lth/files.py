"""The one atomic writer: every file lth writes goes through ``atomic_write``.

A file is written to a temporary name beside its target, flushed to disk (fsync) and renamed
over the target, so a reader, or a process that was killed mid-write, sees the old file or the
new one, never half of one. It gets the permissions a plain ``open(path, "w")`` would give.
A temporary left by a killed process ends in ``TEMP_SUFFIX`` and starts with a dot
(``RunStore.remove_temporaries`` deletes them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from lth.errors import StorageError
from lth.faults import kill_point

TEMP_SUFFIX = ".tmp"


def _file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file: 0o666 less the umask. (mkstemp
    makes 0o600 files; the umask is read once, at import, as reading it means setting it.)"""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


_MODE = _file_mode()


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file beside it, fsync, rename); ``path``.

    StorageError (naming the fix) if the disk is full or the place is not writable; the old
    file, if any, is then left as it was and no temporary stays behind.
    """
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _MODE)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        kill_point(f"write:{path.parent.name}/{path.name}")
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise StorageError(
            f"cannot write {path} ({e.strerror or e}): free disk space or set output_root to "
            "a writable location, then rerun to resume (completed rounds are kept)"
        ) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """``atomic_write`` of ``text`` encoded as UTF-8."""
    return atomic_write(path, text.encode())
