"""The cost of a round: multiply-accumulates per sample (as ShrinkBench reports them), and what
its training spent, by the accounting of Evci et al. 2020 (RigL, appendix H).

A training iteration on a batch of B samples costs ``3 * f * B``: the forward pass f (the
sparse MACs of the current mask, ``lth.models.macs``), and twice that for the backward pass
(gradients of the activations and of the weights). A training whose mask changes (GMP) costs
its density of each stretch of iterations; a RigL update adds its dense gradient, ``2 * f_S +
f_D`` per sample (a sparse forward and activation backward, the weights' gradient dense); a
SET update or a magnitude cut costs nothing. IMP's rounds each cost their own training, so a
round's ``search_cost`` sums the rounds from the dense round 0 on. Costs are stored in units of
one dense training of ``train.duration`` iterations (``3 * f_D * B * T``); ``train_macs`` is
the absolute count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.models.macs import count_macs, weight_uses
from lth.pruning import Mask
from lth.pruning.channels import remove_channels

Changes = Sequence[tuple[int, Mapping[str, float]]]  # (iteration, each tensor's density after)


def round_cost(model: nn.Module, mask: Mask, x: torch.Tensor,
               structured: bool) -> dict[str, int]:
    """MACs per sample of ``model`` on inputs like ``x``: every weight (``macs_dense``), the
    unpruned ones (``macs_sparse``) and, when ``structured`` (whole channels pruned), those of
    the physically smaller network (``macs_structured``; left out where the network cannot be
    shrunk, so the round is stored all the same)."""
    macs = count_macs(model, x[:1], mask)
    out = {"macs_dense": macs.dense, "macs_sparse": macs.sparse}
    if structured:
        try:
            small = remove_channels(model, mask, x.cpu())
        except ConfigError:  # a model DepGraph cannot shrink: the round still counts
            return out
        out["macs_structured"] = count_macs(small, x[:1].cpu()).dense
    return out


@dataclass(frozen=True)
class ForwardCost:
    """MACs per sample of a forward pass as a function of each masked tensor's density:
    ``per_tensor`` the dense MACs of each masked tensor, ``fixed`` those of the others."""

    per_tensor: Mapping[str, int]
    fixed: int

    @property
    def dense(self) -> int:
        return self.fixed + sum(self.per_tensor.values())

    def at(self, density: Mapping[str, float]) -> float:
        """f_S: the MACs per sample with each masked tensor at ``density`` (missing: dense)."""
        return self.fixed + sum(m * density.get(n, 1.0) for n, m in self.per_tensor.items())


def forward_cost(model: nn.Module, names: Sequence[str], x: torch.Tensor) -> ForwardCost:
    """The ``ForwardCost`` of ``model`` on inputs like ``x`` [B, ...] with ``names`` masked."""
    params = dict(model.named_parameters())
    uses = weight_uses(model, x[:1])
    dense = count_macs(model, x[:1]).dense
    per = {n: uses.get(n, 0) * params[n].numel() for n in names}
    return ForwardCost(per, dense - sum(per.values()))


def training_macs(cost: ForwardCost, start: Mapping[str, float], changes: Changes,
                  span: tuple[int, int], dense_grads: int, batch: int) -> float:
    """MACs a training over ``span`` (start, end iterations) spent: ``3 * f_S * batch`` per
    iteration at the density of the time (``start``, then each change from its iteration on),
    plus ``(2 * f_S + f_D) * batch`` per dense gradient (RigL's updates; at the start
    density, which a drop-and-grow update keeps)."""
    begin, end = span
    total, density, at = 0.0, start, begin
    for it, after in sorted(changes, key=lambda c: c[0]):
        it = min(max(it, begin), end)
        total += 3 * cost.at(density) * (it - at)
        density, at = after, it
    total += 3 * cost.at(density) * (end - at)
    total += dense_grads * (2 * cost.at(start) + cost.dense)
    return total * batch


def dense_training_macs(cost: ForwardCost, iterations: int, batch: int) -> float:
    """The unit: one dense training of ``iterations`` iterations, ``3 * f_D * B * T``."""
    return 3.0 * cost.dense * batch * iterations


def spent(update: object) -> tuple[Changes, int]:
    """What a training's mask update changed and computed: (density changes, dense
    gradients); nothing for an update that does not say (IMP's constant mask)."""
    report = getattr(update, "spent", None)
    return report() if callable(report) else ([], 0)


def training_cost(model: nn.Module, start_mask: Mask, update: object, span: tuple[int, int],
                  x: torch.Tensor, batch: int, iterations: int) -> dict[str, float]:
    """``train_macs`` of a training of ``model`` from ``start_mask`` over ``span`` with its
    mask ``update``, and ``train_cost``: that in dense trainings of ``iterations``."""
    cost = forward_cost(model, sorted(start_mask), x)
    changes, dense_grads = spent(update)
    start = {n: int(m.sum()) / m.numel() for n, m in start_mask.items()}
    macs = training_macs(cost, start, changes, span, dense_grads, batch)
    return {"train_macs": macs,
            "train_cost": macs / dense_training_macs(cost, iterations, batch)}
