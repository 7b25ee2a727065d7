"""Gradual magnitude pruning (Zhu & Gupta 2017) within one training, as a mask update.

The training starts dense. At ``t0 = begin``, every ΔT after it and at ``t_end = end``
(before the step of that iteration), each masked tensor l is cut by magnitude to the density
``1 - s_t`` of its cubic schedule ``s_t = s_f + (s_i - s_f)(1 - (t - t0) / (t_end - t0))^3``
(``lth.pruning.dst.gmp_sparsity``; s_i = 0, s_f = 1 - its target density from the run's
distribution), keeping ``round(N * (1 - s_t))`` of its active weights: masks only shrink, and
from ``t_end`` on each tensor is at its target exactly.
"""

from __future__ import annotations

from typing import Any

from lth.pruning.densities import mask_densities
from lth.pruning.dst import gmp_sparsity, magnitude_keep
from lth.pruning.mask import Mask, layer_density
from lth.pruning.scopes import kept_count
from lth.train.masking import MaskChange, UpdateContext
from lth.train.updates.registry import SparseSettings


class GradualMagnitude:
    """Prunes each tensor to its cubic schedule's density at the update iterations."""

    def __init__(self, settings: SparseSettings, targets: dict[str, float]) -> None:
        self.settings, self.targets = settings, targets
        self.changes: list[tuple[int, dict[str, float]]] = []  # (it, densities after it)

    def due(self, it: int) -> bool:
        s = self.settings
        return it == s.end or (s.begin <= it < s.end and (it - s.begin) % s.update_every == 0)

    def densities(self, it: int) -> dict[str, float]:
        """Each tensor's scheduled density at ``it``."""
        s = self.settings
        return {n: 1 - gmp_sparsity(it, 1 - d, s.begin, s.end) for n, d in self.targets.items()}

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        params = dict(ctx.model.named_parameters())
        goal = self.densities(ctx.it)
        new = {n: magnitude_keep(params[n], m, kept_count(m.numel(), goal[n]))
               for n, m in ctx.mask.items()}
        density = layer_density(new)
        self.changes.append((ctx.it, density))
        kept = sum(int(m.sum()) for m in new.values())
        size = sum(m.numel() for m in new.values())
        return MaskChange(new, None, {"sparse/density": kept / size,
                                      **{f"sparse/density/{n}": d for n, d in density.items()}})

    def spent(self) -> tuple[list[tuple[int, dict[str, float]]], int]:
        """(the density after each update, by iteration; no dense gradients)."""
        return list(self.changes), 0

    def state_dict(self) -> dict[str, Any]:
        return {"changes": [[it, dict(d)] for it, d in self.changes]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.changes = [(int(it), dict(d)) for it, d in state["changes"]]


def build(settings: SparseSettings, mask: Mask, seed: int) -> GradualMagnitude:
    """GMP from the dense ``mask`` to ``settings``' densities (no random draws)."""
    return GradualMagnitude(settings, mask_densities(mask, settings.density,
                                                     settings.distribution))
