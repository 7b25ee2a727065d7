"""Structured pruning: DepGraph channel groups, channel masks, physical removal, the loop."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from lth.errors import ConfigError
from lth.models import CNN1D, MLP, VGG, ConvNet, LeNet300100, ResNetCIFAR, TorchvisionClassifier
from lth.pruning import (
    PruneRates,
    apply_mask,
    full_mask,
    layer_rates,
    output_layer_name,
    scheduled_densities,
)
from tests.conftest import TinyMLP, make_blobs, make_lottery

pytest.importorskip("torch_pruning")

from lth.pruning.channels import alive_channels, channel_groups, remove_channels  # noqa: E402
from lth.pruning.structured import (  # noqa: E402
    ChannelPruner,
    check_granularity,
    prune_channel_groups,
)

MODELS = {
    "lenet_300_100": lambda: LeNet300100((1, 28, 28), 10),
    "conv2": lambda: ConvNet((3, 16, 16), 10, depth=2),
    "conv6": lambda: ConvNet((3, 16, 16), 10, depth=6),
    "vgg16": lambda: VGG((3, 16, 16), 10, depth=16),
    "resnet20": lambda: ResNetCIFAR((3, 16, 16), 10, depth=20),
    "resnet56": lambda: ResNetCIFAR((3, 8, 8), 10, depth=56, width=4),
    "torchvision_resnet18": lambda: TorchvisionClassifier((3, 32, 32), 10, arch="resnet18"),
    "cnn1d": lambda: CNN1D((1, 40), 10),
}


def randomise_norms(model: nn.Module) -> nn.Module:
    """BN with nonzero shifts and statistics: a zero channel then leaves BN as a constant."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    return model.eval()


def channel_prune(model: nn.Module, x: torch.Tensor, fraction: float, scope: str = "layerwise",
                  score: str = "l1", rounds: int = 1):
    groups = channel_groups(model, x[:1])
    mask = full_mask(model)
    rates = layer_rates(model, sorted(mask), PruneRates(fraction))
    for k in range(1, rounds + 1):
        mask = prune_channel_groups(groups, model.state_dict(), mask, score=score, scope=scope,
                                    densities=scheduled_densities(rates, k), seed=k)
    return groups, mask


@pytest.mark.parametrize("name", MODELS)
def test_removed_model_equals_masked_model(name: str) -> None:
    torch.manual_seed(0)
    model = randomise_norms(MODELS[name]())
    x = torch.randn(3, *model.input_shape)
    _, mask = channel_prune(model, x, 0.5, scope="global")
    small = remove_channels(model, mask, x[:2])
    masked = copy.deepcopy(model)
    apply_mask(masked, mask)
    with torch.no_grad():
        expected, got = masked(x), small(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    # Really smaller: about half the channels, so well under 60% of the parameters.
    assert sum(p.numel() for p in small.parameters()) < 0.6 * sum(
        p.numel() for p in model.parameters())


def test_without_the_consumer_columns_bn_would_leak() -> None:
    """Why masks cover the consumers: zeroed filters alone do not silence a BN channel."""
    model = randomise_norms(ResNetCIFAR((3, 8, 8), 10, depth=8))
    x = torch.randn(2, 3, 8, 8)
    _, mask = channel_prune(model, x, 0.5)
    rows_only = {n: m.any(dim=tuple(range(1, m.dim())), keepdim=True).expand_as(m).clone()
                 for n, m in mask.items()}
    leaky = copy.deepcopy(model)
    apply_mask(leaky, rows_only)
    small = remove_channels(model, mask, x)
    with torch.no_grad():
        assert (leaky(x) - small(x)).abs().max() > 1e-3


def test_layerwise_mask_is_whole_channels_and_keeps_the_classes() -> None:
    model = LeNet300100((1, 28, 28), 10)
    _, mask = channel_prune(model, torch.randn(1, 1, 28, 28), 0.5)
    rows = mask["fc1.weight"].all(dim=1)
    assert int(rows.sum()) == 150 and bool((mask["fc1.weight"].any(dim=1) == rows).all())
    assert torch.equal(mask["fc2.weight"].any(dim=0), rows)  # consumer columns follow
    assert int(mask["fc2.weight"].any(dim=1).sum()) == 50
    out = mask[output_layer_name(model)]
    assert bool(out.any(dim=1).all())  # every class keeps its output


def test_residual_channels_are_pruned_together() -> None:
    model = ResNetCIFAR((3, 16, 16), 10, depth=20)
    _, mask = channel_prune(model, torch.randn(1, 3, 16, 16), 0.5)
    stream = mask["conv.weight"].flatten(1).any(dim=1)
    assert int(stream.sum()) == 8
    for block in range(3):  # the first stage adds every block's conv2 to the stem's stream
        assert torch.equal(mask[f"blocks.{block}.conv2.weight"].flatten(1).any(dim=1), stream)
        assert torch.equal(mask[f"blocks.{block}.conv1.weight"].flatten(2).any(dim=(0, 2)),
                           stream)


def test_iterative_rounds_follow_the_schedule_and_only_shrink() -> None:
    model = ConvNet((3, 16, 16), 10, depth=2)
    x = torch.randn(1, 3, 16, 16)
    groups, one = channel_prune(model, x, 0.3, rounds=1)
    _, three = channel_prune(model, x, 0.3, rounds=3)
    for g in groups:
        assert int(alive_channels(g, three).sum()) == round(g.size * 0.7 ** 3)
    assert all(bool((three[n] <= one[n]).all()) for n in one)


def test_global_scope_keeps_a_channel_in_every_layer() -> None:
    model = LeNet300100((1, 28, 28), 10, hidden=(300, 4))
    groups, mask = channel_prune(model, torch.randn(1, 1, 28, 28), 0.97, scope="global")
    assert all(int(alive_channels(g, mask).sum()) >= 1 for g in groups)


def test_bn_score_prunes_the_smallest_scales() -> None:
    model = VGG((3, 16, 16), 10, depth=11)
    with torch.no_grad():
        model.layers[0].bn.weight.copy_(torch.linspace(1, 2, 64))
        model.layers[0].bn.weight[:5] = 0.01
    _, mask = channel_prune(model, torch.randn(1, 3, 16, 16), 0.1, score="bn")
    kept = mask["layers.0.conv.weight"].flatten(1).any(dim=1)
    assert not kept[:5].any() and int(kept.sum()) == 58


def test_bn_score_without_batchnorm_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="channel_score=bn"):
        channel_prune(LeNet300100((1, 28, 28), 10), torch.randn(1, 1, 28, 28), 0.5, score="bn")


def test_model_without_hidden_channels_is_unsupported() -> None:
    with pytest.raises(ConfigError, match="no channels"):
        channel_groups(MLP((20,), 4, hidden=()), torch.randn(1, 20))


@pytest.mark.parametrize("granularity,score", [("filter", "l1"), ("channel", "l3")])
def test_unknown_granularity_or_score(granularity: str, score: str) -> None:
    with pytest.raises(ConfigError, match="unknown"):
        check_granularity(granularity, score)


def test_lottery_loop_prunes_channels(tmp_path: Path) -> None:
    data = make_blobs()
    lottery = make_lottery(tmp_path, data=data, optimizer=lambda p: torch.optim.SGD(p, lr=0.05),
                           milestones=[], rounds=2, iterations=30, eval_every=0,
                           strategy="magnitude_layerwise", rates=PruneRates(0.5),
                           lottery={"pruner": ChannelPruner(TinyMLP, data.x_train, data.y_train,
                                                            32)})
    records = lottery.run()
    mask = lottery.store.load_tensors(lottery.store.mask_path(2))
    assert int(mask["fc1.weight"].all(dim=1).sum()) == 8  # 32 -> 16 -> 8 neurons
    assert records[2]["density"] < records[1]["density"] < 1.0
    small = remove_channels(TinyMLP(), mask, torch.randn(2, 20))
    assert small.fc1.out_features == 8 and small.fc2.out_features == 8
