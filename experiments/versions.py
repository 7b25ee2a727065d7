"""Provenance: which lth (version, git commit), torch and Python made a run and each round.

``versions()`` goes into run.json when a run is created and, through ``Lottery.versions``, under
``rounds.<k>`` for each round a process completes, with the kernel facts that decide the bits
(``lth.kernels``); resuming a run that another lth version made (part of) prints one warning
line, and so does resuming it on other kernels, so results from changed code or another
machine's kernels never mix silently.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

import lth
from lth.kernels import differing
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


def versions(kernels: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Software versions recorded with every run (and each of its rounds), with the kernel
    facts (``lth.kernels.kernel_facts``) where given."""
    out: dict[str, Any] = {"lth": lth.__version__, "torch": torch.__version__,
                           "python": platform.python_version(), "commit": git_commit()}
    if kernels is not None:
        out["kernels"] = dict(kernels)
    return out


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


def stored_kernels(info: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(which record, its kernel facts): the last round's that has them, else the run's
    creation record; None for a run stored before kernel facts were recorded."""
    rounds = info.get("rounds") if isinstance(info.get("rounds"), Mapping) else {}
    for k in sorted(rounds, key=lambda r: int(r) if str(r).isdigit() else -1, reverse=True):
        record = rounds[k]
        if isinstance(record, Mapping) and isinstance(record.get("kernels"), Mapping):
            return f"round {k}", record["kernels"]
    created = info.get("versions")
    if isinstance(created, Mapping) and isinstance(created.get("kernels"), Mapping):
        return "its creation", created["kernels"]
    return None


def warn_if_other_kernels(store: RunStore, current: Mapping[str, Any]) -> None:
    """One warning line on stderr if the stored run's last round ran on other kernels than
    ``current`` (this process's): what is trained now may differ from it in the last bits."""
    try:
        found = stored_kernels(json.loads(store.info_path.read_text()))
    except (OSError, ValueError, AttributeError, TypeError):
        return
    if found is None:
        return
    label, stored = found
    changes = differing(stored, current)
    if changes:
        print(f"warning: {store.root} ({label}) ran on other kernels ({'; '.join(changes)}): "
              "what trains here may differ from it in the last bits, and by more after a few "
              "rounds (docs/reproducibility.md)", file=sys.stderr, flush=True)
