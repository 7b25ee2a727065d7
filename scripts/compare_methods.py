"""Pruning methods side by side at the same densities: ticket, shuffle and inversion controls.

    python -m scripts.compare_methods <output_root>/<name>... --out DIR [--seeds N]

Stored runs (as ``scripts.aggregate`` finds them) are grouped by method: ``prune.strategy``,
with ``(IMP)`` added when ``prune.at_init`` is false. For every method and round k >= 1,
``table.md`` gives the final test accuracy (mean ± sample std over seeds, in %) of the ticket
and of each control trained beside it, the paired ticket − control difference, and the
supermask accuracy when recorded; ``accuracy.{png,pdf}`` plots ticket (solid) and
``random_prune`` (dotted) against density, one colour per method; ``layers.md`` the mean
density of each layer at the lowest density.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from lth.analysis import Run, find_runs, load_run
from lth.errors import LthError

CONTROLS = ("random_prune", "invert", "random_reinit")


def method(run: Run) -> str:
    prune = run.config.get("prune", {})
    return str(prune.get("strategy")) + ("" if prune.get("at_init") else " (IMP)")


def _cell(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * statistics.mean(values)
    spread = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {spread:.1f}"


def rows(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (method, round k >= 1): densities and accuracies over seeds."""
    by: dict[tuple[str, int], dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    density: dict[tuple[str, int], float] = {}
    for run in runs:
        m = method(run)
        for r in run.rounds:
            if r["round"] >= 1:
                by[m, r["round"]]["ticket"][run.seed] = r["test_acc"]
                density[m, r["round"]] = r["density"]
                if "supermask_test_acc" in r:
                    by[m, r["round"]]["supermask"][run.seed] = r["supermask_test_acc"]
        for c in run.controls:
            by[m, c["round"]][c["control"]][run.seed] = c["test_acc"]
    out = []
    for (m, k), series in sorted(by.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        out.append({"method": m, "round": k, "density": density.get((m, k)), **series})
    return out


def table(rows_: list[dict[str, Any]]) -> str:
    present = [c for c in CONTROLS if any(c in r for r in rows_)]
    supermask = any("supermask" in r for r in rows_)
    head = ["method", "density", "seeds", "ticket", *present,
            *(f"ticket − {c}" for c in present), *(["supermask"] if supermask else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows_:
        t = r["ticket"]
        diffs = [[t[s] - r[c][s] for s in t if s in r.get(c, {})] for c in present]
        cells = [r["method"], f"{100 * r['density']:.1f}%", str(len(t)), _cell(list(t.values())),
                 *(_cell(list(r.get(c, {}).values())) for c in present),
                 *(_cell(d) for d in diffs)]
        if supermask:
            cells.append(_cell(list(r.get("supermask", {}).values())))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def layers(runs: list[Run]) -> str:
    """Mean density of each layer at each method's lowest density (0% = a collapsed layer)."""
    last: dict[str, list[dict[str, float]]] = defaultdict(list)
    for run in runs:
        if run.rounds and run.rounds[-1]["round"] >= 1:
            last[method(run)].append(run.rounds[-1]["layer_density"])
    names = sorted({n for ds in last.values() for d in ds for n in d})
    lines = ["| method | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    for m, ds in sorted(last.items()):
        lines.append(f"| {m} | " + " | ".join(
            f"{100 * statistics.mean(d[n] for d in ds):.2f}%" for n in names) + " |")
    return "\n".join(lines) + "\n"


def _band(values: list[float]) -> tuple[float, float, float]:
    """(mean, mean - std, mean + std) in percent; no band for one value."""
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return 100 * mean, 100 * (mean - std), 100 * (mean + std)


def plot(rows_: list[dict[str, Any]], out: Path, dense: list[float] | None = None) -> None:
    """Two panels, the methods' tickets and their layer-wise shuffles, each mean ± sample std
    over seeds, with the dense network's mean as a line."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    seeds = max((len(r["ticket"]) for r in rows_ if r.get("ticket")), default=0)
    for ax, series, name in zip(axes, ("ticket", "random_prune"),
                                ("ticket of each method", "its layer-wise shuffle "
                                 "(random_prune)")):
        for i, m in enumerate(sorted({r["method"] for r in rows_})):
            pts = [r for r in sorted((r for r in rows_ if r["method"] == m),
                                     key=lambda r: -r["density"]) if r.get(series)]
            if not pts:
                continue
            xs = [100 * r["density"] for r in pts]
            bands = [_band(list(r[series].values())) for r in pts]
            ax.plot(xs, [b[0] for b in bands], marker="o", color=f"C{i}", label=m,
                    markersize=4)
            ax.fill_between(xs, [b[1] for b in bands], [b[2] for b in bands], color=f"C{i}",
                            alpha=0.15, linewidth=0)
        if dense:
            ax.axhline(100 * statistics.mean(dense), color="grey", linestyle="-.",
                       linewidth=1, label="dense (round 0)")
        ax.set_xscale("log")
        ticks = sorted({100 * r["density"] for r in rows_})
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final test accuracy (%)")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"pruning methods: mean ± sample std over {seeds} seeds", fontsize=10)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"accuracy.{ext}", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.compare_methods",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seeds", type=int, default=None,
                        help="only seeds 0..SEEDS-1 (default: every stored seed)")
    args = parser.parse_args(argv)
    try:
        runs = [run for run in map(load_run, find_runs(args.paths))
                if args.seeds is None or run.seed < args.seeds]
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not runs:
        print(f"error: no stored runs under {', '.join(args.paths)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rs = rows(runs)
    (out / "table.md").write_text(table(rs))
    (out / "layers.md").write_text(layers(runs))
    plot(rs, out, [r.rounds[0]["test_acc"] for r in runs
                   if r.rounds and r.rounds[0]["round"] == 0 and r.rounds[0]["density"] == 1.0])
    print(table(rs))
    print(layers(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
