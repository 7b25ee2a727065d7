"""The cost of a round: multiply-accumulates per sample, as ShrinkBench reports them."""

from __future__ import annotations

import torch
from torch import nn

from lth.errors import ConfigError
from lth.models.macs import count_macs
from lth.pruning import Mask
from lth.pruning.channels import remove_channels


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
