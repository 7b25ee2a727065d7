"""Tables of one-shot runs (criterion x pattern x fine-tune) and of IMP tickets vs controls.

    python -m scripts.oneshot_table <output_root> [--oneshot vit_digits_oneshot]
        [--imp vit_digits] [--out results/transformers]

Reads every stored run of the two experiment names (``config.yaml``, ``metrics.jsonl``,
``controls.jsonl``) and writes ``tables.md`` and ``tables.json``: test accuracy (%) of round 1
of the one-shot runs, mean ± std over seeds (n), by strategy, pattern (``prune.nm`` or the
density) and fine-tune length; and each IMP round's ticket beside its controls.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

from lth.files import write_text


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _runs(root: Path, name: str) -> list[tuple[dict[str, Any], list[dict], list[dict]]]:
    out = []
    for run in sorted((root / name).glob("*/")):
        if not (run / "metrics.jsonl").is_file():
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        out.append((cfg, _lines(run / "metrics.jsonl"), _lines(run / "controls.jsonl")))
    return out


def cell(values: list[float]) -> str:
    """``mean ± std (n)`` in percent."""
    if not values:
        return "–"
    pct = [100 * v for v in values]
    spread = statistics.stdev(pct) if len(pct) > 1 else 0.0
    return f"{statistics.mean(pct):.2f} ± {spread:.2f} ({len(pct)})"


def oneshot_table(root: Path, name: str) -> tuple[list[str], dict[str, Any]]:
    """Rows of the one-shot table and its data."""
    acc: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    dense: dict[int, float] = {}
    density: dict[str, list[float]] = defaultdict(list)
    for cfg, rounds, _ in _runs(root, name):
        if len(rounds) < 2:
            continue
        p = cfg["prune"]
        pattern = p.get("nm") or f"{100 * p['schedule'][0]:.0f}%"
        acc[(p["strategy"], pattern, p["finetune_duration"])].append(rounds[1]["test_acc"])
        density[pattern].append(rounds[1]["density"])
        dense[cfg["seed"]] = rounds[0]["test_acc"]
    tunes = sorted({k[2] for k in acc}, key=lambda t: int(t.rstrip("it")))
    head = ["| strategy | pattern (density) | " + " | ".join(
        "no retraining" if t == "0it" else f"+{t} fine-tune" for t in tunes) + " |",
        "| --- | --- |" + " --- |" * len(tunes)]
    rows = [f"| dense | 100% | {cell(list(dense.values()))} |" + " |" * (len(tunes) - 1)]
    for strategy, pattern in sorted({k[:2] for k in acc}, key=lambda k: (k[1], k[0])):
        d = statistics.mean(density[pattern])
        rows.append(f"| {strategy} | {pattern} ({100 * d:.1f}%) | " + " | ".join(
            cell(acc.get((strategy, pattern, t), [])) for t in tunes) + " |")
    data = {"dense": dense, "acc": {"/".join(k): v for k, v in acc.items()}}
    return head + rows, data


def imp_table(root: Path, name: str) -> tuple[list[str], dict[str, Any]]:
    """Rows of the ticket-vs-controls table and its data."""
    ticket: dict[int, list[float]] = defaultdict(list)
    controls: dict[tuple[int, str], list[float]] = defaultdict(list)
    density: dict[int, float] = {}
    for _, rounds, ctrl in _runs(root, name):
        for r in rounds:
            ticket[r["round"]].append(r["test_acc"])
            density[r["round"]] = r["density"]
        for c in ctrl:
            controls[(c["round"], c["control"])].append(c["test_acc"])
    kinds = sorted({k[1] for k in controls})
    head = ["| round | density | ticket | " + " | ".join(kinds) + " |",
            "| --- | --- | --- |" + " --- |" * len(kinds)]
    rows = [f"| {k} | {100 * density[k]:.1f}% | {cell(ticket[k])} | " + " | ".join(
        cell(controls.get((k, c), [])) for c in kinds) + " |" for k in sorted(ticket)]
    data = {"ticket": ticket, "controls": {f"{k}/{c}": v for (k, c), v in controls.items()}}
    return head + rows, data


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--oneshot", default="vit_digits_oneshot")
    parser.add_argument("--imp", default="vit_digits")
    parser.add_argument("--out", type=Path, default=Path("results/transformers"))
    args = parser.parse_args(argv)
    one, one_data = oneshot_table(args.root, args.oneshot)
    imp, imp_data = imp_table(args.root, args.imp)
    text = "\n".join([f"One-shot pruning (`{args.oneshot}`), test accuracy %, mean ± std "
                      "(seeds):", "", *one, "", f"IMP with rewinding (`{args.imp}`), test "
                      "accuracy %, mean ± std (seeds):", "", *imp]) + "\n"
    write_text(args.out / "tables.md", text)
    write_text(args.out / "tables.json", json.dumps({"oneshot": one_data, "imp": imp_data},
                                                     indent=2, default=str))
    print(text)


if __name__ == "__main__":
    main()
