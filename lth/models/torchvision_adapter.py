"""Any torchvision classifier as an lth model, built from scratch (no pretrained weights)."""

import difflib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier, image_shape, init_weights

# These return (logits, aux logits) namedtuples in training mode; their auxiliary heads would
# also put extra Linear layers into the pruning scope. Off unless the config asks for them.
_AUX_ARCHS = ("googlenet", "inception_v3")


def _replace_first_conv(net: nn.Module, in_channels: int) -> None:
    """Swap the first Conv2d (the stem) for one taking `in_channels`, same settings otherwise."""
    name, old = next((n, m) for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
    new = nn.Conv2d(
        in_channels,
        old.out_channels,
        kernel_size=old.kernel_size,  # type: ignore[arg-type]
        stride=old.stride,  # type: ignore[arg-type]
        padding=old.padding,  # type: ignore[arg-type]
        dilation=old.dilation,  # type: ignore[arg-type]
        groups=1,
        bias=old.bias is not None,
        padding_mode=old.padding_mode,
    )
    init_weights(new)
    parent_name, _, child_name = name.rpartition(".")
    setattr(net.get_submodule(parent_name), child_name, new)


class TorchvisionClassifier(Classifier):
    """`torchvision.models.get_model(arch, weights=None, num_classes=num_classes)`, wrapped.

    The network is the attribute `net`, so weights are named like `net.conv1.weight`.
    It keeps torchvision's own init for the arch (its published one); only a replaced
    stem conv gets lth's `init_weights`. If `input_shape[0] != 3` the first Conv2d is
    replaced by one taking that many channels. Whether small inputs (e.g. 28x28) work is
    up to the arch: ResNets and VGGs pool adaptively, some (maxvit, inception) do not.

    Args:
        arch: a name from `torchvision.models.list_models(module=torchvision.models)`.
        **arch_kwargs: passed on to the torchvision builder (e.g. `dropout`).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        arch: str = "resnet18",
        **arch_kwargs: Any,
    ) -> None:
        super().__init__(input_shape, num_classes)
        import torchvision  # lazily: importing it costs about a second and most runs don't

        known = torchvision.models.list_models(module=torchvision.models)
        if arch not in known:
            close = difflib.get_close_matches(arch, known, n=3)
            raise ConfigError(
                f"model.arch={arch!r} is not a torchvision classifier (close: {close}); "
                "see torchvision.models.list_models(module=torchvision.models)"
            )
        channels, _, _ = image_shape(self.input_shape, f"torchvision {arch}")
        if arch in _AUX_ARCHS:
            arch_kwargs.setdefault("aux_logits", False)
        self.arch = arch
        self.net = torchvision.models.get_model(
            arch, weights=None, num_classes=self.num_classes, **arch_kwargs
        )
        if channels != 3:
            _replace_first_conv(self.net, channels)
        # The pruning code treats the last Linear as the output layer; make sure it is.
        linears = [m for m in self.net.modules() if isinstance(m, nn.Linear)]
        if not linears or linears[-1].out_features != self.num_classes:
            raise ConfigError(
                f"model.arch={arch!r}: its last nn.Linear is not the classifier "
                "(e.g. squeezenet classifies with a conv); pick another arch"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, H, W] -> logits [B, num_classes]."""
        return self.net(x)
