"""One-shot pruning and explicit density schedules: the targets are hit in one step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.errors import ConfigError
from lth.pruning import (
    PruneRates,
    full_mask,
    kept_count,
    layer_rates,
    prune_mask,
    scheduled_densities,
    target_densities,
)
from lth.store import config_hash
from tests.conftest import TinyMLP, make_lottery


def random_weights(mask: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    return {n: torch.randn(m.shape, generator=g) for n, m in mask.items()}


@pytest.mark.parametrize("strategy", ["magnitude_global", "magnitude_layerwise", "random"])
def test_densities_target_equals_the_iterative_schedule(strategy: str) -> None:
    """One step to round 3's densities keeps what three rounds on the same weights keep."""
    model = TinyMLP()
    mask = full_mask(model)
    rates = layer_rates(model, sorted(mask), PruneRates(0.2, output=0.1))
    weights = random_weights(mask)
    by_rounds = mask
    for k in (1, 2, 3):
        by_rounds = prune_mask(weights, by_rounds, strategy=strategy, seed=1,
                               densities=scheduled_densities(rates, k))
    by_densities = prune_mask(weights, mask, strategy=strategy, seed=1,
                              densities=scheduled_densities(rates, 3))
    assert all(torch.equal(by_rounds[n], by_densities[n]) for n in mask)


def test_target_densities_move_every_group_to_the_same_point() -> None:
    rates = {"a": 0.2, "b": 0.2, "out": 0.1, "dense": 0.0}
    d = target_densities(rates, 0.2, 0.8 ** 5)
    assert d["a"] == d["b"] == 0.8 ** 5
    assert d["out"] == pytest.approx(0.9 ** 5)
    assert d["dense"] == 1.0
    with pytest.raises(ConfigError):
        target_densities(rates, 0.2, 1.5)


def test_oneshot_hits_the_final_density_in_one_step(tmp_path: Path) -> None:
    rates = PruneRates(0.3, output=0.15)
    oneshot = make_lottery(tmp_path / "oneshot", rates=rates, rounds=4, oneshot=True)
    records = oneshot.run()
    assert [r["round"] for r in records] == [0, 1]   # dense, then one pruning step
    iterative = make_lottery(tmp_path / "iter", rates=rates, rounds=4)
    target = iterative.run()[-1]
    mask = oneshot.store.load_tensors(oneshot.store.mask_path(1))
    hidden = mask["fc1.weight"].numel() + mask["fc2.weight"].numel()
    assert int(mask["fc1.weight"].sum() + mask["fc2.weight"].sum()) == kept_count(
        hidden, (1 - 0.3) ** 4)
    assert int(mask["out.weight"].sum()) == kept_count(mask["out.weight"].numel(), (1 - 0.15) ** 4)
    assert records[1]["remaining"] == target["remaining"]
    assert records[1]["density"] == pytest.approx(target["density"])
    # Pruned straight from the dense trained round 0: that round is the same as iterative's.
    first = iterative.store.load_tensors(iterative.store.final_path(0))
    dense = oneshot.store.load_tensors(oneshot.store.final_path(0))
    assert all(torch.equal(first[n], dense[n]) for n in first)


def test_schedule_gives_each_round_its_density(tmp_path: Path) -> None:
    schedule = (0.5, 0.2, 0.05)
    lottery = make_lottery(tmp_path, rounds=10, schedule=schedule, rates=PruneRates(0.2))
    records = lottery.run()
    assert [r["round"] for r in records] == [0, 1, 2, 3]   # the schedule's length
    for r, d in zip(records[1:], schedule):
        assert r["remaining"] == kept_count(r["total"], d)


@pytest.mark.parametrize("kw", [dict(schedule=(0.5, 0.6)), dict(schedule=(0.0,)),
                                dict(schedule=(0.5,), oneshot=True)])
def test_bad_schedules_are_config_errors(tmp_path: Path, kw: dict) -> None:
    with pytest.raises(ConfigError, match="prune"):
        make_lottery(tmp_path, **kw)


def test_hash_one_shot_and_controls() -> None:
    base = {"seed": 0, "prune": {"fraction": 0.2, "rounds": 5, "controls": []}}
    with_keys = {"seed": 0, "prune": {"fraction": 0.2, "rounds": 5, "oneshot": False,
                                      "schedule": [], "controls": ["random_prune"]}}
    assert config_hash(base) == config_hash(with_keys)   # new keys at defaults: same run
    more_rounds = {"seed": 0, "prune": {"fraction": 0.2, "rounds": 9}}
    assert config_hash(more_rounds) == config_hash(base)
    oneshot = {"seed": 0, "prune": {"fraction": 0.2, "rounds": 5, "oneshot": True}}
    oneshot9 = {"seed": 0, "prune": {"fraction": 0.2, "rounds": 9, "oneshot": True}}
    assert len({config_hash(base), config_hash(oneshot), config_hash(oneshot9)}) == 3
