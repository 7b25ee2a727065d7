"""Per-round mean final test accuracy of the factor runs (seeds 0, 1), as Markdown.

    python results/mnist1d_notebook/factors.py > results/mnist1d_notebook/factors.md

Reads the stored runs under /tmp/repro_runs (see README.md for the commands that made them).
"""

import glob
import json

import yaml

ROOT = "/tmp/repro_runs"
RUNS = [
    ("default (residual, PyTorch init, bias pooled)", "cand_geo19", ""),
    ("no residual block", "factor_noresid", "model.residual=false"),
    ("biases not pruned (no pooling)", "factor_nobias",
     "prune.pool_bias=false prune.prune_bias=false"),
    ("Kaiming init (lth's)", "factor_kaiming", "model.init=kaiming"),
    ("all three: plain MLP, Kaiming, biases not pruned", "factor_plain",
     "model.residual=false model.init=kaiming prune.pool_bias=false prune.prune_bias=false"),
]
SEEDS = (0, 1)


def rounds(name: str) -> dict[int, list[dict]]:
    """Seed -> the round records of run ``name`` for SEEDS."""
    out = {}
    for d in glob.glob(f"{ROOT}/{name}/*/"):
        seed = yaml.safe_load(open(d + "config.yaml"))["seed"]
        if seed in SEEDS:
            out[seed] = [json.loads(line) for line in open(d + "metrics.jsonl")]
    return out


def main() -> None:
    data = {name: rounds(name) for _, name, _ in RUNS}
    head = ["round", "weights (%)"] + [title for title, _, _ in RUNS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for k in range(13):
        density, cells = None, []
        for _, name, _ in RUNS:
            per = [data[name][s][k] for s in SEEDS
                   if s in data[name] and len(data[name][s]) > k]
            if len(per) < len(SEEDS):
                cells.append("–")
                continue
            density = per[0]["density"]
            accs = [100 * r["test_acc"] for r in per]
            cells.append(f"{sum(accs) / len(accs):.2f} ("
                         + ", ".join(f"{a:.1f}" for a in accs) + ")")
        weights = f"{100 * density:.3g}" if density else "–"
        lines.append(f"| {k} | {weights} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    print()
    print("Mean (seed 0, seed 1) of the final test accuracy (%). Overrides on top of "
          "`experiment=mnist1d_lottery replicas=2 prune.controls=[]`: "
          + "; ".join(f"{t}: `{o or '(none)'}`" for t, _, o in RUNS) + ".")


if __name__ == "__main__":
    main()
