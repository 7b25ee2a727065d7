"""Time per instability point against one round's training, from stored records.

    python results/stability/timing.py <output_root>/<name>...

An instability point is two copies (each one round's training from the spawn point) plus the
path's evaluation (30 α, test set and 1000 training samples). Printed as a markdown table.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def main(paths: list[str]) -> None:
    print("| experiment | points | copy training (s, mean) | path evaluation (s, mean) | "
          "point total (s, mean) | point / one copy's training |")
    print("|---|---|---|---|---|---|")
    for path in paths:
        records = [json.loads(line) for f in sorted(Path(path).glob("*/instability.jsonl"))
                   for line in f.read_text().splitlines() if line.strip()]
        copy = [w for r in records for w in r["copy_wall_s"]]
        evals = [r["analysis_wall_s"] for r in records]
        total = [sum(r["copy_wall_s"]) + r["analysis_wall_s"] for r in records]
        ratio = statistics.mean(total) / statistics.mean(copy)
        print(f"| {Path(path).name} | {len(records)} | {statistics.mean(copy):.2f} | "
              f"{statistics.mean(evals):.2f} | {statistics.mean(total):.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
