"""CIFAR ResNet-(6n+2) of He et al. 2016, as open_lth's `cifar_resnet_{20,32,56}`."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, image_shape, init_weights


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut, then ReLU.

    Where the shape changes (stride 2 or more channels) the shortcut is a 1x1 conv + BN
    ("option B", as open_lth), so its weight is prunable like any conv; otherwise identity.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, ceil(H / stride), ceil(W / stride)]."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # Not `+=`: out-of-place keeps autograd and torch.func.vmap happy.
        return F.relu(out + self.shortcut(x))


class ResNetCIFAR(Classifier):
    """ResNet-20/32/56/...: a 3x3 conv stem, 3 stages of n blocks, global avg pool, Linear.

    Stage widths are `width`, 2*`width`, 4*`width`; stages 2 and 3 start with stride 2.
    Layers are named as in open_lth: `conv`, `bn`, `blocks.{i}.conv1|bn1|conv2|bn2`,
    `blocks.{i}.shortcut.0|1`, `fc`. ResNet-20 (width 16) on CIFAR-10 has 272,474 parameters.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, ...).
        width: channels of the first stage.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        depth: int = 20,
        width: int = 16,
    ) -> None:
        super().__init__(input_shape, num_classes)
        if depth < 8 or (depth - 2) % 6 != 0:
            raise ConfigError(f"model.depth={depth} must be 6n+2 (e.g. 20, 32, 56)")
        if width < 1:
            raise ConfigError(f"model.width={width} must be >= 1")
        c, _, _ = image_shape(self.input_shape, f"ResNet-{depth}")
        blocks_per_stage = (depth - 2) // 6
        self.conv = nn.Conv2d(c, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(3):
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, width * 2**stage, stride))
                channels = width * 2**stage
        # Stride-2 3x3 (padding 1) and 1x1 convs both give ceil(size / 2), so any H, W >= 1
        # works and the shortcut always matches.
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(channels, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        out = F.relu(self.bn(self.conv(x)))
        out = self.blocks(out)
        return self.fc(out.mean(dim=(2, 3)))
