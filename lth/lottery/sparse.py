"""Sparse training as a run of the store: one training (round 0) from the method's start mask,
its mask changed during the training by the method's update (``lth.train.updates``).

The start mask is random at the layer densities of ``sparse.distribution`` (static, SET,
RigL; drawn with ``derive_seed(seed, "sparse", "mask")``) or dense (GMP); the update's own
random draws (SET's growth) are seeded by ``derive_seed(seed, "sparse", "update")``, so every
seed of a replica group updates its own mask, and every rank of a data-parallel run the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lth.lottery.seeds import derive_seed
from lth.pruning.densities import mask_densities
from lth.pruning.dst import random_mask
from lth.pruning.mask import Mask
from lth.train.masking import MaskUpdate
from lth.train.updates import SparseSettings, build_update


@dataclass(frozen=True)
class SparseTraining:
    """How a run's one training is sparse: its method, densities and schedule."""

    settings: SparseSettings

    def start_mask(self, dense: Mask, seed: int) -> Mask:
        """The training's first mask, from the dense mask of the prunable tensors."""
        s = self.settings
        if s.entry.start == "dense":
            return dense
        densities = mask_densities(dense, s.density, s.distribution)
        generator = torch.Generator().manual_seed(derive_seed(seed, "sparse", "mask"))
        return random_mask(dense, densities, generator)

    def update(self, mask: Mask, seed: int) -> MaskUpdate | None:
        """The mask update of a training starting at ``mask`` (None: static)."""
        return build_update(self.settings, mask, derive_seed(seed, "sparse", "update"))
