"""Early-bird points and round-1 accuracy with and without the early-bird mask, per seed.

    python results/stability/early_bird_table.py <output_root>/<name>
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import yaml


def main(root: str) -> None:
    rows = []
    for run in sorted(Path(root).iterdir()):
        if not (run / "metrics.jsonl").is_file():
            continue
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        rounds = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        if len(rounds) < 2:
            continue
        rows.append((cfg["analysis"]["early_bird_ticket"], cfg["seed"], rounds))
    print("| round 1 mask | seed | early_bird_iter | round 0 test acc (%) | round 1 test acc "
          "(%) | round 1 density |")
    print("|---|---|---|---|---|---|")
    for ticket, seed, (r0, r1) in sorted(rows, key=lambda r: (r[0], r[1])):
        print(f"| {'early-bird' if ticket else 'end of round 0'} | {seed} | "
              f"{r0['early_bird_iter']} | {100 * r0['test_acc']:.1f} | "
              f"{100 * r1['test_acc']:.1f} | {100 * r1['density']:.1f}% |")
    for ticket in (False, True):
        acc = [100 * r[2][1]["test_acc"] for r in rows if r[0] == ticket]
        its = [r[2][0]["early_bird_iter"] for r in rows if r[0] == ticket]
        if len(acc) > 1:
            print(f"\n{'early-bird' if ticket else 'end of round 0'}: round 1 test acc "
                  f"{statistics.mean(acc):.2f} ± {statistics.stdev(acc):.2f} % over "
                  f"{len(acc)} seeds; early_bird_iter {its}")


if __name__ == "__main__":
    main(sys.argv[1])
