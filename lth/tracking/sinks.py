"""Metric sinks: where the lottery loop sends per-round records and per-iteration curves.

A sink never decides what to measure; it only forwards. The run store's `metrics.jsonl` is
written by the lottery loop itself, so every sink here is optional.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable


@runtime_checkable
class Sink(Protocol):
    """Receives metrics. A sink backed by an external service (W&B) must not raise: when it
    breaks it warns once and goes quiet, so the experiment and its local logs carry on."""

    def log_round(self, record: dict[str, Any]) -> None:
        """One completed IMP round: the run store's flat per-round record."""
        ...

    def log_curve(self, round: int, it: int, values: dict[str, float]) -> None:
        """One point within a round: `it` is the iteration within the round."""
        ...

    def close(self) -> None:
        """Flush and release resources; safe to call twice."""
        ...


class NullSink:
    """Discards everything (W&B disabled, or W&B failed to start)."""

    def log_round(self, record: dict[str, Any]) -> None:
        pass

    def log_curve(self, round: int, it: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class CurveFileSink:
    """Appends each curve point as a JSON line `{"round", "iter", **values}` to `path`.

    Lines are flushed as they are written, so a killed run keeps its curves up to the last
    point. Rounds are ignored (the lottery loop writes `metrics.jsonl` itself).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")

    def log_round(self, record: dict[str, Any]) -> None:
        pass

    def log_curve(self, round: int, it: int, values: dict[str, float]) -> None:
        if self._file is None:
            return
        line = json.dumps({"round": round, "iter": it, **values})
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
