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


def oneshot(seed: int, rounds: int, acc: float, dense: float = 0.8) -> Run:
    """A one-shot run: round 0 dense, round 1 at the density of ``rounds`` rounds."""
    return Run(Path(f"/runs/x/os{rounds}-{seed}"),
               {"name": "x", "seed": seed, "prune": {"oneshot": True, "rounds": rounds}},
               [{"round": 0, "density": 1.0, "test_acc": dense, "early_stop_iter": 0},
                {"round": 1, "density": 0.8 ** rounds, "test_acc": acc, "early_stop_iter": 5}])


def iterative(seed: int, accs: list[float]) -> Run:
    it = run(seed, accs)
    return Run(it.path, {**it.config, "prune": {"oneshot": False, "rounds": len(accs) - 1}},
               it.rounds, it.controls)


def test_oneshot_runs_at_several_densities_form_one_curve_beside_the_ticket() -> None:
    from lth.analysis.oneshot import ONESHOT, merge_oneshot

    runs = [iterative(0, [0.8, 0.82, 0.83, 0.81]), iterative(1, [0.7, 0.74, 0.75, 0.72]),
            oneshot(0, 1, 0.79), oneshot(1, 1, 0.69), oneshot(0, 3, 0.60), oneshot(1, 3, 0.62),
            oneshot(2, 3, 0.50)]  # seed 2 has no iterative run: its own run, dense + oneshot
    groups = group_runs(merge_oneshot(runs))
    assert len(groups) == 1  # one experiment: the one-shot runs joined the iterative group
    (group,) = groups.values()
    assert [r.seed for r in group] == [0, 1, 2]
    summary = summarize("x", group)
    shots = {p.round: p for p in summary.series[ONESHOT]}
    assert sorted(shots) == [1, 3]  # at the rounds of the same density
    assert shots[3].values == (0.60, 0.62, 0.50) and shots[3].density == pytest.approx(0.512)
    assert shots[1].values == (0.79, 0.69)
    ticket = {p.round: p for p in summary.series["ticket"]}
    assert ticket[0].values == (0.8, 0.7, 0.8) and ticket[3].values == (0.81, 0.72)
    table = markdown_table(summary)
    assert "ticket − oneshot" in table
    # Paired by seed: round 3 ticket - one-shot over seeds 0 and 1 only.
    row = next(line for line in table.splitlines()
               if line.startswith("| 3 | 51.2 |") and "seeds > 0" in line)
    assert "15.50 ± 7.78 (2/2 seeds > 0)" in row  # (21 + 10) / 2 pp, std of 21 and 10


def test_the_same_oneshot_run_twice_is_refused() -> None:
    from lth.analysis.oneshot import merge_oneshot

    with pytest.raises(ConfigError, match="same one-shot experiment"):
        merge_oneshot([oneshot(0, 3, 0.6), replace_path(oneshot(0, 3, 0.6))])


def replace_path(r: Run) -> Run:
    return Run(Path("/elsewhere") / r.path.name, r.config, r.rounds, r.controls)


def test_aggregate_script_draws_oneshot_beside_the_ticket(tmp_path: Path) -> None:
    import contextlib
    import io
    import json

    import yaml

    from lth.store import run_hash
    from scripts.aggregate import main as aggregate_main

    for r in [iterative(0, [0.8, 0.82, 0.83, 0.81]), oneshot(0, 1, 0.79), oneshot(0, 3, 0.6)]:
        d = tmp_path / "runs" / "x" / run_hash(r.config)  # named as the store names it
        d.mkdir(parents=True)
        (d / "config.yaml").write_text(yaml.safe_dump(r.config))
        (d / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in r.rounds))
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert aggregate_main([str(tmp_path / "runs"), "--out", str(tmp_path / "out")]) == 0
    assert "1 runs (seeds 0)" in printed.getvalue()  # one group: the one-shot runs joined it
    rows = (tmp_path / "out" / "summary.csv").read_text().splitlines()
    assert [r.split(",")[:2] for r in rows if r.startswith("oneshot")] == [
        ["oneshot", "1"], ["oneshot", "3"]]
