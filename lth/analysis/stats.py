"""Mean and spread over seeds, per round, for the ticket and each control."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lth.analysis.runs import Run
from lth.errors import ConfigError

BANDS = ("std", "ci95", "minmax")
TICKET = "ticket"
ALL_LAYERS = "all prunable"


@dataclass(frozen=True)
class Point:
    """One round of one series over seeds: ``mean`` with the band [low, high]."""

    round: int
    density: float
    n: int
    mean: float
    low: float
    high: float
    values: tuple[float, ...]
    seeds: tuple[int, ...] = ()

    @property
    def spread(self) -> float:
        """Half the band's width (std, CI half-width, or half the range)."""
        return (self.high - self.low) / 2


def band(values: Sequence[float], kind: str) -> tuple[float, float, float]:
    """(mean, low, high) of ``values``: mean ± sample std, ± 95% t-interval, or min..max."""
    if kind not in BANDS:
        raise ConfigError(f"band {kind!r} is unknown; choose one of {', '.join(BANDS)}")
    n = len(values)
    mean = sum(values) / n
    if kind == "minmax":
        return mean, min(values), max(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = std
    if kind == "ci95":
        from scipy.stats import t  # scipy comes with scikit-learn; imported only here

        half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n) if n > 1 else 0.0
    return mean, mean - half, mean + half


def records(run: Run, series: str) -> list[dict[str, Any]]:
    """The run's round records of ``series`` ("ticket" or a control name)."""
    if series == TICKET:
        return run.rounds
    return [r for r in run.controls if r.get("control") == series]


def series_names(runs: Sequence[Run]) -> list[str]:
    """"ticket" first, then every control that any run holds, in a fixed order."""
    controls = sorted({r["control"] for run in runs for r in run.controls})
    return [TICKET, *controls]


def aggregate(runs: Sequence[Run], series: str, metric: str, kind: str) -> list[Point]:
    """One Point per round of ``series`` over the runs that have it, in round order."""
    by_round: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for run in runs:
        for r in records(run, series):
            by_round.setdefault(int(r["round"]), []).append((run.seed, r))
    points = []
    for k in sorted(by_round):
        rs = [(seed, r) for seed, r in by_round[k] if r.get(metric) is not None]
        if not rs:
            continue
        values = tuple(float(r[metric]) for _, r in rs)
        mean, low, high = band(values, kind)
        density = sum(float(r["density"]) for _, r in rs) / len(rs)
        points.append(Point(k, density, len(values), mean, low, high, values,
                            tuple(seed for seed, _ in rs)))
    return points


def paired(ticket: Sequence[Point], control: Sequence[Point], kind: str) -> list[Point]:
    """ticket - control per round, paired by seed (seeds missing from either are left out).

    A replicate's ticket and control share the seed's data order and dense network, so the
    paired difference has far less noise than the difference of the two means.
    """
    by_round = {p.round: p for p in ticket}
    out = []
    for c in control:
        t = by_round.get(c.round)
        if t is None:
            continue
        mine = dict(zip(t.seeds, t.values))
        pairs = [(s, mine[s] - v) for s, v in zip(c.seeds, c.values) if s in mine]
        if pairs:
            diffs = tuple(d for _, d in pairs)
            mean, low, high = band(diffs, kind)
            out.append(Point(c.round, c.density, len(diffs), mean, low, high, diffs,
                             tuple(s for s, _ in pairs)))
    return out


def lowest_matching(points: Sequence[Point], dense: float, tolerance: float) -> Point | None:
    """The last point before the series first falls below ``dense - tolerance``.

    Points are taken in round order (density decreasing); rounds after the first miss do
    not count even if they recover, so the answer is conservative. None if the first misses.
    """
    last = None
    for p in points:
        if p.mean < dense - tolerance:
            break
        last = p
    return last


def layer_points(runs: Sequence[Run], kind: str) -> dict[str, list[Point]]:
    """Per-layer density of the ticket's masks over rounds (layer -> Points), and the density
    of all prunable weights under ``ALL_LAYERS``."""
    layers = sorted({n for run in runs for r in run.rounds for n in r.get("layer_density", {})})
    out = {}
    for layer in layers:
        flat = [Run(run.path, run.config, [
            {**r, "layer": r["layer_density"][layer]} for r in run.rounds
            if layer in r.get("layer_density", {})]) for run in runs]
        out[layer] = aggregate(flat, TICKET, "layer", kind)
    out[ALL_LAYERS] = aggregate(runs, TICKET, "density", kind)
    return out
