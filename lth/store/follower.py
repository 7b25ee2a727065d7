"""Rank > 0's view of the run store under data parallelism: it reads rank 0's files and
writes none (only rank 0 writes the run store; lth.train.distributed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.store.store import RunStore

if TYPE_CHECKING:
    import torch


class FollowerStore(RunStore):
    """A RunStore whose writes do nothing: the files are rank 0's. Reads see what rank 0 has
    written (the driver waits for rank 0 at the start of each round); the records this rank
    "appended" are read back from memory, so it need not wait for rank 0's lines."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self._metrics: list[dict[str, Any]] = []
        self._branches: dict[str, list[dict[str, Any]]] = {}

    def read_metrics(self) -> list[dict[str, Any]]:
        stored = super().read_metrics()
        rounds = {r["round"] for r in stored}
        return stored + [r for r in self._metrics if r["round"] not in rounds]

    def read_branches(self, kind: str) -> list[dict[str, Any]]:
        stored = super().read_branches(kind)
        return stored + [r for r in self._branches.get(kind, []) if r not in stored]

    def prepare(self) -> None:
        pass

    def write_text(self, path: Path, text: str) -> None:
        pass

    def note_round_versions(self, k: int, versions: Any) -> None:
        pass

    def save(self, path: Path, obj: Any) -> None:
        pass

    def save_tensors(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def remove(self, path: Path) -> None:
        pass

    def remove_temporaries(self) -> None:
        pass

    def append_metrics(self, record: dict[str, Any]) -> None:
        self._metrics.append(record)

    def append_branch(self, kind: str, record: dict[str, Any]) -> None:
        self._branches.setdefault(kind, []).append(record)
