"""prune.channel_round_to: every pruned layer keeps a multiple of the key (or its full width),
as close to the density target as the rounding allows."""

from __future__ import annotations

import pytest
import torch

from lth.errors import ConfigError
from lth.models import ConvNet
from lth.pruning import PruneRates, full_mask, layer_rates, scheduled_densities
from lth.pruning.pruner import PrunerSettings

pytest.importorskip("torch_pruning")

from lth.pruning.channels import alive_channels  # noqa: E402
from lth.pruning.structured import ChannelPruner, rounded_count  # noqa: E402


def _prune(round_to: int, scope: str, fraction: float = 0.5, rounds: int = 1):
    torch.manual_seed(0)
    make = lambda: ConvNet((3, 16, 16), 10, depth=4)  # noqa: E731 - 64/64/128/128 channels
    model = make()
    x = torch.randn(8, 3, 16, 16)
    pruner = ChannelPruner(make, x, torch.zeros(8, dtype=torch.long), 4,
                           PrunerSettings(channel_round_to=round_to))
    mask = full_mask(model)
    rates = layer_rates(model, sorted(mask), PruneRates(fraction, output=0.0))
    strategy = "magnitude_global" if scope == "global" else "magnitude_layerwise"
    for k in range(1, rounds + 1):
        mask = pruner(model.state_dict(), mask, strategy=strategy, seed=k,
                      densities=scheduled_densities(rates, k))
    groups = pruner.groups()
    return {g.root: (int(alive_channels(g, mask).sum()), g.size) for g in groups}, rates


@pytest.mark.parametrize("scope", ["layerwise", "global"])
@pytest.mark.parametrize("round_to", [8, 16])
def test_kept_channels_are_multiples_and_meet_the_target(scope, round_to) -> None:
    for fraction, rounds in ((0.37, 1), (0.2, 3)):
        kept, rates = _prune(round_to, scope, fraction, rounds)
        plain, _ = _prune(1, scope, fraction, rounds)
        for root, (count, size) in kept.items():
            assert count % round_to == 0 or count == size, (root, count)
            if scope == "layerwise":  # the nearest multiple of the unrounded count
                assert abs(count - plain[root][0]) <= round_to / 2 + (rounds - 1) * round_to
        total, want = sum(c for c, _ in kept.values()), sum(c for c, _ in plain.values())
        assert abs(total - want) <= len(kept) * round_to / 2 + (rounds - 1) * round_to * len(kept)
    assert any(c % 8 for c, _ in _prune(1, scope, 0.37)[0].values())  # the key does something


def test_rounded_count() -> None:
    assert rounded_count(29, 64, 64, 8) == 32 and rounded_count(35, 64, 64, 8) == 32
    assert rounded_count(36, 64, 64, 8) == 40 and rounded_count(3, 64, 64, 8) == 8
    assert rounded_count(62, 64, 64, 8) == 64  # rounding up reaches the full width
    assert rounded_count(29, 30, 64, 16) == 16  # never more than still alive, a multiple
    assert rounded_count(5, 6, 64, 8) == 6  # fewer alive than one multiple: all of them
    assert rounded_count(29, 64, 64, 1) == 29


def test_bad_round_to_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="prune.channel_round_to=0 must be >= 1"):
        PrunerSettings(channel_round_to=0)

