"""What every lth model shares: the constructor contract, the init scheme, shape checks.

Every model is built as `Model(input_shape, num_classes, **hyperparameters)`, where
`input_shape` excludes the batch dimension, e.g. (1, 28, 28) for MNIST, (3, 32, 32) for
CIFAR-10, (1, 40) for mnist1d. The pruning code (`lth.pruning.mask`) relies on two
conventions that every model here keeps:

- prunable tensors are the `.weight` of every conv and linear layer
  (`lth.pruning.mask.PRUNABLE_LAYERS`, the one definition);
- the output layer is the last `nn.Linear` in `model.modules()` order.
"""

from collections.abc import Sequence

from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import PRUNABLE_LAYERS


class Classifier(nn.Module):
    """Base of the lth models: validates and stores `input_shape` and `num_classes`.

    Subclasses build their layers, then call `self.apply(init_weights)` last so that the
    init does not depend on PyTorch's per-layer defaults.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int) -> None:
        super().__init__()
        # Hydra hands over ListConfig / torch.Size; normalise to a plain tuple of ints.
        shape = tuple(int(d) for d in input_shape)
        if not shape or any(d < 1 for d in shape):
            raise ConfigError(f"input_shape {shape} must be non-empty positive sizes (C, ...)")
        if int(num_classes) < 1:
            raise ConfigError(f"num_classes={num_classes} must be >= 1")
        self.input_shape: tuple[int, ...] = shape
        self.num_classes: int = int(num_classes)


def init_weights(module: nn.Module) -> None:
    """open_lth-style init, applied with `model.apply(init_weights)`.

    - Weights of the prunable layers (conv, linear): `kaiming_normal_` (fan_in, ReLU gain
      sqrt(2)), as open_lth's default `kaiming_normal` initializer.
    - Their biases: zeros (open_lth keeps PyTorch's uniform default there; zeros keep the
      seed's randomness in the weights alone).
    - BatchNorm: weight 1, bias 0 (open_lth draws BN weights uniform in [0, 1); we keep
      the standard 1 so an unpruned network starts as the textbook one).

    Deterministic under `torch.manual_seed`.
    """
    if isinstance(module, PRUNABLE_LAYERS):
        nn.init.kaiming_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    """Check that `input_shape` is (C, H, W) and return it."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"{model} needs an image input_shape (C, H, W), got {input_shape}; "
            "use an MLP or a 1-D model for this dataset"
        )
    c, h, w = input_shape
    return c, h, w


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a conv or pool along one dimension (PyTorch's floor rule)."""
    return (size + 2 * padding - kernel) // stride + 1


def require_min_size(sizes: Sequence[int], model: str, input_shape: tuple[int, ...]) -> None:
    """Raise ConfigError when a layer would shrink a spatial dimension below 1."""
    if min(sizes) < 1:
        raise ConfigError(
            f"input_shape {input_shape} is too small for {model} (a spatial size drops "
            "below 1); use larger inputs or a shallower model"
        )


def count_parameters(model: nn.Module) -> int:
    """Total number of parameters (weights, biases and norm affines), buffers excluded."""
    return sum(p.numel() for p in model.parameters())
