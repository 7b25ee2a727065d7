"""Unit tests for lth.models: shapes, conventions the pruner relies on, init, counts, errors."""

import math
import re

import pytest
import torch
from torch import nn

from lth.errors import ConfigError
from lth.models import (
    CNN1D,
    MLP,
    MLP1D,
    VGG,
    Conv2,
    Conv4,
    Conv6,
    ConvNet,
    LeNet5,
    LeNet300100,
    ResNetCIFAR,
    TorchvisionClassifier,
    count_parameters,
)
from lth.pruning import output_layer_name
from lth.pruning import prunable_names as prunable_weight_names
from tests.conftest import ROOT

NUM_CLASSES = 7  # not 10, so a hard-coded output size would show

# (model class, hyperparameters, input_shape, name of the output layer)
CASES = [
    (LeNet300100, {}, (1, 28, 28), "fc3"),
    (LeNet300100, {"hidden": [50]}, (1, 8, 8), "fc2"),
    (MLP, {"hidden": []}, (1, 40), "fc1"),
    (LeNet5, {}, (1, 28, 28), "fc3"),
    (LeNet5, {}, (3, 32, 32), "fc3"),
    (Conv2, {}, (3, 32, 32), "fc3"),
    (Conv4, {}, (1, 28, 28), "fc3"),
    (Conv6, {}, (3, 32, 32), "fc3"),
    (ConvNet, {"depth": 4}, (1, 8, 8), "fc3"),
    (VGG, {"depth": 11}, (3, 32, 32), "fc"),
    (VGG, {"depth": 16}, (1, 28, 28), "fc"),
    (ResNetCIFAR, {"depth": 20}, (3, 32, 32), "fc"),
    (ResNetCIFAR, {"depth": 20, "width": 4}, (1, 8, 8), "fc"),
    (MLP1D, {}, (1, 40), "fc3"),
    (CNN1D, {}, (1, 40), "fc"),
    (TorchvisionClassifier, {"arch": "resnet18"}, (1, 28, 28), "net.fc"),
    (TorchvisionClassifier, {"arch": "mobilenet_v3_small"}, (3, 32, 32), "net.classifier.3"),
]
IDS = [f"{cls.__name__}-{'-'.join(map(str, shape))}-{kw}" for cls, kw, shape, _ in CASES]


def _build(cls: type[nn.Module], kw: dict, shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return cls(shape, NUM_CLASSES, **kw)


@pytest.mark.parametrize(("cls", "kw", "shape", "out_name"), CASES, ids=IDS)
def test_forward_shape_and_output_layer(cls, kw, shape, out_name):
    model = _build(cls, kw, shape)
    logits = model(torch.randn(2, *shape))
    assert logits.shape == (2, NUM_CLASSES)
    assert output_layer_name(model) == f"{out_name}.weight"
    last_linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert last_linear is model.get_submodule(out_name)
    assert last_linear.out_features == NUM_CLASSES
    assert model.input_shape == shape and model.num_classes == NUM_CLASSES


@pytest.mark.parametrize(("cls", "kw", "shape", "out_name"), CASES, ids=IDS)
def test_seed_determines_init(cls, kw, shape, out_name):
    a, b, c = (_build(cls, kw, shape, seed) for seed in (0, 0, 1))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa[f"{out_name}.weight"], sc[f"{out_name}.weight"])


@pytest.mark.parametrize(("cls", "kw", "shape", "out_name"), CASES, ids=IDS)
def test_prunable_names_are_parameters(cls, kw, shape, out_name):
    model = _build(cls, kw, shape)
    params = dict(model.named_parameters())
    names = prunable_weight_names(model)
    assert names and set(names) <= set(params)
    assert names[-1] == f"{out_name}.weight"


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (lambda: LeNet300100((1, 28, 28), 10), ["fc1.weight", "fc2.weight", "fc3.weight"]),
        (lambda: Conv6((3, 32, 32), 10), [f"conv{i}.weight" for i in range(1, 7)]
         + ["fc1.weight", "fc2.weight", "fc3.weight"]),
        (lambda: CNN1D((1, 40), 10), ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"]),
    ],
)  # fmt: skip
def test_prunable_names_exact(model, expected):
    assert prunable_weight_names(model()) == expected


def test_resnet20_prunable_layers_include_shortcuts():
    names = prunable_weight_names(ResNetCIFAR((3, 32, 32), 10, depth=20))
    # stem + 9 blocks x 2 convs + 2 option-B shortcuts + fc
    assert len(names) == 1 + 18 + 2 + 1
    assert names[0] == "conv.weight" and names[-1] == "fc.weight"
    assert {"blocks.3.shortcut.0.weight", "blocks.6.shortcut.0.weight"} <= set(names)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # 784*300+300 + 300*100+100 + 100*10+10
        (lambda: LeNet300100((1, 28, 28), 10), 266_610),
        # classic LeNet-5 with 16x5x5 = 400 features on 28x28
        (lambda: LeNet5((1, 28, 28), 10), 61_706),
        # Frankle & Carbin 2019 Table 1 says 4.3M / 2.4M / 1.7M. Conv-6's 1.7M does not
        # match its own layer list: 1.14M conv + 4096*256 + 256*256 + 256*10 fc = 2.26M.
        (lambda: Conv2((3, 32, 32), 10), 4_301_642),
        (lambda: Conv4((3, 32, 32), 10), 2_425_930),
        (lambda: Conv6((3, 32, 32), 10), 2_262_602),
        # ResNet-20, option B (1x1 conv + BN shortcuts, as open_lth), by hand:
        #   stem 3*16*9 + BN 32                                   =     464
        #   stage 1: 3 x (2 * 16*16*9 + 2 BN 32)                  =  14,016
        #   stage 2: 16*32*9 + 32*32*9 + 2*64 + 16*32 + 64        =  14,528
        #            + 2 x (2 * 32*32*9 + 2*64)                   =  37,120
        #   stage 3: 32*64*9 + 64*64*9 + 2*128 + 32*64 + 128      =  57,728
        #            + 2 x (2 * 64*64*9 + 2*128)                  = 147,968
        #   fc 64*10 + 10                                         =     650
        #   total                                                 = 272,474
        # (option A, parameter-free shortcuts, would be 272,474 - 2,752 = 269,722)
        (lambda: ResNetCIFAR((3, 32, 32), 10, depth=20), 272_474),
        (lambda: ResNetCIFAR((3, 32, 32), 10, depth=56), 855_770),
        # open_lth reports 14.7M for cifar_vgg_16
        (lambda: VGG((3, 32, 32), 10, depth=16), 14_728_266),
        # mnist1d paper: MLP 15,210 and CNN 5,210 parameters
        (lambda: MLP1D((1, 40), 10), 15_210),
        (lambda: CNN1D((1, 40), 10), 5_210),
    ],
)
def test_parameter_counts(model, expected):
    assert count_parameters(model()) == expected


def test_init_scheme():
    torch.manual_seed(0)
    model = ResNetCIFAR((3, 32, 32), 10, depth=20)
    for name, module in model.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0), name
    assert torch.all(model.fc.bias == 0)
    # kaiming_normal_, fan_in: std = sqrt(2 / fan_in)
    big = Conv2((3, 32, 32), 10).fc1.weight
    assert big.std().item() == pytest.approx(math.sqrt(2 / big.shape[1]), rel=0.02)


def test_gradients_reach_every_prunable_weight():
    model = ResNetCIFAR((3, 16, 16), 5, depth=20, width=4)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    params = dict(model.named_parameters())
    assert all(params[n].grad is not None for n in prunable_weight_names(model))


def test_vmap_over_seeds():
    """Models train several seeds at once with torch.func; BN in train mode included."""
    from torch.func import functional_call, stack_module_state, vmap

    models = [ResNetCIFAR((3, 8, 8), 5, depth=8, width=4) for _ in range(2)]
    params, buffers = stack_module_state(models)
    x = torch.randn(3, 3, 8, 8)
    out = vmap(lambda p, b: functional_call(models[0], (p, b), (x,)))(params, buffers)
    ref = torch.stack([m(x) for m in models])
    torch.testing.assert_close(out, ref)


def _model_config(name: str):
    """``conf/model/<name>.yaml`` as Hydra composes it (the one model registry)."""
    from hydra import compose, initialize_config_dir

    from experiments.schema import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"model={name}"]).model


def test_registry_and_unknown_name():
    """Hydra is the registry: a config name builds its class; an unknown name is one line
    naming the known ones."""
    instantiate = pytest.importorskip("hydra.utils").instantiate
    from hydra.errors import MissingConfigException

    from experiments.errors import _hydra_message

    lenet = instantiate(_model_config("lenet_300_100"), input_shape=(1, 28, 28), num_classes=10)
    assert type(lenet) is LeNet300100
    conv6 = instantiate(_model_config("conv6"), input_shape=(3, 32, 32), num_classes=10)
    torch.manual_seed(0)
    reference = Conv6((3, 32, 32), 10)
    assert isinstance(conv6, ConvNet)
    assert {n: p.shape for n, p in conv6.named_parameters()} == {
        n: p.shape for n, p in reference.named_parameters()}
    with pytest.raises(MissingConfigException) as info:
        _model_config("lenet-300")
    message = _hydra_message(info.value)
    assert re.search(r"model=lenet-300 is unknown: choose one of .*lenet_300_100", message)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("cls", "kw", "shape", "match"),
    [
        (TorchvisionClassifier, {"arch": "resnet19"}, (3, 32, 32), "resnet18"),
        (TorchvisionClassifier, {"arch": "squeezenet1_1"}, (3, 32, 32), "last nn.Linear"),
        (ConvNet, {"depth": 3}, (3, 32, 32), "depth"),
        (VGG, {"depth": 17}, (3, 32, 32), "depth"),
        (ResNetCIFAR, {"depth": 21}, (3, 32, 32), r"6n\+2"),
        (VGG, {"depth": 11}, (1, 8, 8), "too small"),
        (LeNet5, {}, (1, 8, 8), "too small"),
        (Conv6, {}, (1, 4, 4), "too small"),
        (Conv2, {}, (1, 40), r"\(C, H, W\)"),
        (CNN1D, {}, (1, 28, 28), r"\(C, L\)"),
        (LeNet300100, {}, (1, 28, 28, 0), "positive"),
    ],
)
def test_bad_config_raises_config_error(cls, kw, shape, match):
    with pytest.raises(ConfigError, match=match):
        cls(shape, 10, **kw)


def test_torchvision_stem_takes_input_channels():
    model = TorchvisionClassifier((1, 28, 28), 10, arch="resnet18")
    assert model.net.conv1.in_channels == 1
    assert model.net.conv1.weight.shape == (64, 1, 7, 7)


def test_hydra_instantiate():
    instantiate = pytest.importorskip("hydra.utils").instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"_target_": "lth.models.LeNet300100", "hidden": [300, 100]})
    shape = OmegaConf.create([1, 28, 28])  # what a composed config hands over
    model = instantiate(cfg, input_shape=shape, num_classes=10)
    assert isinstance(model, LeNet300100) and count_parameters(model) == 266_610
    assert model.input_shape == (1, 28, 28)
