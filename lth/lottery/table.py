"""The per-round table printed while an experiment runs."""

from __future__ import annotations

from typing import Any

_COLUMNS = "round  density    test acc   best acc @ iter     time"


def format_header() -> str:
    """The table's header line."""
    return _COLUMNS


def format_row(record: dict[str, Any], note: str = "") -> str:
    """One round's line: round, density %, final and best test accuracy, wall time."""
    return (f"{record['round']:>5}  {100 * record['density']:>6.2f}%  "
            f"{100 * record['test_acc']:>8.2f}%  {100 * record['best_test_acc']:>8.2f}% @ "
            f"{record['best_iter']:<6}  {record['wall_s']:>6.1f}s"
            + (f"  ({note})" if note else ""))
