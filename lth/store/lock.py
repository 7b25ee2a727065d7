"""One process per run directory: an exclusive ``flock`` on ``<run dir>/.lock``.

The kernel drops the lock when its holder exits, however it exits (``kill -9`` included), so a
lock is never stale; the PID written into the file only names the holder in the message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from lth.errors import LockError, StorageError


class RunLock:
    """``with RunLock(path):`` holds the lock or raises LockError at once (never waits)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StorageError(f"cannot create {self.path} ({e.strerror}): set output_root to "
                               "a writable location") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockError(
                f"run directory {self.path.parent} is in use by process {holder} (lock "
                f"{self.path}): wait for it to finish, or kill it, then rerun to resume"
            ) from None
        self._fd = fd
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            self.__exit__(None, None, None)
            raise StorageError(f"cannot write {self.path} ({e.strerror}): free disk space or "
                               "set output_root to a writable location") from None
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            # Unlocking without deleting the file: deleting would let a third process lock a
            # new inode while a second one still waits on the old one.
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
