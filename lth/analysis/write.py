"""Write a group's report: tables (Markdown, LaTeX, CSV, JSON) and figures (PNG, PDF)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lth.analysis.plots import accuracy_figure, layer_density_figure
from lth.analysis.report import (
    latex_table,
    markdown_table,
    summarize,
    summary_csv,
    summary_json,
)
from lth.analysis.runs import Run
from lth.analysis.stats import layer_points
from lth.files import write_text


def write_report(label: str, runs: Sequence[Run], out: str | Path, *, metric: str = "test_acc",
                 band: str = "std", tolerance: float = 0.005) -> list[Path]:
    """Tables and figures of the replicate ``runs`` into ``out``; returns the files written.

    Files: table.md, table.tex, summary.csv, summary.json, accuracy.{png,pdf},
    layer_density.{png,pdf}.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(label, runs, metric, band, tolerance)
    written = []
    for name, text in (("table.md", markdown_table(summary)), ("table.tex", latex_table(summary)),
                       ("summary.csv", summary_csv(summary)),
                       ("summary.json", summary_json(summary))):
        write_text(out / name, text)
        written.append(out / name)
    written += accuracy_figure(summary, out)
    written += layer_density_figure(layer_points(runs, band), label, out)
    return written
