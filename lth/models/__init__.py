"""Models: every one is `Model(input_shape, num_classes, **hyperparameters)`.

Hydra builds them from `conf/model/*.yaml` (`_target_`, the one registry) with
`hydra.utils.instantiate(cfg.model, input_shape=..., num_classes=...)`; code without Hydra
calls the class, e.g. `ResNetCIFAR((3, 32, 32), 10, depth=20)`.
See `lth.models.base` for the conventions the pruning code relies on.
"""

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
from lth.models.vit import SequenceTransformer, ViT
from lth.models.wrn import WideResNet

__all__ = [
    "CNN1D",
    "MLP",
    "MLP1D",
    "VGG",
    "ViT",
    "Classifier",
    "Conv2",
    "Conv4",
    "Conv6",
    "ConvNet",
    "LeNet5",
    "LeNet300100",
    "ResNetCIFAR",
    "SequenceTransformer",
    "TorchvisionClassifier",
    "WideResNet",
    "count_parameters",
    "init_weights",
]
