"""Tables and figures of the barrier and mask-transport analyses stored under a runs root.

    python -m scripts.rebasin_report <runs root> --out results/rebasin

Reads every run directory under the root (reopened with ``experiments.stored.open_run``),
its ``barrier.jsonl`` and ``transport.jsonl``, and writes ``tables.md`` (mean ± std over
seed pairs, the number of pairs in each cell), ``summary.json``, ``barrier_curves.png`` (the
mean test-error path before and after alignment of each group's dense networks) and
``transport.png`` (test accuracy against density for each mask).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from experiments.stored import open_run


def groups(root: Path) -> dict[str, list[Any]]:
    """Reopened runs under ``root`` by group: experiment name and hidden width."""
    out: dict[str, list[Any]] = defaultdict(list)
    for config in sorted(root.glob("*/*/config.yaml")):
        run = open_run(config.parent, key=None)
        if run.cfg.get("transfer") is not None:
            out["transfer"].append(run)
            continue
        hidden = run.cfg.model.get("hidden")
        label = run.cfg.name + (f" hidden={list(hidden)}" if hidden is not None else "")
        out[label].append(run)
    return dict(out)


def stat(values: list[float]) -> str:
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f} (n={len(values)})"


def barrier_rows(label: str, runs: list[Any]) -> list[dict[str, Any]]:
    by_round: dict[int, list[dict]] = defaultdict(list)
    for run in runs:
        for r in run.store.read_barriers():
            by_round[r["round"]].append(r)
    return [{"group": label, "round": k, "pairs": len(rs),
             "density": statistics.mean(r["density_b"] for r in rs),
             **{key: [r[key] for r in rs] for key in (
                 "barrier_test_before", "barrier_test_after", "barrier_train_before",
                 "barrier_train_after", "test_err_a", "test_err_b")}}
            for k, rs in sorted(by_round.items())]


def transport_rows(label: str, runs: list[Any]) -> list[dict[str, Any]]:
    cells: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for run in runs:
        for r in run.store.read_branches("transport"):
            cells[(r["round"], r["transport"])].append(r)
    rows = []
    for k in sorted({k for k, _ in cells}):
        own = [r["ticket_test_acc"] for r in cells.get((k, "permuted"), [])]
        row = {"group": label, "round": k, "ticket": own,
               "density": statistics.mean(r["density"] for rs in cells.values() for r in rs
                                          if r["round"] == k)}
        for v in ("permuted", "unpermuted", "random"):
            row[v] = [r["test_acc"] for r in cells.get((k, v), [])]
            row[f"jaccard_{v}"] = [r["jaccard_ticket"] for r in cells.get((k, v), [])]
        row["chance_jaccard"] = [r["chance_jaccard_ticket"]
                                 for r in cells.get((k, "permuted"), [])]
        row["permuted_minus_unpermuted"] = [
            p["test_acc"] - u["test_acc"] for p in cells.get((k, "permuted"), [])
            for u in cells.get((k, "unpermuted"), [])
            if u["transport_key"] == p["transport_key"]]
        rows.append(row)
    return rows


def mean3(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}" if values else "—"


def tables(barriers: list[dict], transports: list[dict]) -> str:
    lines = ["## Barrier between seeds (test error, percentage points)", "",
             "| networks | round | density | barrier before | barrier after weight matching "
             "| train barrier before | train barrier after | test error A / B |",
             "|---|---|---|---|---|---|---|---|"]
    for r in barriers:
        lines.append(f"| {r['group']} | {r['round']} | {100 * r['density']:.1f}% | "
                     f"{stat(r['barrier_test_before'])} | {stat(r['barrier_test_after'])} | "
                     f"{stat(r['barrier_train_before'])} | {stat(r['barrier_train_after'])} | "
                     f"{statistics.mean(r['test_err_a']):.1f}% / "
                     f"{statistics.mean(r['test_err_b']):.1f}% |")
    lines += ["", "## Transported masks (test accuracy %, trained from B's init)", "",
              "| networks | round | density | B's own ticket | A's mask permuted | A's mask "
              "unpermuted | random, same layer densities | permuted − unpermuted (pp) | "
              "Jaccard with B's ticket: permuted / unpermuted / chance |",
              "|---|---|---|---|---|---|---|---|---|"]
    pct = lambda xs: [100 * x for x in xs]  # noqa: E731
    for r in transports:
        lines.append(
            f"| {r['group']} | {r['round']} | {100 * r['density']:.1f}% | {stat(pct(r['ticket']))}"
            f" | {stat(pct(r['permuted']))} | {stat(pct(r['unpermuted']))} | "
            f"{stat(pct(r['random']))} | {stat(pct(r['permuted_minus_unpermuted']))} | "
            f"{mean3(r['jaccard_permuted'])} / {mean3(r['jaccard_unpermuted'])} / "
            f"{mean3(r['chance_jaccard'])} |")
    return "\n".join(lines) + "\n"


def curves_figure(all_groups: dict[str, list[Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (label, runs) in enumerate(all_groups.items()):
        paths = [json.loads(run.store.barrier_curve_path(0, r["key"]).read_text())
                 for run in runs for r in run.store.read_barriers() if r["round"] == 0]
        if not paths:
            continue
        alpha = paths[0]["alpha"]
        for when, style in (("before", "--"), ("after", "-")):
            mean = [statistics.mean(p[f"test_err_{when}"][j] for p in paths)
                    for j in range(len(alpha))]
            ax.plot(alpha, mean, style, color=f"C{i}",
                    label=f"{label} ({when}, {len(paths)} pairs)")
    ax.set_xlabel("α (0: network B, 1: network A)")
    ax.set_ylabel("test error (%)")
    ax.set_title("Two seeds' dense networks: before (--) / after (—) weight matching",
                 fontsize=10)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "barrier_curves.png", dpi=120)
    plt.close(fig)


def transport_figure(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({r["group"] for r in rows})
    if not labels:
        return
    fig, axes = plt.subplots(1, len(labels), figsize=(5.2 * len(labels), 4.2), squeeze=False)
    names = {"ticket": "B's own ticket", "permuted": "A's mask permuted",
             "unpermuted": "A's mask unpermuted", "random": "random, same layer densities"}
    for ax, label in zip(axes[0], labels):
        mine = [r for r in rows if r["group"] == label]
        for i, (key, name) in enumerate(names.items()):
            have = [r for r in mine if r[key]]
            xs = [100 * r["density"] + (i - 1.5) * 0.4 for r in have]  # side by side
            ys = [100 * statistics.mean(r[key]) for r in have]
            es = [100 * statistics.stdev(r[key]) if len(r[key]) > 1 else 0 for r in have]
            ax.errorbar(xs, ys, yerr=es, marker="osv^"[i], capsize=3, linestyle="none",
                        label=name)
        ax.set_xticks([100 * r["density"] for r in mine])
        ax.set_xticklabels([f"{100 * r['density']:.3g}" for r in mine])
        ax.invert_xaxis()
        ax.set_xlabel("weights remaining (%)")
        ax.set_ylabel("test accuracy (%), mean ± std over pairs")
        ax.set_title(f"{label}: masks from B's init", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "transport.png", dpi=120)
    plt.close(fig)


def transfer_table(all_groups: dict[str, list[Any]]) -> str:
    """Transferred tickets by source round and variant, beside the target's dense network."""
    rows: dict[int, dict[str, Any]] = defaultdict(dict)
    dense = []
    for label, runs in all_groups.items():
        for run in runs:
            for r in run.store.read_metrics():
                if run.cfg.get("transfer") is not None:
                    row = rows[r["source_round"]]
                    row[r["transfer"]] = r["test_acc"]
                    row.update(density=r["density"], source=r["source_test_acc"],
                               reinit=r["output_reinitialised"])
                elif label.startswith("transfer_target_dense"):
                    dense.append(r["test_acc"])
    if not rows:
        return ""
    lines = ["## Ticket transfer (test accuracy % on the target)", "",
             f"The target's own dense network: {100 * statistics.mean(dense):.2f}%." if dense
             else "", "",
             "| source round | density | on the source | ticket | random_prune | "
             "random_reinit | output layer re-initialised |", "|---|---|---|---|---|---|---|"]
    for k, r in sorted(rows.items()):
        cells = " | ".join(f"{100 * r[v]:.2f}" if v in r else "—"
                           for v in ("ticket", "random_prune", "random_reinit"))
        lines.append(f"| {k} | {100 * r['density']:.1f}% | {100 * r['source']:.2f} | {cells} | "
                     f"{r['reinit']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    all_groups = groups(args.root)
    barriers = [r for label, runs in all_groups.items() for r in barrier_rows(label, runs)]
    transports = [r for label, runs in all_groups.items() for r in transport_rows(label, runs)]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.md").write_text(tables(barriers, transports) + "\n"
                                        + transfer_table(all_groups))
    (args.out / "summary.json").write_text(json.dumps(
        {"barriers": barriers, "transport": transports}, indent=1) + "\n")
    curves_figure(all_groups, args.out)
    transport_figure(transports, args.out)
    print((args.out / "tables.md").read_text())


if __name__ == "__main__":
    main()
