"""The mnist1d paper's small 1-D conv net (Greydanus 2020, `ConvBase`)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, conv_out, init_weights, require_min_size


class CNN1D(Classifier):
    """Conv1d layers of stride 2 and padding 1 (kernel 5 first, then 3), ReLU, flatten, Linear.

    On mnist1d (1, 40) with channels (25, 25, 25) the length goes 40 -> 19 -> 10 -> 5, so
    the output layer sees 125 features, as in the paper. Layers are named `conv1` ...
    `conv{len(channels)}` and `fc`.

    Args:
        input_shape: (C, L).
        channels: output channels of each conv layer (at least one).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        channels: Sequence[int] = (25, 25, 25),
    ) -> None:
        super().__init__(input_shape, num_classes)
        if len(self.input_shape) != 2:
            raise ConfigError(f"CNN1D needs input_shape (C, L), got {self.input_shape}")
        widths = [int(ch) for ch in channels]
        if not widths or min(widths) < 1:
            raise ConfigError(f"model.channels={list(channels)} must be positive and non-empty")
        c, length = self.input_shape
        for i, width in enumerate(widths, start=1):
            kernel = 5 if i == 1 else 3
            self.add_module(f"conv{i}", nn.Conv1d(c, width, kernel, stride=2, padding=1))
            length = conv_out(length, kernel, stride=2, padding=1)
            c = width
        require_min_size([length], "CNN1D", self.input_shape)
        self.num_convs = len(widths)
        self.fc = nn.Linear(c * length, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, L] -> logits [B, num_classes]."""
        for i in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"conv{i}")(x))
        return self.fc(x.flatten(1))
