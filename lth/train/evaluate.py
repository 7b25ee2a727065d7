"""Evaluation: loss and accuracy over a whole split, in large batches, without autograd."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


@torch.inference_mode()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2048
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy in [0, 1]) of ``model`` on ``x`` [N, ...], ``y`` [N].

    The model is put in eval mode for the pass and its previous mode is restored.
    """
    was_training = model.training
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.long)
    for start in range(0, x.shape[0], batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        out = model(xb)
        loss += F.cross_entropy(out, yb, reduction="sum")
        correct += (out.argmax(dim=1) == yb).sum()
    model.train(was_training)
    n = max(1, x.shape[0])
    return float(loss) / n, int(correct) / n
