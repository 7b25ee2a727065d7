"""Fully connected classifiers: LeNet-300-100 (Frankle & Carbin 2019) and the mnist1d MLP."""

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, init_weights


class MLP(Classifier):
    """Flatten, then Linear + ReLU per hidden size, then a Linear output layer.

    Layers are named `fc1`, `fc2`, ..., `fc{len(hidden)+1}` (the last is the output), so
    per-layer metrics read `fc1.weight` like the paper's tables.

    Args:
        input_shape: any shape without the batch dim; it is flattened.
        num_classes: output size.
        hidden: hidden layer sizes, possibly empty (then it is logistic regression).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (300, 100),
    ) -> None:
        super().__init__(input_shape, num_classes)
        sizes = [
            math.prod(self.input_shape),
            *(int(h) for h in hidden),
            self.num_classes,
        ]
        if any(s < 1 for s in sizes):
            raise ConfigError(f"model.hidden={list(hidden)} must be positive sizes")
        for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes), start=1):
            self.add_module(f"fc{i}", nn.Linear(d_in, d_out))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, *input_shape] -> logits [B, num_classes]."""
        layers = list(self.children())
        x = x.flatten(1)
        for layer in layers[:-1]:
            x = F.relu(layer(x))
        return layers[-1](x)


class LeNet300100(MLP):
    """LeNet-300-100: 784-300-100-10 on MNIST, 266,610 parameters."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (300, 100),
    ) -> None:
        super().__init__(input_shape, num_classes, hidden)


class MLP1D(MLP):
    """The mnist1d paper's MLP baseline: input (1, 40), two hidden layers of 100."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (100, 100),
    ) -> None:
        super().__init__(input_shape, num_classes, hidden)
