"""A group of replicate runs summarised: the numbers, and tables in Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from lth.analysis.runs import Run
from lth.analysis.stats import (
    TICKET,
    Point,
    aggregate,
    lowest_matching,
    paired,
    series_names,
)

BAND_TEXT = {"std": "± sample std", "ci95": "± 95% t-interval half-width",
             "minmax": "± half the min-max range"}


@dataclass
class Summary:
    """Accuracy and early-stop iteration over seeds, per round, for ticket and controls."""

    label: str
    seeds: list[int]
    metric: str
    band: str
    tolerance: float
    series: dict[str, list[Point]]
    early_stop: dict[str, list[Point]]
    matching: dict[str, Point | None] = field(default_factory=dict)

    @property
    def dense(self) -> Point | None:
        first = self.series[TICKET][:1]
        return first[0] if first and first[0].round == 0 else None


def summarize(label: str, runs: Sequence[Run], metric: str = "test_acc", band: str = "std",
              tolerance: float = 0.005) -> Summary:
    """The Summary of replicate ``runs`` (one experiment, several seeds)."""
    names = series_names(runs)
    summary = Summary(
        label, [run.seed for run in runs], metric, band, tolerance,
        {s: aggregate(runs, s, metric, band) for s in names},
        {s: aggregate(runs, s, "early_stop_iter", band) for s in names},
    )
    if summary.dense is not None:
        for s in names:
            pts = [p for p in summary.series[s] if p.round >= 1]
            summary.matching[s] = lowest_matching(pts, summary.dense.mean, tolerance)
    return summary


def _scale(metric: str) -> float:
    return 100.0 if metric.endswith("acc") else 1.0


def _cell(point: Point | None, scale: float, pm: str) -> str:
    if point is None:
        return "–"
    return f"{scale * point.mean:.2f} {pm} {scale * point.spread:.2f}"


def _rows(summary: Summary) -> list[tuple[int, float, list[Point | None]]]:
    names = list(summary.series)
    rounds = sorted({p.round: p.density for s in names for p in summary.series[s]}.items())
    lookup = {s: {p.round: p for p in summary.series[s]} for s in names}
    return [(k, d, [lookup[s].get(k) for s in names]) for k, d in rounds]


def _density(d: float) -> str:
    return f"{100 * d:.3g}"


def matching_text(summary: Summary) -> list[str]:
    """One sentence per series: the lowest density still matching the dense network."""
    dense, scale = summary.dense, _scale(summary.metric)
    if dense is None:
        return ["No dense round 0 in these runs: matching is not defined."]
    unit = " pp" if scale == 100 else ""
    lines = [f"Dense (round 0): {_cell(dense, scale, '±')} ({summary.metric}, n={dense.n}). "
             f"A round matches dense if its mean is at least dense − "
             f"{scale * summary.tolerance:g}{unit}; the lowest matching density is the last one "
             "before the first round that does not match."]
    for s, p in summary.matching.items():
        lines.append(f"- {s}: " + ("does not match dense at any pruned round." if p is None else
                                   f"matches dense down to {_density(p.density)}% of weights "
                                   f"remaining (round {p.round})."))
    return lines


def markdown_table(summary: Summary) -> str:
    """Mean ± spread of the metric per round for ticket and controls, then matching lines."""
    scale = _scale(summary.metric)
    names = list(summary.series)
    head = ["round", "weights remaining (%)", "n", *names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    for k, d, pts in _rows(summary):
        n = max(p.n for p in pts if p is not None)
        lines.append("| " + " | ".join([str(k), _density(d), str(n),
                                        *(_cell(p, scale, "±") for p in pts)]) + " |")
    note = (f"{summary.metric}{' (%)' if scale == 100 else ''}, mean "
            f"{BAND_TEXT[summary.band]} over seeds {summary.seeds}.")
    return "\n".join([*lines, "", note, "", *matching_text(summary), "",
                      *paired_table(summary)]) + "\n"


def paired_table(summary: Summary) -> list[str]:
    """Lines of a Markdown table: ticket - control per round, paired by seed, and wins."""
    controls = [s for s in summary.series if s != TICKET]
    if not controls:
        return []
    scale = _scale(summary.metric)
    diffs = {c: {p.round: p for p in paired(summary.series[TICKET], summary.series[c],
                                            summary.band)} for c in controls}
    rounds = sorted({k for d in diffs.values() for k in d})
    density = {p.round: p.density for p in summary.series[TICKET]}
    lines = ["| round | weights remaining (%) | "
             + " | ".join(f"ticket − {c}" for c in controls) + " |",
             "|" + "---:|" * (2 + len(controls))]
    for k in rounds:
        cells = []
        for c in controls:
            p = diffs[c].get(k)
            wins = "" if p is None else f" ({sum(v > 0 for v in p.values)}/{p.n} seeds > 0)"
            cells.append(_cell(p, scale, "±") + wins)
        lines.append(f"| {k} | {_density(density.get(k, 0.0))} | " + " | ".join(cells) + " |")
    return [*lines, "", f"Ticket minus control{' (pp)' if scale == 100 else ''}, paired by "
            f"seed: mean {BAND_TEXT[summary.band]} of the per-seed differences."]


def latex_table(summary: Summary) -> str:
    """The same table as booktabs LaTeX."""
    scale = _scale(summary.metric)
    names = [s.replace("_", r"\_") for s in summary.series]
    lines = [r"\begin{tabular}{r r " + "r " * len(names) + "}", r"\toprule",
             " & ".join(["Round", r"Remaining (\%)", *names]) + r" \\", r"\midrule"]
    for k, d, pts in _rows(summary):
        cells = [_cell(p, scale, r"$\pm$") for p in pts]
        lines.append(" & ".join([str(k), _density(d), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def summary_csv(summary: Summary) -> str:
    """Every point at full precision: series, round, density, n, metric and early stop."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    m = summary.metric
    writer.writerow(["series", "round", "density", "n", f"{m}_mean", f"{m}_low", f"{m}_high",
                     "early_stop_iter_mean", "early_stop_iter_low", "early_stop_iter_high"])
    for s, points in summary.series.items():
        stops = {p.round: p for p in summary.early_stop[s]}
        for p in points:
            e = stops.get(p.round)
            writer.writerow([s, p.round, repr(p.density), p.n, repr(p.mean), repr(p.low),
                             repr(p.high), *((repr(e.mean), repr(e.low), repr(e.high)) if e
                                             else ("", "", ""))])
    return buf.getvalue()


def summary_json(summary: Summary) -> str:
    """The Summary as JSON (points with their per-seed values)."""
    return json.dumps(asdict(summary), indent=1) + "\n"
