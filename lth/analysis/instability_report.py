"""Instability over seeds: the error barrier against the rewind point and weights remaining.

Runs that differ only in their seed and ``prune.rewind`` form one sweep; for each rewind point
and analysed round, the barrier (test and train, percentage points) is averaged over seeds with
the chosen band. A round is *stable* when its mean test barrier is below ``stable`` percentage
points (2 in Frankle et al. 2020) and *matching* when the ticket's mean test accuracy is within
``tolerance`` of the dense network's (round 0 of the same rewind point).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from lth.analysis.plots import _pyplot, _save, percent_axis
from lth.analysis.runs import Run
from lth.analysis.stats import band
from lth.errors import ConfigError
from lth.files import atomic_write
from lth.store.hashing import semantic_config
from lth.store.store import RunStore


def check_stable(stable: float) -> float:
    """``stable`` if in (0, 100) percentage points, else ConfigError naming the option."""
    if not 0 < stable < 100:
        raise ConfigError(f"--stable {stable} must be in (0, 100): a barrier in percentage "
                          "points (the paper uses 2)")
    return stable


@dataclass(frozen=True)
class InstabilityRow:
    """One (rewind point, round) over seeds: means and (low, high) bands."""

    rewind_iter: int
    round: int
    density: float
    seeds: tuple[int, ...]
    barrier_test: tuple[float, float, float]   # mean, low, high (percentage points)
    barrier_train: tuple[float, float, float]
    ticket_acc: tuple[float, float, float]     # the ticket's test accuracy (0..1)
    dense_acc: float                           # mean test accuracy of round 0
    stable: bool
    matching: bool


def sweep_key(run: Run) -> str:
    """Runs with equal keys differ only in seed and rewind point."""
    cfg = semantic_config(run.config)
    cfg.pop("seed", None)
    cfg.get("prune", {}).pop("rewind", None)
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return f"{run.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def instability_rows(runs: Iterable[Run], *, band_kind: str = "std", stable: float = 2.0,
                     tolerance: float = 0.005) -> list[InstabilityRow]:
    """The rows of one sweep's runs, by rewind point then round."""
    cells: dict[tuple[int, int], list[tuple[int, dict]]] = {}
    dense: dict[int, list[float]] = {}
    for run in runs:
        records = RunStore(run.path).read_instability()
        for r in records:  # under weight rewinding every copy spawns at the rewind point
            cells.setdefault((int(r["spawn_iter"]), r["round"]), []).append((run.seed, r))
        for rewind in {int(r["spawn_iter"]) for r in records}:
            dense.setdefault(rewind, []).extend(r["test_acc"] for r in run.rounds
                                                if r["round"] == 0)
    rows = []
    for (rewind, k), items in sorted(cells.items()):
        acc = band([r["test_acc"] for _, r in items], band_kind)
        bt = band([r["barrier_test"] for _, r in items], band_kind)
        d = dense.get(rewind) or [acc[0]]
        dense_acc = sum(d) / len(d)
        rows.append(InstabilityRow(
            rewind, k, items[0][1]["density"], tuple(s for s, _ in items), bt,
            band([r["barrier_train"] for _, r in items], band_kind), acc, dense_acc,
            bt[0] < stable, acc[0] >= dense_acc - tolerance))
    return rows


def markdown(rows: list[InstabilityRow], label: str, stable: float, band_text: str) -> str:
    """The table: one line per rewind point and round."""
    lines = [f"# {label}: instability (error barrier, percentage points; mean {band_text} over "
             "seeds)", "", f"stable: mean test barrier < {stable} pp; matching: ticket's mean "
             "test accuracy within the tolerance of dense (round 0)", "",
             "| rewind (it) | round | weights remaining | seeds | test barrier (pp) | "
             "train barrier (pp) | ticket test acc (%) | stable | matching |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def pm(v: tuple[float, float, float], s: float = 1.0) -> str:
            return f"{s * v[0]:.2f} ± {s * (v[2] - v[1]) / 2:.2f}"
        lines.append(f"| {r.rewind_iter} | {r.round} | {100 * r.density:.1f}% | "
                     f"{len(r.seeds)} | {pm(r.barrier_test)} | {pm(r.barrier_train)} | "
                     f"{pm(r.ticket_acc, 100)} | {'yes' if r.stable else 'no'} | "
                     f"{'yes' if r.matching else 'no'} |")
    return "\n".join(lines) + "\n"


def figures(rows: list[InstabilityRow], label: str, out: Path, stable: float) -> list[Path]:
    """Barrier against the rewind point (a line per round) and against weights remaining
    (a line per rewind point), mean and band over seeds."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for k in sorted({r.round for r in rows}):
        sel = sorted((r for r in rows if r.round == k), key=lambda r: r.rewind_iter)
        x = [max(r.rewind_iter, 1) for r in sel]
        left.plot(x, [r.barrier_test[0] for r in sel], marker="o",
                  label=f"round {k} ({100 * sel[0].density:.1f}%)")
        left.fill_between(x, [r.barrier_test[1] for r in sel], [r.barrier_test[2] for r in sel],
                          alpha=0.2, linewidth=0)
    for rewind in sorted({r.rewind_iter for r in rows}):
        sel = sorted((r for r in rows if r.rewind_iter == rewind), key=lambda r: -r.density)
        x = [100 * r.density for r in sel]
        right.plot(x, [r.barrier_test[0] for r in sel], marker="o", label=f"rewind {rewind} it")
        right.fill_between(x, [r.barrier_test[1] for r in sel],
                           [r.barrier_test[2] for r in sel], alpha=0.2, linewidth=0)
    left.set_xscale("log")
    left.set_xlabel("rewind point (iterations; 0 drawn at 1)")
    right.set_xscale("log")
    right.invert_xaxis()
    right.set_xlabel("weights remaining (%)")
    percent_axis(right.xaxis)
    for ax in (left, right):
        ax.axhline(stable, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel("test error barrier (percentage points)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{label.rsplit('-', 1)[0]}: instability (linear mode connectivity) of the "
                 "ticket's two copies")
    paths = _save(fig, out, "instability")
    plt.close(fig)
    return paths


def write_instability(label: str, runs: list[Run], out: Path, *, band_kind: str,
                      band_text: str, stable: float, tolerance: float) -> str:
    """instability.md, instability.json and the figure in ``out``; the table's text."""
    rows = instability_rows(runs, band_kind=band_kind, stable=stable, tolerance=tolerance)
    if not rows:
        raise ConfigError(f"{label}: no instability records; run experiments.instability "
                          "on the runs first (or analysis.instability=true)")
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(rows, label, stable, band_text)
    atomic_write(out / "instability.md", text.encode())
    atomic_write(out / "instability.json", json.dumps(
        [r.__dict__ for r in rows], indent=1).encode())
    figures(rows, label, out, stable)
    return text
