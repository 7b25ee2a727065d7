"""The run store's binary files: ``torch.save`` objects written atomically beside a sha256
sidecar (``sha256sum -c`` format), read back with ``weights_only=True`` after the checksum.

A ``.pt`` file's checksum is removed before the file is replaced and written after it, so a
crash between the two leaves a file without a checksum (still checked for structure), never a
file with a wrong one. torch is imported where a file is read or written: ``scripts.runs``
never needs it.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

from lth.errors import CheckpointError
from lth.files import atomic_write


def checksum_path(path: Path) -> Path:
    """The sidecar holding ``path``'s sha256, in ``sha256sum`` format."""
    return path.with_name(path.name + ".sha256")


def write(path: Path, obj: Any) -> None:
    """``obj`` (tensors, numbers, strings, lists, dicts) to ``path``, with its checksum."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    checksum_path(path).unlink(missing_ok=True)
    atomic_write(path, data)
    atomic_write(checksum_path(path), f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode())


def read(path: Path, fix: str) -> Any:
    """What ``write`` stored; CheckpointError (its message ending with ``fix``) if the file is
    missing, corrupt or truncated."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(
            f"{path} is missing: the run directory is incomplete; delete the round's "
            "metrics line or the run directory to redo it"
        ) from None
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e.strerror}): {fix}") from None
    sidecar = checksum_path(path)
    if sidecar.exists():
        expected = sidecar.read_text().split(maxsplit=1)[:1]
        if expected != [hashlib.sha256(data).hexdigest()]:
            raise CheckpointError(f"{path} is corrupt or truncated (its sha256 differs from "
                                  f"{sidecar.name}): {fix}")
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for damaged files
        raise CheckpointError(
            f"{path} is corrupt or truncated ({type(e).__name__}): {fix}") from None
