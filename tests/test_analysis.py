"""Aggregation arithmetic: bands, matching, paired differences, grouping of replicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from lth.analysis import Run, aggregate, band, group_runs, lowest_matching
from lth.analysis.report import markdown_table, summarize
from lth.analysis.stats import Point, paired
from lth.errors import ConfigError


def run(seed: int, accs: list[float], controls: dict[str, list[float]] | None = None,
        **config) -> Run:
    rounds = [{"round": k, "density": 0.8 ** k, "test_acc": a, "early_stop_iter": 10 * k,
               "layer_density": {"fc1.weight": 0.8 ** k}} for k, a in enumerate(accs)]
    ctl = [{"round": k, "density": 0.8 ** k, "test_acc": a, "early_stop_iter": 0,
            "control": name} for name, values in (controls or {}).items()
           for k, a in enumerate(values, start=1)]
    return Run(Path(f"/runs/x/{seed}"), {"name": "x", "seed": seed, **config}, rounds, ctl)


def test_bands() -> None:
    values = [0.5, 0.6, 0.7]
    assert band(values, "std") == pytest.approx((0.6, 0.5, 0.7))
    mean, low, high = band(values, "ci95")
    assert (high - mean) == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-6)
    assert band(values, "minmax") == pytest.approx((0.6, 0.5, 0.7))
    assert band([0.4], "ci95") == (0.4, 0.4, 0.4)
    with pytest.raises(ConfigError):
        band(values, "sem")


def test_lowest_matching_stops_at_the_first_miss() -> None:
    pts = [Point(k, 0.8 ** k, 1, m, m, m, (m,)) for k, m in
           enumerate([0.90, 0.91, 0.896, 0.88, 0.93], start=1)]
    # 0.896 is within 0.005 of 0.90; round 4 misses, so round 5 does not count though it recovers
    assert lowest_matching(pts, 0.90, 0.005).round == 3
    assert lowest_matching(pts, 0.95, 0.005) is None


def test_aggregate_and_paired_differences_align_seeds() -> None:
    runs = [run(0, [0.8, 0.82], {"random_prune": [0.70]}),
            run(1, [0.9, 0.86], {"random_prune": [0.74]}),
            run(2, [0.7, 0.78])]  # no control: left out of the pairs
    ticket = aggregate(runs, "ticket", "test_acc", "std")
    assert [p.n for p in ticket] == [3, 3] and ticket[1].mean == pytest.approx(0.82)
    control = aggregate(runs, "random_prune", "test_acc", "std")
    diff = paired(ticket, control, "std")
    assert diff[0].seeds == (0, 1) and diff[0].values == pytest.approx((0.12, 0.12))
    table = markdown_table(summarize("x", runs))
    assert "| 1 | 80 | 3 | 82.00 ± 4.00 | 72.00 ± 2.83 |" in table
    assert "12.00 ± 0.00 (2/2 seeds > 0)" in table


def test_replicates_group_by_config_without_seed() -> None:
    groups = group_runs([run(1, [0.8]), run(0, [0.8]), run(0, [0.8], lr=0.1)])
    assert sorted(len(g) for g in groups.values()) == [1, 2]
    assert [r.seed for g in groups.values() if len(g) == 2 for r in g] == [0, 1]
    with pytest.raises(ConfigError, match="same experiment"):
        group_runs([run(0, [0.8]), run(0, [0.7])])
