"""Learning-rate schedules as pure functions of the iteration.

A pure ``factor(it)`` lets a round start at any iteration (late rewinding, learning-rate
rewinding, resuming) and land on exactly the learning rate an uninterrupted run would have.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence

LRFactor = Callable[[int], float]


def step_schedule(
    milestones: Sequence[int], gamma: float = 0.1, warmup: int = 0
) -> LRFactor:
    """Multiply the base rate by ``gamma`` at each milestone (iterations); linear warmup first.

    During warmup (``it < warmup``) the factor rises linearly from 1/warmup to 1.
    """
    points = sorted(int(m) for m in milestones)

    def factor(it: int) -> float:
        value = gamma ** bisect_right(points, it)
        if warmup > 0 and it < warmup:
            value *= (it + 1) / warmup
        return value

    return factor


def constant_schedule(value: float) -> LRFactor:
    """The same factor at every iteration (fine-tuning at the final learning rate)."""
    return lambda it: value
