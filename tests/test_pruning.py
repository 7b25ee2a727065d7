"""Pruning strategies: schedules are exact, masks only shrink, pruners are pure."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lth.errors import CheckpointError, ConfigError
from lth.pruning import (
    PruneRates,
    apply_mask,
    check_mask,
    density,
    full_mask,
    kept_count,
    layer_density,
    layer_rates,
    prune_mask,
    remaining,
    scheduled_densities,
)
from tests.conftest import TinyMLP


class TinyConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 6 * 6, 30)
        self.out = nn.Linear(30, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc(self.bn(self.conv(x)).flatten(1))))


def scheduled_count(total: int, rate: float, k: int) -> int:
    """Survivors of ``total`` weights after ``k`` rounds at ``rate``: round(total * (1-rate)^k)."""
    return kept_count(total, (1.0 - rate) ** k)


def weights_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def run_rounds(model: nn.Module, strategy: str, rates: PruneRates, rounds: int):
    torch.manual_seed(0)
    mask = full_mask(model)
    per_layer = layer_rates(model, sorted(mask), rates)
    history = [mask]
    for k in range(1, rounds + 1):
        # Fresh random "trained" weights each round, as after retraining.
        weights = {n: torch.randn_like(m, dtype=torch.float) for n, m in mask.items()}
        mask = prune_mask(weights, mask, strategy=strategy, seed=k,
                          densities=scheduled_densities(per_layer, k))
        history.append(mask)
    return history


@pytest.mark.parametrize("strategy", ["magnitude_global", "random_global"])
def test_global_density_follows_schedule(strategy: str) -> None:
    model = TinyMLP()
    history = run_rounds(model, strategy, PruneRates(0.2), 8)
    n = sum(m.numel() for m in history[0].values())
    for k, mask in enumerate(history):
        assert remaining(mask) == scheduled_count(n, 0.2, k)
        assert abs(density(mask) - 0.8 ** k) <= 1 / n


@pytest.mark.parametrize("strategy", ["magnitude_layerwise", "random"])
def test_layerwise_density_follows_schedule_per_layer(strategy: str) -> None:
    model = TinyConv()
    history = run_rounds(model, strategy, PruneRates(0.2, conv=0.1, output=0.1), 6)
    rates = {"conv.weight": 0.1, "fc.weight": 0.2, "out.weight": 0.1}
    for k, mask in enumerate(history):
        for name, m in mask.items():
            assert int(m.sum()) == scheduled_count(m.numel(), rates[name], k), (k, name)


def test_global_groups_layers_by_rate() -> None:
    model = TinyConv()
    history = run_rounds(model, "magnitude_global", PruneRates(0.2, output=0.0), 5)
    last = history[-1]
    assert bool(last["out.weight"].all()), "output_fraction=0 keeps the classifier dense"
    pruned = ["conv.weight", "fc.weight"]
    n = sum(last[p].numel() for p in pruned)
    assert sum(int(last[p].sum()) for p in pruned) == scheduled_count(n, 0.2, 5)


@pytest.mark.parametrize("strategy", ["magnitude_global", "magnitude_layerwise", "random",
                                      "random_global"])
def test_masks_only_shrink(strategy: str) -> None:
    history = run_rounds(TinyConv(), strategy, PruneRates(0.3), 6)
    for before, after in zip(history, history[1:]):
        for n in before:
            assert not bool((after[n] & ~before[n]).any()), "a pruned weight came back"


def test_pruner_is_pure_and_magnitude_keeps_largest() -> None:
    model = TinyMLP()
    weights = weights_of(model)
    mask = full_mask(model)
    saved_w = {n: w.clone() for n, w in weights.items()}
    saved_m = {n: m.clone() for n, m in mask.items()}
    new = prune_mask({n: weights[n] for n in mask}, mask, strategy="magnitude_layerwise",
                     densities=dict.fromkeys(mask, 0.5), seed=0)
    for n in mask:
        assert torch.equal(weights[n], saved_w[n]) and torch.equal(mask[n], saved_m[n])
        kept, gone = weights[n][new[n]].abs(), weights[n][~new[n]].abs()
        assert kept.min() >= gone.max()


def test_magnitude_global_keeps_the_largest_weights_across_layers() -> None:
    """The kept set is exactly the top-N |w| over the union of the layers, N the scheduled
    count: here one layer's weights are all larger than the other's, so global selection
    empties the small layer far below its layer-wise share, and random scores would not
    pick the top N."""
    model = TinyMLP()
    mask = full_mask(model)
    g = torch.Generator().manual_seed(0)
    scale = {"fc1.weight": 10.0, "fc2.weight": 0.1, "out.weight": 1.0}  # disjoint ranges
    weights = {n: (1 + torch.rand(m.shape, generator=g)) * scale[n] * torch.sign(
        torch.randn(m.shape, generator=g)) for n, m in mask.items()}
    density = 0.3
    new = prune_mask(weights, mask, strategy="magnitude_global", seed=0,
                     densities=dict.fromkeys(mask, density))
    flat = torch.cat([weights[n].abs().flatten() for n in sorted(mask)])
    count = kept_count(flat.numel(), density)
    expected = torch.zeros(flat.numel(), dtype=torch.bool)
    expected[flat.topk(count).indices] = True
    kept = torch.cat([new[n].flatten() for n in sorted(mask)])
    assert int(kept.sum()) == count
    assert torch.equal(kept, expected)
    # Global and layer-wise selection differ on these data: the small layer loses more.
    assert layer_density(new)["fc2.weight"] < density < layer_density(new)["fc1.weight"]


def test_random_strategy_is_seeded() -> None:
    model = TinyMLP()
    mask = full_mask(model)
    w = {n: torch.ones_like(m, dtype=torch.float) for n, m in mask.items()}
    half = dict.fromkeys(mask, 0.5)
    a = prune_mask(w, mask, strategy="random", densities=half, seed=1)
    b = prune_mask(w, mask, strategy="random", densities=half, seed=1)
    c = prune_mask(w, mask, strategy="random", densities=half, seed=2)
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert any(not torch.equal(a[n], c[n]) for n in a)


def test_prunable_tensors_exclude_bias_and_norm() -> None:
    mask = full_mask(TinyConv())
    assert sorted(mask) == ["conv.weight", "fc.weight", "out.weight"]
    with_bias = full_mask(TinyConv(), include_bias=True)
    assert "conv.bias" in with_bias and "bn.weight" not in with_bias


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_fraction_outside_unit_interval_is_rejected(value: float) -> None:
    with pytest.raises(ConfigError, match=r"prune.fraction=.* outside \[0, 1\)"):
        PruneRates(value)


def test_unknown_strategy_is_rejected() -> None:
    mask = full_mask(TinyMLP())
    with pytest.raises(ConfigError, match="magnitude_global"):
        prune_mask({}, mask, strategy="biggest", densities={}, seed=0)


def test_apply_mask_and_layer_density() -> None:
    model = TinyMLP()
    mask = full_mask(model)
    mask["fc1.weight"][:, :10] = False
    apply_mask(model, mask)
    assert bool((model.fc1.weight[:, :10] == 0).all())
    assert layer_density(mask)["fc1.weight"] == pytest.approx(0.5)


def test_check_mask_rejects_mismatch() -> None:
    model = TinyMLP()
    bad = full_mask(TinyConv())
    with pytest.raises(CheckpointError, match="another model"):
        check_mask(model, bad)
    wrong_shape = {"fc1.weight": torch.ones(3, 3, dtype=torch.bool)}
    with pytest.raises(CheckpointError, match="shape"):
        check_mask(model, wrong_shape)
