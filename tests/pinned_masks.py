"""Fixed cases for the strategies whose masks are pinned (tests/fixtures/strategy_masks.json).

Every case is a small network (an MLP with biases, a conv net with biases and BatchNorm), its
initial and "trained" weights and a training split, all from fixed seeds, pruned twice by one
strategy: from the dense mask to a first target, then from that mask to a second one with
other weights (so the "masks only shrink" logic is exercised too). The output layer has its
own target, so global scopes group by target. ``digest`` names a mask by its bits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lth.pruning import Mask, full_mask


class PinMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(12, 16)
        self.fc2 = nn.Linear(16, 16)
        self.out = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


class PinConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 12)
        self.bn3 = nn.BatchNorm1d(12)
        self.out = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.out(torch.relu(self.bn3(self.fc(x.flatten(1)))))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (PinMLP, (12,)),
    "conv": (PinConv, (1, 8, 8)),
}
BIAS = {"weights": (False, False), "biases": (True, False), "pooled": (True, True)}
BATCH_SIZE, SCORE_BATCHES, SCORE_ITERATIONS, SEED = 16, 2, 5, 3
DATA_MASKS = Path(__file__).parent / "fixtures" / "strategy_masks_data.pt"
FIRST, SECOND = 0.5, 0.2  # targets of the two steps; the output layer keeps more


@dataclass(frozen=True)
class Case:
    """One network's states and data: w_i, two "trained" states, a training split."""

    make_model: Callable[[], nn.Module]
    initial: dict[str, torch.Tensor]
    trained: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]
    x: torch.Tensor
    y: torch.Tensor
    include_bias: bool
    pool_bias: bool

    def full(self) -> Mask:
        return full_mask(self.make_model(), self.include_bias)

    def densities(self, step: int) -> dict[str, float]:
        target = (FIRST, SECOND)[step]
        return {n: (target + 1) / 2 if n.startswith("out.") else target for n in self.full()}


def case(model: str, bias: str) -> Case:
    """The case of ``model`` (a key of MODELS) with biases ``bias`` (a key of BIAS)."""
    make, shape = MODELS[model]
    torch.manual_seed(0)
    net = make()
    initial = {n: t.clone() for n, t in net.state_dict().items()}
    gen = torch.Generator().manual_seed(1)
    trained = tuple(
        {n: (t + 0.5 * torch.randn(t.shape, generator=gen) * t.std()
             if t.is_floating_point() and t.dim() and n.endswith(("weight", "bias")) else t)
         for n, t in initial.items()}
        for _ in range(2))
    x = torch.randn(64, *shape, generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    return Case(make, initial, trained, x, y, *BIAS[bias])  # type: ignore[arg-type]


def run_case(c: Case, prune: Callable[..., Mask], strategy: str) -> tuple[Mask, Mask]:
    """The masks of the two steps of ``strategy`` with ``prune`` (the pruner's signature)."""
    first = prune(c.trained[0], c.full(), strategy=strategy, seed=SEED,
                  densities=c.densities(0), initial=c.initial)
    second = prune(c.trained[1], first, strategy=strategy, seed=SEED + 1,
                   densities=c.densities(1), initial=c.trained[0])
    return first, second


def digest(mask: Mask) -> str:
    """sha256 of the mask's names, shapes and bits, in name order (16 hex digits)."""
    h = hashlib.sha256()
    for n in sorted(mask):
        m = mask[n].bool().cpu().contiguous()
        h.update(f"{n}{tuple(m.shape)}".encode())
        h.update(m.flatten().to(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def pack(mask: Mask) -> dict[str, torch.Tensor]:
    """``mask`` as bit-packed uint8 tensors (for the stored masks of data-dependent scores)."""
    return {n: torch.from_numpy(np.packbits(m.bool().flatten().numpy())) for n, m in mask.items()}


def unpack(packed: dict[str, torch.Tensor], like: Mask) -> Mask:
    """The masks ``pack`` stored, shaped like ``like``."""
    return {n: torch.from_numpy(np.unpackbits(packed[n].numpy())[:m.numel()].copy())
            .bool().reshape(m.shape) for n, m in like.items()}


if __name__ == "__main__":  # python -m tests.pinned_masks: store the data-dependent masks
    from lth.pruning import STRATEGIES
    from lth.pruning import registry as reg
    from lth.pruning.pruner import Pruner, PrunerSettings

    torch.set_num_threads(1)
    stored = {}
    for model in MODELS:
        for bias in BIAS:
            c = case(model, bias)
            pruner = Pruner(c.make_model, c.x, c.y, BATCH_SIZE,
                            PrunerSettings(SCORE_BATCHES, SCORE_ITERATIONS, pool_bias=c.pool_bias))
            for strategy, (score, _) in STRATEGIES.items():
                if {"model", "batches"} & set(reg.get_score(score).needs):
                    masks = run_case(c, pruner, strategy)
                    stored[f"{model}/{bias}/{strategy}"] = [pack(m) for m in masks]
    torch.save(stored, DATA_MASKS)
    print(f"{len(stored)} cases -> {DATA_MASKS}")
