"""Wide ResNet-(6n+4)-k of Zagoruyko & Komodakis 2016 for CIFAR: the WRN-22-2 of Evci et al.
2020's CIFAR-10 experiments (google-research/rigl ``cifar_resnet``)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, image_shape, init_weights


class WideBlock(nn.Module):
    """Pre-activation block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus a shortcut (a 1x1 conv
    of the pre-activated input where the shape changes, else identity)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, ceil(H / stride), ceil(W / stride)]."""
        pre = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(pre))))
        return out + (x if self.shortcut is None else self.shortcut(pre))


class WideResNet(Classifier):
    """WRN-depth-k: a 3x3 conv stem of 16 channels, 3 stages of n = (depth - 4) / 6 blocks of
    16k, 32k and 64k channels (stages 2 and 3 start with stride 2), BN-ReLU, global average
    pool, Linear. WRN-22-2 on CIFAR-10 has 1,079,642 parameters."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 22,
                 widen: int = 2) -> None:
        super().__init__(input_shape, num_classes)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ConfigError(f"model.depth={depth} must be 6n+4 (e.g. 16, 22, 28)")
        if widen < 1:
            raise ConfigError(f"model.widen={widen} must be >= 1")
        c, _, _ = image_shape(self.input_shape, f"WRN-{depth}-{widen}")
        n = (depth - 4) // 6
        self.conv = nn.Conv2d(c, 16, 3, padding=1, bias=False)
        blocks: list[nn.Module] = []
        channels = 16
        for stage, width in enumerate((16 * widen, 32 * widen, 64 * widen)):
            for index in range(n):
                blocks.append(WideBlock(channels, width, 2 if stage > 0 and index == 0 else 1))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        out = F.relu(self.bn(self.blocks(self.conv(x))))
        return self.fc(out.mean(dim=(2, 3)))
