"""The end-of-run summary of ``experiments.lottery``: dense, the ticket at its lowest density
and at its best, the controls there, one sentence reading them, and the next commands.

Reads the stored records only (plain dicts), so a resumed or finished run gets the same
summary. ``test_acc`` is the final test accuracy (no selection on the test set).
"""

from __future__ import annotations

import shlex
import textwrap
from typing import Any

TOLERANCE = 0.005  # "matches dense": within 0.5 percentage points, as scripts.aggregate says

Record = dict[str, Any]


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _density(x: float) -> str:
    return f"{100 * x:.3g}%"


def _controls_at(controls: list[Record], k: int) -> dict[str, float]:
    return {r["control"]: r["test_acc"] for r in controls if r["round"] == k}


def _line(label: str, r: Record, controls: list[Record]) -> str:
    ctl = "".join(f", {n} {_pct(a)}" for n, a in sorted(_controls_at(controls, r["round"]).items()))
    where = f"round {r['round']} ({_density(r['density'])})"
    return f"  {label:<15} {where:<17} ticket {_pct(r['test_acc'])}{ctl}"


def beat(ticket: float, dense: float) -> str:
    """``beat dense by 3.1 pt`` / ``match dense (within 0.5 pt)`` / ``fall 2.0 pt below
    dense``."""
    d = 100 * (ticket - dense)
    if abs(d) <= 100 * TOLERANCE:
        return f"match dense (within {100 * TOLERANCE:g} pt)"
    return f"beat dense by {d:.1f} pt" if d > 0 else f"fall {-d:.1f} pt below dense"


def relative(other: float, ticket: float) -> str:
    """``2.0 pt below the ticket`` / ``1.0 pt above the ticket`` / ``within 0.5 pt of it``."""
    d = 100 * (other - ticket)
    if abs(d) <= 100 * TOLERANCE:
        return f"within {100 * TOLERANCE:g} pt of the ticket"
    return f"{abs(d):.1f} pt {'above' if d > 0 else 'below'} the ticket"


NAMES = {"random_prune": ("random masks", "reach"),
         "random_reinit": ("random re-initialisation", "reaches"),
         "invert": ("inverted masks", "reach")}


def reading(dense: Record, low: Record, controls: list[Record]) -> str:
    """One sentence: the ticket at its lowest density against dense and the controls there."""
    t = low["test_acc"]
    parts = [f"tickets {beat(t, dense['test_acc'])} at {_density(low['density'])} of the "
             "weights"]
    for n, a in sorted(_controls_at(controls, low["round"]).items()):
        label, verb = NAMES.get(n, (n, "reaches"))
        parts.append(f"{label} ({n}) {verb} {_pct(a)} there, {relative(a, t)}")
    return "; ".join(parts) + "."


def summary_lines(rounds: list[Record], controls: list[Record], seed: int, root: str,
                  name: str, overrides: list[str] | None = None) -> list[str]:
    """The summary's lines for a run's round and control records (empty without rounds);
    ``overrides`` (the command line's, seed left out) go into the next commands."""
    if not rounds:
        return []
    dense, low = rounds[0], rounds[-1]
    lines = [f"summary (seed {seed}; final test accuracy, test_acc):",
             f"  {'dense':<15} {'round 0 (100%)':<17} {_pct(dense['test_acc'])}"]
    if len(rounds) > 1:
        best = max(rounds[1:], key=lambda r: r["test_acc"])
        lines.append(_line("lowest density", low, controls))
        if best is not low:
            lines.append(_line("best ticket", best, controls))
        text = reading(dense, low, controls) + " One seed: the spread over seeds decides."
        lines += textwrap.wrap(text, 98, initial_indent="  reading: ", subsequent_indent="  ")
    kept = " ".join(shlex.quote(o) for o in overrides or [] if not o.startswith("seed="))
    group = f"{root}/{name}"
    lines += ["next:",
              f"  python -m experiments.lottery -m {kept + ' ' if kept else ''}seed=1,2,3,4"
              "   # four more seeds",
              f"  python -m scripts.aggregate {group} --out out/{name}   # mean ± std, figures",
              f"  python -m scripts.runs {root}   # which stored run is which"]
    return lines
