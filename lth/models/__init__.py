"""Models: every one is `Model(input_shape, num_classes, **hyperparameters)`.

Hydra builds them from `conf/model/*.yaml` with
`hydra.utils.instantiate(cfg.model, input_shape=..., num_classes=...)`; scripts without
Hydra use `build_model(name, input_shape, num_classes, **hyperparameters)`.
See `lth.models.base` for the conventions the pruning code relies on.
"""

from collections.abc import Sequence
from typing import Any

from torch import nn

from lth.errors import ConfigError
from lth.models.base import (
    Classifier,
    count_parameters,
    init_weights,
)
from lth.models.cnn1d import CNN1D
from lth.models.conv import Conv2, Conv4, Conv6, ConvNet, LeNet5
from lth.models.mlp import MLP, MLP1D, LeNet300100
from lth.models.resnet import ResNetCIFAR
from lth.models.torchvision_adapter import TorchvisionClassifier
from lth.models.vgg import VGG

# Names agree with conf/model/<name>.yaml.
MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "lenet_300_100": LeNet300100,
    "lenet5": LeNet5,
    "conv": ConvNet,
    "conv2": Conv2,
    "conv4": Conv4,
    "conv6": Conv6,
    "vgg": VGG,
    "resnet_cifar": ResNetCIFAR,
    "mlp1d": MLP1D,
    "cnn1d": CNN1D,
    "torchvision": TorchvisionClassifier,
}


def build_model(
    name: str, input_shape: Sequence[int], num_classes: int, **hyperparameters: Any
) -> nn.Module:
    """Build `MODELS[name](input_shape, num_classes, **hyperparameters)`.

    e.g. `build_model("resnet_cifar", (3, 32, 32), 10, depth=20)`; ConfigError if unknown.
    """
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return MODELS[name](input_shape, num_classes, **hyperparameters)


__all__ = [
    "CNN1D",
    "MLP",
    "MLP1D",
    "MODELS",
    "VGG",
    "Classifier",
    "Conv2",
    "Conv4",
    "Conv6",
    "ConvNet",
    "LeNet5",
    "LeNet300100",
    "ResNetCIFAR",
    "TorchvisionClassifier",
    "build_model",
    "count_parameters",
    "init_weights",
]
