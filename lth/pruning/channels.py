"""Channel groups from Torch-Pruning's dependency graph (DepGraph), and physical removal.

A *channel group* is a set of channels that must be removed together: a conv's filters, the
BatchNorm entries after it and the input slices of every layer that reads them. Residual adds
tie several layers' channels into one group (in a ResNet stage, the stem or shortcut conv and
every block's second conv share the stream's channels); flatten maps one conv channel to many
Linear inputs. DepGraph (Fang et al. 2023, ``torch_pruning``) traces the model once and finds
all of this; nothing here follows the graph by hand.

How a channel is pruned as a Mask (see ``lth.pruning.structured``): its producers' output rows
*and* its consumers' input columns are masked. Masking only the rows would not silence it: a
zero channel through BatchNorm (eval) becomes ``beta - gamma * mean / sqrt(var + eps)``, and
ReLU passes that constant on. With the consumers' columns masked, the constant meets zero
weights, so the masked network computes exactly what the physically smaller network computes,
and norm layers need no masking. A channel is *dead* when every consumer's slice is masked;
``remove_channels`` removes the dead channels. The output layer's outputs (the classes) are
never a group; its input columns belong to the last hidden group.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning.mask import PRUNABLE_LAYERS, Mask, apply_mask, output_layer_name

_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class Slice:
    """One tensor's share of a channel group.

    Positions ``index`` [M] along ``dim`` of parameter ``name``; position i belongs to the
    group's channel ``root[i]`` [M]. ``role``: "out" (a producer's weight rows), "bias" (its
    bias), "in" (a consumer's weight columns) or "norm" (a BatchNorm scale).
    """

    name: str
    role: str
    dim: int
    index: torch.Tensor
    root: torch.Tensor


@dataclass(frozen=True)
class ChannelGroup:
    """Channels that are kept or removed together. ``root``: the module DepGraph started from."""

    root: str
    size: int
    slices: tuple[Slice, ...]

    def of(self, *roles: str) -> list[Slice]:
        return [s for s in self.slices if s.role in roles]


def _require_tp():  # noqa: ANN202 - the module object
    try:
        import torch_pruning
    except ImportError:
        raise ConfigError(
            "structured pruning needs torch-pruning: pip install -e '.[deploy]'"
        ) from None
    return torch_pruning


def dependency_graph(model: nn.Module, example_input: torch.Tensor):  # noqa: ANN201
    """DepGraph of ``model`` traced on ``example_input`` [B, *input_shape] (eval mode)."""
    tp = _require_tp()
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval().requires_grad_(True)  # DepGraph traces through autograd
    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(
            model, example_inputs=example_input, verbose=False)
    except Exception as e:  # tracing fails in many ways on unsupported ops
        raise ConfigError(
            f"{type(model).__name__} cannot be traced for structured pruning "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); prune it "
            "by weights (prune.granularity=weight) or export it unstructured (structured=false)"
        ) from None
    finally:
        model.train(was_training)
        for p, flag in flags:
            p.requires_grad_(flag)


def _module_slices(dg, module: nn.Module, name: str, handler, idxs, roots) -> list[Slice] | None:
    """The Slices one group item contributes; None if the module is not supported."""
    if not any(True for _ in module.parameters(recurse=False)):
        return []
    index = torch.as_tensor(list(idxs), dtype=torch.int64)
    root = torch.as_tensor(list(roots), dtype=torch.int64)
    prefix = f"{name}." if name else ""
    if isinstance(module, _NORMS) and module.affine:
        return [Slice(prefix + "weight", "norm", 0, index, root)]
    if not isinstance(module, PRUNABLE_LAYERS) or getattr(module, "groups", 1) != 1:
        return None  # depthwise/grouped convs, LayerNorm, attention, ...: not handled
    if dg.is_out_channel_pruning_fn(handler):
        out = [Slice(prefix + "weight", "out", 0, index, root)]
        if module.bias is not None:
            out.append(Slice(prefix + "bias", "bias", 0, index, root))
        return out
    return [Slice(prefix + "weight", "in", 1, index, root)]


def _groups(model: nn.Module, dg) -> list[tuple[ChannelGroup, object]]:
    """(ChannelGroup, DepGraph group) for every group lth can prune, in graph order."""
    names = {id(m): n for n, m in model.named_modules()}
    out_layer = model.get_submodule(output_layer_name(model).rpartition(".")[0])
    result = []
    for group in dg.get_all_groups(ignored_layers=[out_layer],
                                   root_module_types=PRUNABLE_LAYERS):
        slices: list[Slice] | None = []
        for item in group.items:
            module = item.dep.target.module
            if not isinstance(module, nn.Module):
                slices = None  # an unwrapped nn.Parameter
            elif id(module) in names and slices is not None:
                part = _module_slices(dg, module, names[id(module)], item.dep.handler,
                                      item.idxs, item.root_idxs)
                slices = None if part is None else slices + part
        if slices and any(s.role == "in" for s in slices):
            root = names[id(group[0].dep.target.module)]
            result.append((ChannelGroup(root, len(group[0].idxs), tuple(slices)), group))
    return result


def _supported_groups(model: nn.Module, dg) -> list[tuple[ChannelGroup, object]]:
    groups = _groups(model, dg)
    if not groups:
        raise ConfigError(
            f"{type(model).__name__} has no channels lth can remove (no hidden conv/linear "
            "layer whose channels only feed conv/linear/BatchNorm layers); prune it by weights "
            "(prune.granularity=weight) or export it unstructured (structured=false)"
        )
    return groups


def channel_groups(model: nn.Module, example_input: torch.Tensor) -> list[ChannelGroup]:
    """The prunable channel groups of ``model`` (ConfigError if it has none)."""
    return [g for g, _ in _supported_groups(model, dependency_graph(model, example_input))]


def _scatter_any(values: torch.Tensor, root: torch.Tensor, size: int) -> torch.Tensor:
    out = torch.zeros(size)
    out.index_add_(0, root, values.float())
    return out > 0


def alive_channels(group: ChannelGroup, mask: Mask) -> torch.Tensor:
    """bool [size]: channels some consumer still reads (not fully masked)."""
    alive = torch.zeros(group.size, dtype=torch.bool)
    for s in group.of("in"):
        if s.name not in mask:
            return torch.ones(group.size, dtype=torch.bool)
        m = mask[s.name].cpu().index_select(s.dim, s.index).movedim(s.dim, 0)
        alive |= _scatter_any(m.flatten(1).any(dim=1), s.root, group.size)
    return alive


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def remove_channels(model: nn.Module, mask: Mask, example_input: torch.Tensor) -> nn.Module:
    """A smaller copy of ``model`` (eval mode) without the channels ``mask`` leaves dead.

    ``model`` is not changed. The copy has ``mask`` applied and its dead channels physically
    removed (weights, biases, BatchNorm entries and every consumer's inputs, by DepGraph); a
    group keeps at least one channel. Its outputs equal the masked model's; this is checked on
    ``example_input`` [B, *input_shape] and a mismatch raises ConfigError.
    """
    masked = copy.deepcopy(model).cpu().eval()
    apply_mask(masked, mask)
    small = copy.deepcopy(masked)
    dg = dependency_graph(small, example_input)
    plans = []
    for group, tp_group in _supported_groups(small, dg):
        dead = (~alive_channels(group, mask)).nonzero().flatten().tolist()
        if len(dead) == group.size:
            dead = dead[1:]  # a layer needs one channel; its consumers read it with zeros
        if dead:
            plans.append((tp_group[0].dep.target.module, tp_group[0].dep.handler, dead))
    for module, handler, dead in plans:
        dg.get_pruning_group(module, handler, dead).prune()
    with torch.no_grad():
        expected, got = masked(example_input), small(example_input)
    scale = 1.0 + float(expected.abs().max())
    if expected.shape != got.shape or max_abs_diff(expected, got) > 1e-4 * scale:
        raise ConfigError(
            f"removing channels changed {type(model).__name__}'s outputs: it has an op "
            "DepGraph does not follow; export it unstructured (structured=false)"
        )
    return small
