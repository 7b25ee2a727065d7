"""MACs per sample, against hand counts: dense, sparse (unpruned weights only)."""

from __future__ import annotations

import torch

from lth.models import MLP1D, LeNet300100, ResNetCIFAR
from lth.models.macs import count_macs
from lth.pruning import full_mask, prune_mask


def test_lenet_300_100_macs_are_its_weight_count() -> None:
    model = LeNet300100((1, 28, 28), 10)
    macs = count_macs(model, torch.zeros(1, 1, 28, 28))
    assert macs.dense == 784 * 300 + 300 * 100 + 100 * 10 == 266_200
    assert macs.sparse == macs.dense  # no mask: every weight counts


def conv(c_in: int, c_out: int, k: int, side: int) -> int:
    """MACs of a k x k conv producing c_out maps of side x side."""
    return c_out * c_in * k * k * side * side


def test_resnet20_macs_equal_the_hand_count() -> None:
    model = ResNetCIFAR((3, 32, 32), 10, depth=20)
    stem = conv(3, 16, 3, 32)
    stage1 = 6 * conv(16, 16, 3, 32)
    stage2 = conv(16, 32, 3, 16) + conv(16, 32, 1, 16) + 5 * conv(32, 32, 3, 16)
    stage3 = conv(32, 64, 3, 8) + conv(32, 64, 1, 8) + 5 * conv(64, 64, 3, 8)
    expected = stem + stage1 + stage2 + stage3 + 64 * 10
    assert expected == 40_813_184
    assert count_macs(model, torch.zeros(2, 3, 32, 32)).dense == expected  # per sample


def test_sparse_macs_count_only_unpruned_weights() -> None:
    torch.manual_seed(0)
    model = ResNetCIFAR((3, 32, 32), 10, depth=20)
    mask = prune_mask(model.state_dict(), full_mask(model), strategy="random_global", seed=0,
                      densities=dict.fromkeys(full_mask(model), 0.3))
    side = {"conv.weight": 32, "fc.weight": 1}
    for name in mask:
        if name.startswith("blocks."):
            block = int(name.split(".")[1])
            side[name] = 32 if block < 3 else 16 if block < 6 else 8
    expected = sum(int(m.sum()) * side[n] ** 2 for n, m in mask.items())
    macs = count_macs(model, torch.zeros(1, 3, 32, 32), mask)
    assert macs.sparse == expected
    assert 0.25 * macs.dense < macs.sparse < 0.35 * macs.dense


def test_a_masked_mlp_costs_its_remaining_weights() -> None:
    model = MLP1D((40,), 10, hidden=[100, 100])
    mask = prune_mask(model.state_dict(), full_mask(model), strategy="magnitude_global", seed=0,
                      densities=dict.fromkeys(full_mask(model), 0.2))
    macs = count_macs(model, torch.zeros(1, 40), mask)
    assert macs.dense == 40 * 100 + 100 * 100 + 100 * 10
    assert macs.sparse == sum(int(m.sum()) for m in mask.values())
