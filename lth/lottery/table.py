"""The per-round table printed while an experiment runs."""

from __future__ import annotations

from typing import Any

_COLUMNS = "round  density    test acc   {} @ iter     time"


def format_header(val_split: bool = False) -> str:
    """The table's header line. Its fourth column is the accuracy at the early-stop point,
    selected on the validation loss with a validation split (``dataset.val_size > 0``); without
    one, the best test accuracy, and the header says it was selected on the test set."""
    return _COLUMNS.format("val-selected" if val_split else "test-selected")


def format_row(record: dict[str, Any], note: str = "") -> str:
    """One round's line: round, density %, final test accuracy, the selected one (early stop on
    the validation loss where the record has a validation split, else the best test accuracy),
    wall time."""
    if record.get("val_loss") is not None and "early_stop_test_acc" in record:
        acc, at = record["early_stop_test_acc"], record["early_stop_iter"]
    else:
        acc, at = record["best_test_acc"], record["best_iter"]
    if record.get("supermask_test_acc") is not None:  # analysis.supermask
        supermask = f"supermask {100 * record['supermask_test_acc']:.2f}%"
        note = f"{note}, {supermask}" if note else supermask
    return (f"{record['round']:>5}  {100 * record['density']:>6.2f}%  "
            f"{100 * record['test_acc']:>8.2f}%  {100 * acc:>11.2f}% @ "
            f"{at:<6}  {record['wall_s']:>6.1f}s"
            + (f"  ({note})" if note else ""))
