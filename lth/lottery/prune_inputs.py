"""What round k's mask is pruned from, and the scores it is ranked by.

The pruner gets the round's weights, the mask they are pruned within, and the weights the
scored round started from (``PruneInputs``; Zhou et al.'s criteria compare the two). IMP
prunes round k-1's trained weights within its mask; with ``at_init`` (pruning at
initialisation: SNIP, GraSP, SynFlow, ...) round k prunes the weights it starts from (the
initialisation, or the rewind point) from the dense mask. The ``invert`` control ranks the
same inputs by the same scores (``prune_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning import Mask, full_mask, prune_mask
from lth.pruning.prune import weight_scores

if TYPE_CHECKING:
    from lth.lottery.driver import Lottery


@dataclass(frozen=True)
class PruneInputs:
    """What round k's mask is pruned from: ``weights`` within ``mask``; ``initial`` the
    weights the scored weights' round started from (equal to ``weights`` at init)."""

    weights: dict[str, torch.Tensor]
    mask: Mask
    initial: dict[str, torch.Tensor]


def round_start_state(lottery: Lottery, k: int, model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights round ``k`` started from (init.pt for round 0); ``model`` is scratch."""
    if k == 0:
        return lottery.load_state(model, lottery.store.init_path)
    lottery.start_weights(k, model)
    return {n: t.clone() for n, t in model.state_dict().items()}


def prune_inputs(lottery: Lottery, k: int, model: nn.Module) -> PruneInputs:
    """What round ``k``'s (>= 1) mask is pruned from (``model`` is scratch)."""
    if lottery.settings.at_init:
        start = round_start_state(lottery, k, model)
        return PruneInputs(start, full_mask(model, lottery.settings.include_bias), start)
    initial = round_start_state(lottery, k - 1, model)
    return PruneInputs(lottery.load_state(model, lottery.store.final_path(k - 1)),
                       lottery.load_mask(model, k - 1), initial)


def prune_scores(lottery: Lottery, k: int, inputs: PruneInputs) -> dict[str, torch.Tensor]:
    """The scores round ``k``'s pruner ranks ``inputs`` by (the ``invert`` control's)."""
    s, pruner = lottery.settings, lottery.pruner
    scores = weight_scores if pruner is prune_mask else getattr(pruner, "scores", None)
    if scores is None:  # the channel pruner ranks whole channels
        raise ConfigError("the invert control needs scores per weight: it supports "
                          "prune.granularity=weight only")
    return scores(inputs.weights, inputs.mask, strategy=s.strategy,
                  seed=s.prune_seed(k), initial=inputs.initial)
