"""results/portable/means.md from the runs of results/portable/run.sh (part 2): the default
experiment's per-round ticket accuracy, seeds 0-4, under kernel settings A and B.

    python results/portable/summarize.py [runs root] [what B sets] > results/portable/means.md
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def accuracies(root: Path) -> dict[int, dict[int, float]]:
    """seed -> round -> final test accuracy (%), from every run directory under ``root``."""
    out: dict[int, dict[int, float]] = {}
    for metrics in sorted(root.glob("*/*/metrics.jsonl")):
        config = (metrics.parent / "config.yaml").read_text()
        s = int(next(ln for ln in config.splitlines() if ln.startswith("seed:")).split()[1])
        out[s] = {r["round"]: 100 * r["test_acc"] for r in map(json.loads,
                                                                metrics.read_text().splitlines())}
    return out


def main(root: Path, b_setting: str) -> None:
    a, b = accuracies(root / "A"), accuracies(root / "B")
    seeds = sorted(set(a) & set(b))
    rounds = sorted(set.intersection(*(set(a[s]) & set(b[s]) for s in seeds)))
    print(f"Seeds {seeds[0]}-{seeds[-1]} ({len(seeds)}); final test accuracy (%) of the ticket, "
          "mean ± sample std over seeds; A: this machine's default kernels, B: "
          f"{b_setting}.\n")
    print("| round | A mean ± std | B mean ± std | B − A (means) | per seed B − A | seeds "
          "same accuracy |")
    print("|---:|---:|---:|---:|---|---:|")
    for k in rounds:
        xa, xb = [a[s][k] for s in seeds], [b[s][k] for s in seeds]
        diffs = ", ".join(f"{y - x:+.1f}" for x, y in zip(xa, xb))
        same = sum(x == y for x, y in zip(xa, xb))
        print(f"| {k} | {statistics.mean(xa):.2f} ± {statistics.stdev(xa):.2f} | "
              f"{statistics.mean(xb):.2f} ± {statistics.stdev(xb):.2f} | "
              f"{statistics.mean(xb) - statistics.mean(xa):+.2f} | {diffs} | "
              f"{same}/{len(seeds)} |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/lth_portable_seeds"),
         sys.argv[2] if len(sys.argv) > 2 else "ATEN_CPU_CAPABILITY=avx2")
