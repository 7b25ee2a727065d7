"""VGG for CIFAR, as open_lth's `cifar_vgg_{11,13,16,19}` (Simonyan & Zisserman 2015 widths)."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, image_shape, init_weights, require_min_size

# Output channels per conv; "M" is a 2x2 max-pool. open_lth drops the final pool of the
# ImageNet plans and averages the remaining 2x2 map on CIFAR.
PLANS: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    19: [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
         512, 512, 512, 512, "M", 512, 512, 512, 512],
}  # fmt: skip


class ConvBlock(nn.Module):
    """3x3 conv (padding 1, with bias as in open_lth) -> BatchNorm -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C_in, H, W] -> [B, C_out, H, W]."""
        return F.relu(self.bn(self.conv(x)))


class VGG(Classifier):
    """CIFAR VGG: conv-BN-ReLU blocks with max-pools, global average pool, one Linear.

    Layers are named `layers.{i}.conv`, `layers.{i}.bn` (pools take indices too) and `fc`,
    as in open_lth. The global average pool equals open_lth's `AvgPool2d(2)` on 32x32 and
    lets other sizes (H, W >= 16) work.

    Args:
        depth: 11, 13, 16 or 19.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, depth: int = 16) -> None:
        super().__init__(input_shape, num_classes)
        if depth not in PLANS:
            raise ConfigError(f"model.depth={depth} is not a VGG depth; use one of {list(PLANS)}")
        c, h, w = image_shape(self.input_shape, f"VGG-{depth}")
        layers: list[nn.Module] = []
        for spec in PLANS[depth]:
            if spec == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                h, w = h // 2, w // 2
            else:
                layers.append(ConvBlock(c, int(spec)))
                c = int(spec)
        require_min_size([h, w], f"VGG-{depth}", self.input_shape)
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, self.num_classes)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        x = self.layers(x)
        return self.fc(x.mean(dim=(2, 3)))
