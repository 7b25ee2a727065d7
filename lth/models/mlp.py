"""Fully connected classifiers: LeNet-300-100 (Frankle & Carbin 2019) and the mnist1d MLPs.

``residual=True`` adds a skip around every hidden layer after the first whose input and output
widths agree; with hidden (500, 500) that is the mnist1d lottery notebook's network
(greydanus/mnist1d, ``notebooks/lottery-tickets.ipynb``): ``h = relu(L1 x);
h = h + relu(L2 h); out = L3 h``. ``init="pytorch"`` keeps ``nn.Linear``'s own default init
(uniform, bound 1/sqrt(fan_in), biases too), as that notebook does.
"""

import itertools
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, init_weights

INITS = ("kaiming", "pytorch")


class MLP(Classifier):
    """Flatten, then Linear + ReLU per hidden size, then a Linear output layer.

    Layers are named `fc1`, `fc2`, ..., `fc{len(hidden)+1}` (the last is the output), so
    per-layer metrics read `fc1.weight` like the paper's tables.

    Args:
        input_shape: any shape without the batch dim; it is flattened.
        num_classes: output size.
        hidden: hidden layer sizes, possibly empty (then it is logistic regression).
        residual: ``h = h + relu(fc_i h)`` for hidden layers i >= 2 of equal in/out width.
        init: "kaiming" (lth's ``init_weights``) or "pytorch" (nn.Linear's default).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (300, 100),
        residual: bool = False,
        init: str = "kaiming",
    ) -> None:
        super().__init__(input_shape, num_classes)
        sizes = [
            math.prod(self.input_shape),
            *(int(h) for h in hidden),
            self.num_classes,
        ]
        if any(s < 1 for s in sizes):
            raise ConfigError(f"model.hidden={list(hidden)} must be positive sizes")
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is unknown; choose one of {', '.join(INITS)}")
        for i, (d_in, d_out) in enumerate(itertools.pairwise(sizes), start=1):
            self.add_module(f"fc{i}", nn.Linear(d_in, d_out))
        # Which hidden layers carry a skip connection (by index into the layers).
        self.skips: tuple[bool, ...] = tuple(
            bool(residual) and 0 < i < len(sizes) - 2 and sizes[i] == sizes[i + 1]
            for i in range(len(sizes) - 1))
        if init == "kaiming":
            self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, *input_shape] -> logits [B, num_classes]."""
        layers = list(self.children())
        x = x.flatten(1)
        for layer, skip in zip(layers[:-1], self.skips):
            x = x + F.relu(layer(x)) if skip else F.relu(layer(x))
        return layers[-1](x)


class LeNet300100(MLP):
    """LeNet-300-100: 784-300-100-10 on MNIST, 266,610 parameters."""

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (300, 100),
        residual: bool = False,
        init: str = "kaiming",
    ) -> None:
        super().__init__(input_shape, num_classes, hidden, residual, init)


class MLP1D(MLP):
    """The mnist1d paper's MLP baseline: input (1, 40), two hidden layers of 100.

    ``MLP1D((1, 40), 10, (500, 500), residual=True, init="pytorch")`` is the lottery
    notebook's residual MLP (``conf/model/mlp1d_residual.yaml``).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        hidden: Sequence[int] = (100, 100),
        residual: bool = False,
        init: str = "kaiming",
    ) -> None:
        super().__init__(input_shape, num_classes, hidden, residual, init)
