"""A replica group whose one seed diverges: that seed's run records why, the others go on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lth.errors import TrainingError
from lth.lottery import ReplicaLottery
from tests.conftest import TinyMLP, make_blobs, make_lottery


def nan_output() -> TinyMLP:
    """A TinyMLP whose output bias is NaN: its loss is NaN from the first step."""
    model = TinyMLP()
    with torch.no_grad():
        model.out.bias.fill_(float("nan"))
    return model


def group(root: Path, diverging: int | None, seeds: int = 3) -> list:
    data = make_blobs()
    return [make_lottery(root / f"s{s}", data=data, seed=s, rounds=2, iterations=20,
                         eval_every=10, model=nan_output if s == diverging else TinyMLP)
            for s in range(seeds)]


def test_one_diverging_seed_does_not_stop_the_others(tmp_path: Path, one_thread) -> None:
    lots = group(tmp_path / "group", diverging=1)
    replica = ReplicaLottery(lots, controls=("random_prune",))
    records = replica.run()
    assert [r["round"] for r in records[0]] == [0, 1, 2]
    assert [r["round"] for r in records[2]] == [0, 1, 2]
    assert records[1] == [] and set(replica.failed) == {1}
    info = json.loads(lots[1].store.info_path.read_text())
    assert info["failure"]["round"] == 0 and "nan" in info["failure"]["error"]
    assert "seed 1" in info["failure"]["error"]
    for i in (0, 2):  # the healthy seeds are as they would be in a group without seed 1
        assert len(lots[i].store.read_controls()) == 2
        assert "failure" not in lots[i].store.read_info()
        assert all(r["test_acc"] > 0.5 for r in lots[i].store.read_metrics())


def test_a_group_that_all_diverges_stops_with_the_error(tmp_path: Path, one_thread) -> None:
    data = make_blobs()
    lots = [make_lottery(tmp_path / f"s{s}", data=data, seed=s, rounds=1, iterations=20,
                         eval_every=10, model=nan_output) for s in range(2)]
    with pytest.raises(TrainingError, match="nan"):
        ReplicaLottery(lots).run()
