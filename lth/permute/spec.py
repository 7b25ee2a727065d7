"""Permutation specs: which axes of which state tensors each hidden-unit permutation moves.

A hidden unit (a neuron of a Linear layer, a channel of a conv) can be renamed without changing
the network's function, provided every tensor indexed by that unit is reordered the same way:
the layer's output rows and bias, the BatchNorm affine parameters and running statistics of
its channels, and the input columns of every layer that reads it. A spec lists, for each
state-dict tensor, which permutation acts on each of its axes (Ainsworth et al. 2023, "Git
Re-Basin", ``PermutationSpec``; axes in PyTorch's layout, weights ``[out, in, ...]``).

Where a conv's channels are flattened into a Linear layer (LeNet-5, Conv-k, the 1-D CNN), the
Linear weight is viewed as ``[out, channels, positions]`` so that a channel permutation moves
whole blocks of its input columns. Residual streams share one permutation: in ResNet-20/56
every block of a stage adds into the same channels, and in the residual MLP
(``h = h + relu(fc_i h)``) such a layer's input and output are one stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from lth.errors import ConfigError
from lth.models import CNN1D, MLP, VGG, ConvNet, LeNet5, ResNetCIFAR

# BatchNorm's running statistics move with their channels but are not matched on (the
# reference matches the parameters: kernels, biases and norm affines).
_STATS = ("running_mean", "running_var")


@dataclass(frozen=True)
class Axes:
    """The permutation (or None) of each axis of a tensor seen as ``view`` (None: as is)."""

    perms: tuple[str | None, ...]
    view: tuple[int, ...] | None = None
    match: bool = True  # whether weight matching's objective includes it


@dataclass(frozen=True)
class PermSpec:
    """tensor name -> its axes; ``sizes``: permutation name -> number of units."""

    axes: dict[str, Axes]
    sizes: dict[str, int] = field(default_factory=dict)

    def perm_to_axes(self) -> dict[str, list[tuple[str, int]]]:
        """permutation name -> [(tensor name, axis)], in the tensors' order."""
        out: dict[str, list[tuple[str, int]]] = {p: [] for p in self.sizes}
        for name, ax in self.axes.items():
            for axis, p in enumerate(ax.perms):
                if p is not None:
                    out[p].append((name, axis))
        return out


class _Builder:
    """Collects the axes of a model's state tensors, layer by layer."""

    def __init__(self, model: nn.Module) -> None:
        self.shapes = {n: tuple(t.shape) for n, t in model.state_dict().items()}
        self.axes: dict[str, Axes] = {}
        self.sizes: dict[str, int] = {}

    def layer(self, name: str, p_out: str | None, p_in: str | None, blocks: int = 1) -> None:
        """A conv or Linear ``name``: output units ``p_out``, input units ``p_in`` (a Linear
        reading ``blocks`` flattened positions per input channel when ``blocks`` > 1)."""
        shape = self.shapes[f"{name}.weight"]
        self._size(p_out, shape[0])
        if blocks > 1:
            view = (shape[0], shape[1] // blocks, blocks)
            self.axes[f"{name}.weight"] = Axes((p_out, p_in, None), view)
            self._size(p_in, view[1])
        else:
            self.axes[f"{name}.weight"] = Axes((p_out, p_in) + (None,) * (len(shape) - 2))
            self._size(p_in, shape[1])
        if f"{name}.bias" in self.shapes:
            self.axes[f"{name}.bias"] = Axes((p_out,))

    def norm(self, name: str, p: str) -> None:
        """A BatchNorm ``name`` over the units ``p``."""
        for key in ("weight", "bias", *_STATS):
            if f"{name}.{key}" in self.shapes:
                self.axes[f"{name}.{key}"] = Axes((p,), match=key not in _STATS)

    def _size(self, p: str | None, n: int) -> None:
        if p is None:
            return
        if self.sizes.setdefault(p, n) != n:
            raise ValueError(f"permutation {p} acts on {self.sizes[p]} and {n} units")

    def spec(self) -> PermSpec:
        """Every state tensor (unlisted ones, e.g. BatchNorm's batch count, unpermuted)."""
        axes = {n: self.axes.get(n, Axes((None,) * len(s), match=False))
                for n, s in self.shapes.items()}
        return PermSpec(axes, dict(self.sizes))


def _chain(b: _Builder, layers: list[tuple[str, str | None]], shared: set[int] = frozenset(),
           blocks: dict[int, int] | None = None) -> None:
    """Layers in forward order (name, its BatchNorm or None), the last one the output layer;
    layer ``i`` in ``shared`` keeps its input's permutation (a residual stream); ``blocks[i]``:
    flattened positions per input channel of layer ``i``."""
    p_in: str | None = None
    for i, (name, norm) in enumerate(layers):
        last = i == len(layers) - 1
        p_out = None if last else (p_in if i in shared else f"P_{name}")
        b.layer(name, p_out, p_in, (blocks or {}).get(i, 1))
        if norm is not None and p_out is not None:
            b.norm(norm, p_out)
        p_in = p_out


def _positions(b: _Builder, conv: str, linear: str) -> int:
    """Flattened positions per channel where ``conv``'s output feeds ``linear``."""
    return b.shapes[f"{linear}.weight"][1] // b.shapes[f"{conv}.weight"][0]


def _mlp(model: MLP, b: _Builder) -> None:
    names = [n for n, _ in model.named_children()]
    shared = {i for i, skip in enumerate(model.skips) if skip}
    _chain(b, [(n, None) for n in names], shared)


def _convnet(model: nn.Module, b: _Builder, convs: list[str], fcs: list[str]) -> None:
    blocks = {len(convs): _positions(b, convs[-1], fcs[0])}
    _chain(b, [(n, None) for n in convs + fcs], blocks=blocks)


def _lenet5(model: LeNet5, b: _Builder) -> None:
    _convnet(model, b, ["conv1", "conv2"], ["fc1", "fc2", "fc3"])


def _conv_k(model: ConvNet, b: _Builder) -> None:
    _convnet(model, b, [f"conv{i}" for i in range(1, model.depth + 1)], ["fc1", "fc2", "fc3"])


def _cnn1d(model: CNN1D, b: _Builder) -> None:
    _convnet(model, b, [f"conv{i}" for i in range(1, model.num_convs + 1)], ["fc"])


def _vgg(model: VGG, b: _Builder) -> None:
    convs = [f"layers.{i}" for i, m in enumerate(model.layers) if not isinstance(m, nn.MaxPool2d)]
    _chain(b, [(f"{n}.conv", f"{n}.bn") for n in convs] + [("fc", None)])


def _resnet(model: ResNetCIFAR, b: _Builder) -> None:
    """One permutation per stage's residual stream, one per block's inner channels."""
    stream = "P_stage0"
    b.layer("conv", stream, None)
    b.norm("bn", stream)
    stage = 0
    for i, block in enumerate(model.blocks):
        inner, out = f"P_blocks.{i}.inner", stream
        if not isinstance(block.shortcut, nn.Identity):  # a new stage: a new stream
            stage += 1
            out = f"P_stage{stage}"
            b.layer(f"blocks.{i}.shortcut.0", out, stream)
            b.norm(f"blocks.{i}.shortcut.1", out)
        b.layer(f"blocks.{i}.conv1", inner, stream)
        b.norm(f"blocks.{i}.bn1", inner)
        b.layer(f"blocks.{i}.conv2", out, inner)
        b.norm(f"blocks.{i}.bn2", out)
        stream = out
    b.layer("fc", None, stream)


# model class -> how its spec is built (subclasses: LeNet-300-100 and MLP1D are MLPs).
SPECS: dict[type, Callable[..., None]] = {
    ResNetCIFAR: _resnet, VGG: _vgg, LeNet5: _lenet5, ConvNet: _conv_k, CNN1D: _cnn1d,
    MLP: _mlp,
}


def supported(model: nn.Module) -> bool:
    """Whether lth knows ``model``'s permutation symmetries."""
    return any(isinstance(model, cls) for cls in SPECS)


def perm_spec(model: nn.Module) -> PermSpec:
    """The permutation spec of ``model`` (an lth MLP, LeNet, Conv-k, 1-D CNN, VGG or ResNet);
    ConfigError for other models."""
    for cls, build in SPECS.items():
        if isinstance(model, cls):
            b = _Builder(model)
            build(model, b)
            return b.spec()
    names = ", ".join(c.__name__ for c in SPECS)
    raise ConfigError(f"{type(model).__name__} has no permutation spec: weight matching "
                      f"supports {names}")
