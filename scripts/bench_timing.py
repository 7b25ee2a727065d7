"""Timing for scripts/benchmark.py: marginal time per iteration, variants interleaved.

A variant is ``run(n) -> (wall_s, cpu_s)`` of n iterations (set-up excluded by the variant
itself). Its marginal time per iteration is ``(t(n2) - t(n1)) / (n2 - n1)``, so start-up,
the first and last evaluation and the round's files cancel. On a shared machine the variants
of one comparison are alternated (their order rotated every repeat) and each ratio is the
median of per-repeat ratios, so slow drifts in load hit both sides of a ratio alike.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Variant = Callable[[int], tuple[float, float]]


def clock(device: torch.device) -> tuple[float, float]:
    """(wall, process CPU) seconds now, after the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter(), time.process_time()


@dataclass
class Marginal:
    """Per-iteration marginal times of one variant, one entry per repeat (seconds)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def wall_us(self) -> float:
        return statistics.median(self.wall) * 1e6

    @property
    def cpu_us(self) -> float:
        return statistics.median(self.cpu) * 1e6

    def as_dict(self) -> dict[str, object]:
        return {"wall_us": round(self.wall_us, 2), "cpu_us": round(self.cpu_us, 2),
                "wall_us_each": [round(w * 1e6, 2) for w in self.wall],
                "cpu_us_each": [round(c * 1e6, 2) for c in self.cpu]}


def compare(variants: dict[str, Variant], n1: int, n2: int, repeats: int,
            warmup: int = 20) -> dict[str, Marginal]:
    """Marginal time per iteration of each variant, alternated and repeated."""
    names = list(variants)
    for name in names:
        variants[name](warmup)  # first-call costs: allocator, lazy init, kernel selection
    out = {name: Marginal() for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            w1, c1 = variants[name](n1)
            w2, c2 = variants[name](n2)
            out[name].wall.append((w2 - w1) / (n2 - n1))
            out[name].cpu.append((c2 - c1) / (n2 - n1))
    return out


def ratio(num: Marginal, den: Marginal, kind: str = "wall") -> float:
    """Median over repeats of num/den, paired by repeat (the pairs ran back to back)."""
    a, b = getattr(num, kind), getattr(den, kind)
    return statistics.median(x / y for x, y in zip(a, b))
