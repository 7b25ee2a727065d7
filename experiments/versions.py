"""Provenance: which lth (version, git commit), torch and Python made a run and each round.

``versions()`` goes into run.json when a run is created and, through ``Lottery.versions``, under
``rounds.<k>`` for each round a process completes; resuming a run that another lth version made
(part of) prints one warning line, so results from changed code never mix silently.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

import lth
from lth.store import RunStore


def _git(*args: str) -> str | None:
    """``git <args>`` in lth's source directory: its stdout, or None if it fails."""
    try:
        out = subprocess.run(["git", *args], cwd=Path(lth.__file__).parent,
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The git commit of lth's source tree (``-dirty`` with uncommitted changes), or
    ``unknown`` outside a git checkout (e.g. an installed wheel) or without git."""
    if _git("ls-files", "--error-unmatch", "__init__.py") is None:
        return "unknown"  # not lth's own checkout (or a tree lth is not tracked in)
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown"
    return commit + ("-dirty" if _git("status", "--porcelain", "--untracked-files=no") else "")


def versions() -> dict[str, str]:
    """Software versions recorded with every run (and each of its rounds)."""
    return {"lth": lth.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "commit": git_commit()}


def stored_versions(info: dict[str, Any]) -> list[str]:
    """Every lth version that worked on a run: the run's creator's and each round's, sorted."""
    found = {(info.get("versions") or {}).get("lth")}
    found.update(r.get("lth") for r in (info.get("rounds") or {}).values())
    return sorted(v for v in found if isinstance(v, str))


def warn_if_other_version(store: RunStore) -> None:
    """One warning line on stderr if another lth version made (part of) the stored run."""
    try:
        others = [v for v in stored_versions(json.loads(store.info_path.read_text()))
                  if v != lth.__version__]
    except (OSError, ValueError, AttributeError, TypeError):
        return  # no or unreadable run.json: nothing to compare with
    if others:
        print(f"warning: {store.root} was made by lth {', '.join(others)}; this is lth "
              f"{lth.__version__}: "
              "results from changed code may differ", file=sys.stderr, flush=True)
