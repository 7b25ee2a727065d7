"""K models of one architecture as stacked [K, ...] tensors with vmapped forwards: the part of
``lth.train.replicas`` that holds the replicas' weights, BatchNorm statistics and evaluation."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from lth.models.mlp import MLP


def mlp_forward(model: nn.Module) -> Callable[[dict, dict, torch.Tensor], torch.Tensor] | None:
    """For lth's MLPs, MLP.forward written with baddbmm over the stacked weights.

    The same function as the vmapped forward, at a third of its per-step overhead (vmap and
    functional_call cost ~40 us per op on a CPU, which dominates small MLPs). None for any
    other model, or an MLP subclass with its own forward.
    """
    layers = list(model.named_children())
    if (type(model).forward is not MLP.forward
            or not all(isinstance(m, nn.Linear) and m.bias is not None for _, m in layers)):
        return None
    names = [(f"{n}.weight", f"{n}.bias") for n, _ in layers]
    skips = model.skips  # per layer: a residual skip (never the output layer)

    def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(2)
        for i, (w, bias) in enumerate(names):
            z = torch.baddbmm(p[bias].unsqueeze(1), h, p[w].transpose(1, 2))
            if i < len(names) - 1:
                z = torch.relu_(z)  # in place: baddbmm saves its inputs, not its output
            h = h + z if skips[i] else z
        return h

    return forward


class Stack:
    """K models of one architecture as stacked [K, ...] leaf tensors and vmapped forwards."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        shapes = [[(n, p.shape) for n, p in m.named_parameters()] for m in models]
        if any(s != shapes[0] for s in shapes):
            raise ValueError("replicas must share one architecture")
        self.models = list(models)
        self.params, self.buffers = stack_module_state(self.models)
        self.base = copy.deepcopy(self.models[0]).to("meta")

        def forward(p: dict, b: dict, x: torch.Tensor) -> torch.Tensor:
            return functional_call(self.base, (p, b), (x,))

        self.mlp = mlp_forward(self.models[0])
        self.forward = self.mlp or vmap(forward)  # x [K, B, ...] -> [K, B, C]
        self.forward_shared = vmap(forward, in_dims=(0, 0, None))  # x [B, ...] -> [K, B, C]
        # What the optimizer steps (lth.train.replica_optim): replica k's tensors as views
        # of the stacked ones, replica by replica. Views of a tensor that needs no grad are
        # leaves, so a torch optimizer accepts them.
        self.views = [t.detach()[k] for k in range(len(self.models))
                      for t in self.params.values()]

    def zero_grad(self) -> None:
        for t in self.params.values():
            t.grad = None

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy replica k's weights and buffers (BatchNorm statistics) into ``models[k]``."""
        for k, model in enumerate(self.models):
            for n, p in model.named_parameters():
                p.copy_(self.params[n][k])
            for n, b in model.named_buffers():
                b.copy_(self.buffers[n][k])

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
        """Per replica (mean cross-entropy, accuracy) on x [N, ...], y [N].

        For lth's MLPs the same batches and per-replica sums as lth.train.evaluate, so the
        numbers are the single run's; other models go through vmap in smaller batches.
        """
        k = len(self.models)
        batch = 2048 if self.mlp else max(64, 2048 // k)  # K activations live at once
        loss = torch.zeros(k, device=x.device)
        correct = torch.zeros(k, device=x.device, dtype=torch.long)
        self.base.eval()
        for start in range(0, x.shape[0], batch):
            xb, yb = x[start:start + batch], y[start:start + batch]
            if self.mlp:
                out = self.mlp(self.params, self.buffers, xb.expand(k, *xb.shape))
            else:
                out = self.forward_shared(self.params, self.buffers, xb)
            for j in range(k):
                loss[j] += F.cross_entropy(out[j], yb, reduction="sum")
            correct += (out.argmax(-1) == yb).sum(1)
        self.base.train()
        n = max(1, x.shape[0])
        return [v / n for v in loss.tolist()], [c / n for c in correct.tolist()]
