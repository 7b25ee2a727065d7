"""Small image conv nets without BatchNorm: LeNet-5 and Conv-2/4/6 (Frankle & Carbin 2019)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import (
    Classifier,
    conv_out,
    image_shape,
    init_weights,
    require_min_size,
)


class LeNet5(Classifier):
    """LeNet-5: conv 6@5x5 (padding 2) - pool - conv 16@5x5 - pool - fc 120 - 84 - out.

    The first conv is padded so MNIST 28x28 gives the classic 16x5x5 = 400 features
    (61,706 parameters); CIFAR 32x32 gives 16x6x6. Max-pooling and ReLU, the modern
    variant used by pruning papers. Needs H, W >= 12.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape, num_classes)
        c, h, w = image_shape(self.input_shape, "LeNet5")
        # conv1 keeps the size, pool halves, conv2 removes 4, pool halves.
        sizes = [conv_out(s, 5) // 2 for s in (h // 2, w // 2)]
        require_min_size(sizes, "LeNet5", self.input_shape)
        self.conv1 = nn.Conv2d(c, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * sizes[0] * sizes[1], 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


# Frankle & Carbin 2019, Figure 2: pairs of 3x3 convs, each pair followed by a 2x2 max-pool.
_CONV_WIDTHS = (64, 128, 256)


class ConvNet(Classifier):
    """Conv-2/4/6 of Frankle & Carbin 2019 (VGG-like, no BatchNorm, as in the paper).

    `depth` 3x3 convs (padding 1) in pairs of widths 64, 128, 256, a 2x2 max-pool after
    each pair, then fc 256 - 256 - out, ReLU throughout. Layers are named `conv1` ...
    `conv{depth}`, `fc1`, `fc2`, `fc3` (output). On CIFAR-10 (3, 32, 32): Conv-2 has
    4,301,642 parameters, Conv-4 2,425,930, Conv-6 2,262,602.

    Args:
        depth: 2, 4 or 6 conv layers.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 2) -> None:
        super().__init__(input_shape, num_classes)
        if depth not in (2, 4, 6):
            raise ConfigError(f"model.depth={depth} is not a Conv-N depth; use 2, 4 or 6")
        c, h, w = image_shape(self.input_shape, f"Conv-{depth}")
        self.depth = depth
        widths = [wd for wd in _CONV_WIDTHS[: depth // 2] for _ in range(2)]
        for i, width in enumerate(widths, start=1):
            self.add_module(f"conv{i}", nn.Conv2d(c, width, kernel_size=3, padding=1))
            c = width
        # Each pool halves (floor) the spatial size; the padded convs keep it.
        h, w = h >> (depth // 2), w >> (depth // 2)
        require_min_size([h, w], f"Conv-{depth}", self.input_shape)
        self.fc1 = nn.Linear(c * h * w, 256)
        self.fc2 = nn.Linear(256, 256)
        self.fc3 = nn.Linear(256, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        for i in range(1, self.depth + 1):
            x = F.relu(getattr(self, f"conv{i}")(x))
            if i % 2 == 0:
                x = F.max_pool2d(x, 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class Conv2(ConvNet):
    """Conv-2: `ConvNet(depth=2)`."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape, num_classes, depth=2)


class Conv4(ConvNet):
    """Conv-4: `ConvNet(depth=4)`."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape, num_classes, depth=4)


class Conv6(ConvNet):
    """Conv-6: `ConvNet(depth=6)`."""

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__(input_shape, num_classes, depth=6)
