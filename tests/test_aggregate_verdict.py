"""scripts.aggregate's verdict on stored runs: where the ticket is above, within and below the
dense network, the number of seeds, and no spread for one seed."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from lth.store import RunStore
from scripts.aggregate import main as aggregate

CONFIG = {"name": "v", "seed": 0, "model": {"hidden": 8}, "prune": {"fraction": 0.2}}


def store_run(root: Path, seed: int, ticket: list[float],
              controls: dict[str, list[float]] | None = None) -> Path:
    """A run directory as experiments.lottery leaves it (config.yaml, metrics.jsonl,
    controls.jsonl), holding these accuracies per round."""
    config = {**CONFIG, "seed": seed}
    store = RunStore.for_config(root, "v", config)
    store.prepare()
    store.write_text(store.config_path, yaml.safe_dump(config))
    line = lambda k, a, **kw: json.dumps({"round": k, "density": 0.8 ** k, "test_acc": a,
                                          "early_stop_iter": 100, **kw})
    store.write_text(store.metrics_path, "".join(line(k, a) + "\n"
                                                 for k, a in enumerate(ticket)))
    store.write_text(store.controls_path, "".join(
        line(k, a, control=name) + "\n" for name, accs in (controls or {}).items()
        for k, a in enumerate(accs, start=1)))
    return store.root


def verdicts(tmp_path: Path, capsys, *runs: Path) -> dict[str, str]:
    assert aggregate([*map(str, runs), "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    return {ln.split(" ", 2)[1]: ln for ln in text.splitlines() if ln.startswith("- ")}


def test_a_ticket_above_dense_after_a_dip_is_said_to_be_above(tmp_path: Path, capsys) -> None:
    # round 1 dips 1 pp below dense, rounds 2-4 beat it by up to 11 pp, round 5 matches it
    run = store_run(tmp_path / "runs", 0, [0.60, 0.59, 0.65, 0.71, 0.68, 0.602],
                    {"random_prune": [0.58, 0.55, 0.50, 0.45, 0.40]})
    v = verdicts(tmp_path, capsys, run)
    assert v["ticket"] == ("- ticket (n=1): above dense in rounds 2-4 (by up to 11.0 pp); "
                           "within dense in round 5 (within 0.5 pp); below dense in round 1 "
                           "(by up to 1.0 pp); already below dense at its first pruned round.")
    assert "does not match" not in v["ticket"]
    assert v["random_prune"].startswith("- random_prune (n=1): below dense in rounds 1-5 "
                                        "(by up to 20.0 pp)")


def test_matching_down_to_a_density_and_seeds_counted(tmp_path: Path, capsys) -> None:
    runs = [store_run(tmp_path / "runs", s, [0.80, 0.80 + d, 0.798, 0.70])
            for s, d in ((0, 0.004), (1, -0.002), (2, 0.001))]
    v = verdicts(tmp_path, capsys, *runs)
    assert v["ticket"] == ("- ticket (n=3): within dense in rounds 1-2 (within 0.5 pp); "
                           "below dense in round 3 (by up to 10.0 pp); at or above dense "
                           "− 0.5 pp in every round down to 64% of the weights (round 2).")


def test_one_seed_shows_no_spread_and_several_do(tmp_path: Path, capsys) -> None:
    one = store_run(tmp_path / "a", 0, [0.60, 0.65])
    aggregate([str(one), "--out", str(tmp_path / "o1")])
    table = (tmp_path / "o1" / "table.md").read_text()
    assert "| 1 | 80 | 1 | 65.00 |" in table and "±" not in table.split("\n\n")[0]
    assert "one seed (0): no spread to show" in table
    two = [store_run(tmp_path / "b", s, [0.60, 0.65 + 0.02 * s]) for s in (0, 1)]
    aggregate([*map(str, two), "--out", str(tmp_path / "o2")])
    table = (tmp_path / "o2" / "table.md").read_text()
    assert "| 1 | 80 | 2 | 66.00 ± 1.41 |" in table


def test_instability_skips_sweeps_without_records(tmp_path: Path, capsys) -> None:
    # two sweeps (different prune.fraction): one analysed, one never analysed
    with_records = store_run(tmp_path / "runs", 0, [0.60, 0.62])
    store = RunStore(with_records)
    store.write_text(store.instability_path, json.dumps(
        {"round": 1, "spawn_iter": 0, "density": 0.8, "test_acc": 0.6, "barrier_test": 1.0,
         "barrier_train": 0.5}) + "\n")
    other = RunStore.for_config(tmp_path / "runs", "v", {**CONFIG, "prune": {"fraction": 0.5}})
    other.prepare()
    other.write_text(other.config_path, yaml.safe_dump({**CONFIG, "prune": {"fraction": 0.5}}))
    other.write_text(other.metrics_path, json.dumps({"round": 0, "density": 1.0,
                                                     "test_acc": 0.6}) + "\n")
    out = tmp_path / "out"
    assert aggregate([str(tmp_path / "runs"), "--out", str(out), "--instability"]) == 0
    text = capsys.readouterr().out
    assert "no instability records, skipped" in text
    assert len(list(out.glob("*/instability.md"))) == 1
    assert aggregate([str(other.root), "--out", str(out / "x"), "--instability"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no instability records in ") and err.count("\n") == 1
