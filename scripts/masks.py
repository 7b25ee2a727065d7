"""Mask overlap over seeds and against one-shot pruning, from stored runs (no retraining).

    python -m scripts.masks <run dirs | <output_root>/<name> | multirun dir>... --out DIR

Runs that differ only in their seed form one group; for each group and each round k >= 1
stored by all its seeds, masks.md (overall), masks_layers.md (per layer), masks.json and
masks.{png,pdf} (overall Jaccard against weights remaining) in DIR
(DIR/<group> for several groups): the Jaccard overlap and normalized Hamming distance between
the seeds' masks, and between each seed's iterative mask and the mask one-shot pruning of its
round-0 weights gives at the same targets, beside chance (random masks, same layer densities).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lth.analysis import BANDS, find_runs, group_runs, load_run
from lth.analysis.report import BAND_TEXT
from lth.errors import LthError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.masks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--band", default="std", choices=BANDS, help="spread over pairs")
    parser.add_argument("--rounds", type=int, nargs="*", default=None,
                        help="rounds to compare (default: every round >= 1 all seeds have)")
    return parser.parse_args(argv)


def group_rows(runs: list, rounds: list[int] | None, band_kind: str) -> list:
    """The overlap rows of one group of seeds (builds each run's model and settings)."""
    from experiments.stored import open_run, prepared
    from lth.analysis.mask_report import overlap_rows
    from lth.analysis.overlap import oneshot_mask
    from lth.pruning import layer_rates

    stores = {run.seed: open_run(run.path, key=None) for run in runs}  # kind, schema, hash
    first = stores[runs[0].seed]
    first.cfg.device = "cpu"
    prep, settings = prepared(first)
    model = prep.make_model()
    common = set.intersection(*({r["round"] for r in run.rounds} for run in runs)) - {0}
    rows = []
    for k in sorted(common if rounds is None else common & set(rounds)):
        masks, oneshot = {}, {}
        for run in runs:
            store = stores[run.seed].store
            masks[run.seed] = store.load_tensors(store.mask_path(k))
            rates = layer_rates(model, sorted(masks[run.seed]), settings.rates)
            oneshot[run.seed] = oneshot_mask(
                store.load_tensors(store.final_path(0)), masks[run.seed],
                strategy=settings.strategy, densities=settings.round_densities(k, rates),
                seed=settings.prune_seed(k), pruner=prep.pruner)
        density = next(r["density"] for r in runs[0].rounds if r["round"] == k)
        rows += overlap_rows(k, density, masks, oneshot, band_kind)  # k = 1: the same mask
    return rows


def main(argv: list[str] | None = None) -> int:
    from lth.analysis.mask_report import figure, markdown
    from lth.files import atomic_write

    args = parse_args(argv)
    try:
        groups = group_runs(load_run(p) for p in find_runs(args.paths))
        for label, runs in groups.items():
            out = Path(args.out) if len(groups) == 1 else Path(args.out) / label
            out.mkdir(parents=True, exist_ok=True)
            rows = group_rows(runs, args.rounds, args.band)
            text = markdown(rows, label, BAND_TEXT[args.band])
            atomic_write(out / "masks.md", text.encode())
            atomic_write(out / "masks_layers.md",
                         markdown(rows, label, BAND_TEXT[args.band], layers=True).encode())
            atomic_write(out / "masks.json", json.dumps([r.__dict__ for r in rows],
                                                        indent=1).encode())
            figure(rows, label, out)
            print(f"{label}: {len(runs)} runs (seeds {', '.join(str(r.seed) for r in runs)})"
                  f" -> {out}\n{text}")
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
