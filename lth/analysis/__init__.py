"""Analysis of stored runs: replicates over seeds, tables and figures (matplotlib lazily)."""

from lth.analysis.report import Summary, latex_table, markdown_table, summarize
from lth.analysis.runs import Run, find_runs, group_runs, load_run
from lth.analysis.stats import BANDS, TICKET, Point, aggregate, band, lowest_matching
from lth.analysis.write import write_report

__all__ = ["BANDS", "TICKET", "Point", "Run", "Summary", "aggregate", "band", "find_runs",
           "group_runs", "latex_table", "load_run", "lowest_matching", "markdown_table",
           "summarize", "write_report"]
