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
    """``mean ± spread``; the mean alone for one seed (no spread to show)."""
    if point is None:
        return "–"
    if point.n == 1:
        return f"{scale * point.mean:.2f}"
    return f"{scale * point.mean:.2f} {pm} {scale * point.spread:.2f}"


def _rows(summary: Summary) -> list[tuple[int, float, list[Point | None]]]:
    names = list(summary.series)
    rounds = sorted({p.round: p.density for s in names for p in summary.series[s]}.items())
    lookup = {s: {p.round: p for p in summary.series[s]} for s in names}
    return [(k, d, [lookup[s].get(k) for s in names]) for k, d in rounds]


def _density(d: float) -> str:
    return f"{100 * d:.3g}"


def _spans(rounds: list[int]) -> str:
    """``[2, 3, 4, 7]`` -> ``rounds 2-4, 7``."""
    parts: list[str] = []
    for k in rounds:
        if parts and parts[-1].split("-")[-1] == str(k - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{k}"
        else:
            parts.append(str(k))
    return ("round " if len(rounds) == 1 else "rounds ") + ", ".join(parts)


def verdict(points: list[Point], dense: float, tolerance: float, scale: float) -> str:
    """Where a series is above dense (by more than ``tolerance``), within it, and below it,
    over its pruned rounds; and the lowest density matching dense in every round above it."""
    unit = " pp" if scale == 100 else ""
    groups: dict[str, list[Point]] = {"above": [], "within": [], "below": []}
    for p in points:
        d = p.mean - dense
        groups["above" if d > tolerance else "below" if d < -tolerance else "within"].append(p)
    text = []
    for kind, pts in groups.items():
        if not pts:
            continue
        gaps = [scale * (p.mean - dense) for p in pts]
        how = {"above": f"by up to {max(gaps):.1f}{unit}",
               "within": f"within {scale * tolerance:g}{unit}",
               "below": f"by up to {-min(gaps):.1f}{unit}"}[kind]
        text.append(f"{kind} dense in {_spans([p.round for p in pts])} ({how})")
    last = lowest_matching(points, dense, tolerance)
    tail = ("already below dense at its first pruned round" if last is None else
            f"at or above dense − {scale * tolerance:g}{unit} in every round down to "
            f"{_density(last.density)}% of the weights (round {last.round})")
    return "; ".join(text) + f"; {tail}." if text else "no pruned rounds."


def matching_text(summary: Summary) -> list[str]:
    """One sentence per series: the rounds above, within and below dense, and the lowest
    density down to which every round matches it."""
    dense, scale = summary.dense, _scale(summary.metric)
    if dense is None:
        return ["No dense round 0 in these runs: matching is not defined."]
    unit = " pp" if scale == 100 else ""
    lines = [f"Dense (round 0): {_cell(dense, scale, '±')} ({summary.metric}, n={dense.n}). "
             f"A round matches dense if its mean is within {scale * summary.tolerance:g}{unit} "
             "of it; above and below are beyond that."]
    for s in summary.matching:
        pts = [p for p in summary.series[s] if p.round >= 1]
        n = sorted({p.n for p in pts})
        seeds = f"n={n[0]}" if len(n) == 1 else f"n={n[0]}-{n[-1]}" if n else "n=0"
        lines.append(f"- {s} ({seeds}): {verdict(pts, dense.mean, summary.tolerance, scale)}")
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
            f"{BAND_TEXT[summary.band]} over seeds {summary.seeds}." if len(summary.seeds) > 1
            else f"{summary.metric}{' (%)' if scale == 100 else ''}, one seed "
            f"({summary.seeds[0]}): no spread to show.")
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


def summary_from_json(text: str) -> Summary:
    """The Summary that ``summary_json`` wrote (to redraw committed results without runs)."""
    data = json.loads(text)

    def points(items: list[dict]) -> list[Point]:
        return [Point(**{**p, "values": tuple(p["values"]), "seeds": tuple(p["seeds"])})
                for p in items]

    return Summary(data["label"], data["seeds"], data["metric"], data["band"],
                   data["tolerance"], {s: points(v) for s, v in data["series"].items()},
                   {s: points(v) for s, v in data["early_stop"].items()},
                   {s: (Point(**{**p, "values": tuple(p["values"]),
                                 "seeds": tuple(p["seeds"])}) if p else None)
                    for s, p in data.get("matching", {}).items()})
