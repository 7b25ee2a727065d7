"""A readable index of stored runs.

    python -m scripts.runs [output_root] [--where key=value ...] [--wide] [--json]

One line per run directory under output_root (default: runs), at most 100 columns: name, hash,
rounds complete / planned, branches (controls by name, other kinds such as instability), the
lowest density reached, dense and best-ticket final test accuracy, then the config keys whose
values differ among the listed runs as key=value (clipped; --wide: one column each, and the
lth version). It reads
config.yaml, metrics.jsonl, controls.jsonl and run.json only. ``--where`` keeps the runs whose
dotted config key has that value (e.g. ``--where seed=0 --where prune.strategy=random``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lth.analysis.index import as_row, differing_keys, format_table, index, parse_where
from lth.errors import LthError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_root", nargs="?", default="runs",
                        help="the output_root of the runs (default: runs)")
    parser.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                        help="keep runs whose config has KEY=VALUE (repeatable, all must hold)")
    parser.add_argument("--json", action="store_true", help="one JSON list instead of a table")
    parser.add_argument("--wide", action="store_true",
                        help="every differing key in its own column, and the lth version "
                             "(default: lines clipped to 100 columns, keys as key=value)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        entries = index(Path(args.output_root), parse_where(args.where))
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    keys = differing_keys(entries)
    if args.json:
        print(json.dumps([as_row(e, keys) for e in entries], indent=2))
    elif not entries:
        print(f"no run under {args.output_root} matches {' '.join(args.where)}")
    else:
        print(format_table(entries, keys, width=None if args.wide else 100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
