"""Aggregate runs over seeds into tables and figures.

    python -m scripts.aggregate <run dirs | <output_root>/<name> | multirun dir>... --out DIR

Runs that differ only in their seed form one group; each group gets table.md, table.tex,
summary.csv, summary.json, accuracy.{png,pdf} and layer_density.{png,pdf} in DIR (in
DIR/<group> when the paths hold several groups). One-shot runs (prune.oneshot=true) of the same
experiment at several densities (prune.rounds) are one curve: the series ``oneshot`` beside the
iterative ticket of the same config, at the round of the same density
(lth.analysis.oneshot).

With --instability, runs that differ only in their seed and prune.rewind form one sweep
instead, and each sweep gets instability.md, instability.json and instability.{png,pdf}: the
error barrier of the stored instability analyses against the rewind point and against weights
remaining, marking rounds "stable" (mean test barrier below --stable percentage points) and
"matching" (within --tolerance of dense).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lth.analysis import BANDS, find_runs, group_runs, load_run, write_report
from lth.analysis.oneshot import merge_oneshot
from lth.errors import ConfigError, LthError
from lth.store import RunStore


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.aggregate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="run directories or folders holding them")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--metric", default="test_acc",
                        help="record key to tabulate and plot: test_acc (final, default), "
                             "early_stop_test_acc (selected on the validation loss, on the "
                             "test loss without a validation split), best_test_acc "
                             "(test-selected), val_acc")
    parser.add_argument("--band", default="std", choices=BANDS,
                        help="spread over seeds: sample std (default), 95%% t-interval, min-max")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="a round matches dense if its mean is at least dense - tolerance "
                             "(metric units, default 0.005 = 0.5 percentage points)")
    parser.add_argument("--instability", action="store_true",
                        help="tabulate and plot the stored instability analyses (rewind sweeps)")
    parser.add_argument("--stable", type=float, default=2.0,
                        help="with --instability: a round is stable below this mean test "
                             "barrier (percentage points, in (0, 100); default 2)")
    return parser.parse_args(argv)


def instability_main(args: argparse.Namespace) -> None:
    """--instability: one report per sweep (runs differing in seed and prune.rewind)."""
    from lth.analysis.instability_report import check_stable, sweep_key, write_instability
    from lth.analysis.report import BAND_TEXT

    check_stable(args.stable)
    runs = [load_run(p) for p in find_runs(args.paths)]
    sweeps: dict[str, list] = {}
    for run in runs:
        sweeps.setdefault(sweep_key(run), []).append(run)
    without: list[str] = []
    for label, members in sorted(sweeps.items()):
        out = Path(args.out) if len(sweeps) == 1 else Path(args.out) / label
        if not any(RunStore(r.path).read_instability() for r in members):
            without.append(label)  # e.g. a run of the same root without the analysis
            continue
        text = write_instability(label, members, out, band_kind=args.band,
                                 band_text=BAND_TEXT[args.band], stable=args.stable,
                                 tolerance=args.tolerance)
        print(f"{label}: {len(members)} runs -> {out}\n{text}")
    if len(without) == len(sweeps):
        raise ConfigError(f"no instability records in {', '.join(args.paths)}: run "
                          "experiments.instability on the runs first (or "
                          "analysis.instability=true)")
    for label in without:
        print(f"{label}: no instability records, skipped (experiments.instability adds them)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.instability:
            instability_main(args)
            return 0
        groups = group_runs(merge_oneshot(load_run(p) for p in find_runs(args.paths)))
        for label, runs in groups.items():
            out = Path(args.out) if len(groups) == 1 else Path(args.out) / label
            write_report(label, runs, out, metric=args.metric, band=args.band,
                         tolerance=args.tolerance)
            seeds = ", ".join(str(r.seed) for r in runs)
            print(f"{label}: {len(runs)} runs (seeds {seeds}) -> {out}")
            print((out / "table.md").read_text())
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
