"""Supermasks (Zhou et al. 2019): how well a mask scores on the *initial* weights, untrained.

A round's mask is applied to the run's initialisation and the model is evaluated on the test
split, with no training. Zhou et al.'s sign-preserving constant-magnitude variant
(``constant=True``) first sets every kept weight of a layer to sign(w_i) * std(w_i of that
layer), so that only the mask and the initial signs carry information. Recorded for every
round k >= 1 as ``supermask_test_acc`` when ``analysis.supermask=true``.
"""

from __future__ import annotations

import torch
from torch import nn

from lth.data import Dataset
from lth.pruning import Mask, apply_mask
from lth.train.evaluate import evaluate


@torch.no_grad()
def constant_magnitude(model: nn.Module, mask: Mask) -> None:
    """Each masked tensor of ``model`` set to sign(w) * std(w) over the whole layer, in place."""
    params = dict(model.named_parameters())
    for n in mask:
        p = params[n]
        p.copy_(torch.sign(p) * p.float().std().to(p.dtype))


def supermask_test_acc(model: nn.Module, mask: Mask, data: Dataset,
                       constant: bool = False) -> float:
    """Test accuracy of ``model`` (at its initial weights; changed in place) under ``mask``."""
    if constant:
        constant_magnitude(model, mask)
    apply_mask(model, mask)
    return evaluate(model, data.x_test, data.y_test)[1]
