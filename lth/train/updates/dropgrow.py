"""SET and RigL: drop the active weights of smallest magnitude, grow as many elsewhere.

Every ΔT iterations (at ``begin + ΔT``, ``begin + 2ΔT``, ... before ``end``), before the step
of that iteration, each masked tensor drops ``int(active * ζ_t)`` of its active weights of
smallest |w| and grows as many among the others (``lth.pruning.dst.drop_grow``): at random
(SET, uniform scores from the update's own generator) or by largest |dense gradient| of the
loss on the batch of that iteration (RigL; under data parallelism averaged over the ranks, so
every rank grows the same weights). ``ζ_t`` is ζ (constant) or RigL's cosine decay to 0 at
``end``. A grown weight starts at zero with zero optimizer state (``lth.train.masking``); one
dropped and grown again in the same update keeps its value and state, as in the reference.
Each tensor's count of active weights never changes, so its density stays the start mask's.

Deviation from google-research/rigl: there an update iteration applies no optimizer step;
here the step of the iteration follows the update (the mask changes between two steps). The
cost accounting counts an update's dense gradient on top of the step (``lth.lottery.cost``).
"""

from __future__ import annotations

from typing import Any

import torch

from lth.pruning.dst import cosine_fraction, drop_count, drop_grow
from lth.pruning.mask import Mask, layer_density
from lth.train.masking import MaskChange, UpdateContext
from lth.train.updates.registry import SparseSettings


class DropGrow:
    """The mask update of SET (``grow="random"``) or RigL (``grow="gradient"``)."""

    def __init__(self, settings: SparseSettings, grow: str, seed: int) -> None:
        self.settings, self.grow = settings, grow
        self.generator = torch.Generator().manual_seed(seed)
        self.dense_grads = 0  # updates that computed a dense gradient (the cost's)

    def due(self, it: int) -> bool:
        s = self.settings
        return s.begin < it < s.end and (it - s.begin) % s.update_every == 0

    def fraction(self, it: int) -> float:
        """ζ at ``it``: constant, or cosine-decayed as the reference (``decay_steps = end -
        begin``, evaluated at ``it``)."""
        s = self.settings
        if s.drop_schedule == "cosine":
            return cosine_fraction(it, s.drop_fraction, s.end - s.begin)
        return s.drop_fraction

    def scores(self, ctx: UpdateContext) -> dict[str, torch.Tensor]:
        """The grow score of every masked tensor."""
        if self.grow == "gradient":
            self.dense_grads += 1
            grads = ctx.dense_grads()
            return {n: grads[n].abs() for n in ctx.mask}
        return {n: torch.rand(ctx.mask[n].shape, generator=self.generator)
                for n in sorted(ctx.mask)}

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        """Drop and grow in every masked tensor at ``ctx.it``."""
        zeta = self.fraction(ctx.it)
        scores = self.scores(ctx)
        params = dict(ctx.model.named_parameters())
        new: Mask = {}
        grown = active = 0
        for n, m in ctx.mask.items():
            count = drop_count(int(m.sum()), zeta)
            new[n] = drop_grow(params[n], m, scores[n], count) if count else m
            grown += int((new[n] & ~m).sum())
            active += int(m.sum())
        size = sum(m.numel() for m in new.values())
        stats = {"sparse/drop_fraction": zeta, "sparse/regrown": grown / max(active, 1),
                 "sparse/density": sum(int(m.sum()) for m in new.values()) / size,
                 **{f"sparse/density/{n}": d for n, d in layer_density(new).items()}}
        return MaskChange(new, None, stats)

    def spent(self) -> tuple[list[tuple[int, dict[str, float]]], int]:
        """(mask changes that moved a density: none; dense gradients computed)."""
        return [], self.dense_grads

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "dense_grads": self.dense_grads}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.dense_grads = int(state["dense_grads"])


def build_set(settings: SparseSettings, mask: Mask, seed: int) -> DropGrow:
    return DropGrow(settings, "random", seed)


def build_rigl(settings: SparseSettings, mask: Mask, seed: int) -> DropGrow:
    return DropGrow(settings, "gradient", seed)
