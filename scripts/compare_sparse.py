"""Sparse networks found by IMP, pruning at init and sparse training, at equal density and
against what each cost to find.

    python -m scripts.compare_sparse <output_root>/<name>... --out DIR [--densities 0.1,0.05]

Stored runs (as ``scripts.aggregate`` finds them) are grouped by method: sparse training by
``sparse.method`` and ``sparse.distribution`` (one round), IMP (``prune.at_init=false``; every
round k >= 1, and its ``random_prune`` control) and pruning at init by ``prune.strategy``.
``table.md``: per method and density, the final test accuracy (mean ± sample std over seeds,
in %) and the cost of the training that gave the network and of finding it (``train_cost``,
``search_cost``: units of one dense training, ``lth.lottery.cost``). ``accuracy.{png,pdf}``:
accuracy against density (left) and against search cost (right), every method on one page.
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

Row = dict[str, Any]


def method(run: Run) -> str:
    sparse = run.config.get("sparse") or {}
    if sparse.get("method"):
        return f"{sparse['method']} ({sparse.get('distribution')})"
    prune = run.config.get("prune", {})
    return f"{prune.get('strategy')} at init" if prune.get("at_init") else "IMP"


def points(run: Run) -> list[tuple[str, dict[str, Any]]]:
    """(method, record) of every sparse network of ``run``: its pruned rounds, its sparse
    training's round 0, and IMP's random_prune controls (their search cost: their own)."""
    m = method(run)
    if (run.config.get("sparse") or {}).get("method"):
        return [(m, r) for r in run.rounds]
    out = [(m, r) for r in run.rounds if r["round"] >= 1]
    out += [(f"{c['control']} (beside {m})", {**c, "search_cost": c.get("train_cost")})
            for c in run.controls if c.get("control") == "random_prune"]
    return out


def rows(runs: list[Run]) -> list[Row]:
    """One row per (method, density rounded to 0.1%): accuracies and costs over seeds."""
    by: dict[tuple[str, float], dict[str, dict[int, float]]] = defaultdict(
        lambda: defaultdict(dict))
    for run in runs:
        for m, r in points(run):
            key = (m, round(r["density"], 3))
            for field in ("test_acc", "train_cost", "search_cost", "density"):
                if r.get(field) is not None:
                    by[key][field][run.seed] = r[field]
    return [{"method": m, "target": d, **series} for (m, d), series in
            sorted(by.items(), key=lambda kv: (kv[0][0], -kv[0][1]))]


def _mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    if not values:
        return "–"
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{scale * statistics.mean(values):.{digits}f} ± {scale * spread:.{digits}f}"


def table(rows_: list[Row]) -> str:
    head = ["method", "density", "seeds", "test acc (%)", "train cost", "search cost"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows_, key=lambda r: (-r["target"], r["method"])):
        acc = list(r["test_acc"].values())
        lines.append("| " + " | ".join([
            r["method"], f"{100 * statistics.mean(r['density'].values()):.2f}%", str(len(acc)),
            _mean_std(acc), _mean_std(list(r.get("train_cost", {}).values()), 1, 3),
            _mean_std(list(r.get("search_cost", {}).values()), 1, 3)]) + " |")
    return "\n".join(lines) + "\n"


def plot(rows_: list[Row], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for i, m in enumerate(sorted({r["method"] for r in rows_})):
        pts = sorted((r for r in rows_ if r["method"] == m), key=lambda r: -r["target"])
        acc = [100 * statistics.mean(r["test_acc"].values()) for r in pts]
        err = [100 * statistics.stdev(r["test_acc"].values()) if len(r["test_acc"]) > 1 else 0
               for r in pts]
        style = dict(marker="o", color=f"C{i}", markersize=4, capsize=2,
                     linestyle=":" if m.startswith("random_prune") else "-")
        left.errorbar([100 * r["target"] for r in pts], acc, yerr=err, label=m, **style)
        cost = [statistics.mean(r["search_cost"].values()) if r.get("search_cost")
                else float("nan") for r in pts]
        right.errorbar(cost, acc, yerr=err, **style)
        for c, a, r in zip(cost, acc, pts):
            right.annotate(f"{100 * r['target']:g}%", (c, a), fontsize=6, color=f"C{i}",
                           xytext=(3, 2), textcoords="offset points")
    left.set_xscale("log")
    ticks = sorted({100 * r["target"] for r in rows_})
    left.set_xticks(ticks, [f"{t:g}" for t in ticks])
    left.minorticks_off()
    left.invert_xaxis()
    left.set_xlabel("weights remaining (%)")
    left.set_ylabel("final test accuracy (%), mean ± std over seeds")
    left.legend(fontsize=7)
    right.set_xscale("log")
    costs = [c for r in rows_ for c in r.get("search_cost", {}).values()]
    if costs:
        marks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
                 if min(costs) / 1.5 <= t <= max(costs) * 1.5]
        right.set_xticks(marks, [f"{t:g}" for t in marks])
        right.minorticks_off()
    right.set_xlabel("cost of finding the network (dense trainings, Evci et al. 2020 accounting)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(out / f"accuracy.{ext}", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.compare_sparse",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--densities", default=None,
                        help="only these densities, comma-separated (default: all)")
    args = parser.parse_args(argv)
    try:
        runs = list(map(load_run, find_runs(args.paths)))
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    found = rows(runs)
    if args.densities:
        keep = {round(float(d), 3) for d in args.densities.split(",")}
        found = [r for r in found if r["target"] in keep]
    if not found:
        print(f"error: no stored sparse networks under {', '.join(args.paths)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table(found))
    plot(found, out)
    print(table(found), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
