"""Redraw a committed report from its summary.json, without the runs it came from.

    python -m scripts.replot <folder with summary.json>...

Rewrites table.md, table.tex and accuracy.{png,pdf} of each folder with the current tables and
figures (the verdict, labels and titles); summary.json, summary.csv and layer_density (which
needs the runs' masks) are left as they are. A folder written by ``scripts.rebasin_report``
gets its transport.png redrawn (barrier_curves.png needs the runs' curves).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from lth.analysis.plots import accuracy_figure
from lth.analysis.report import latex_table, markdown_table, summary_from_json
from lth.files import write_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.replot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="folders written by scripts.aggregate")
    parser.add_argument("--name", default=None,
                        help="the experiment's name in the titles (default: the one the runs "
                        "were stored under; the name is not hashed)")
    args = parser.parse_args(argv)
    for folder in map(Path, args.folders):
        path = folder / "summary.json"
        if not path.is_file():
            print(f"error: {path} is missing: give folders written by scripts.aggregate",
                  file=sys.stderr)
            return 2
        text = path.read_text()
        if '"transport"' in text and '"barriers"' in text:  # scripts.rebasin_report's
            from scripts.rebasin_report import transport_figure

            transport_figure(json.loads(text)["transport"], folder)
            print(f"{folder}: transport.png redrawn")
            continue
        summary = summary_from_json(text)
        if args.name:
            summary = dataclasses.replace(summary, label=args.name)
        write_text(folder / "table.md", markdown_table(summary))
        write_text(folder / "table.tex", latex_table(summary))
        accuracy_figure(summary, folder)
        print(f"{folder}: table.md, table.tex, accuracy.png/pdf redrawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
