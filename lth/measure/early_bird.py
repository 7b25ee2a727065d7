"""Early-bird tickets (You et al. 2020): when during dense training does the mask settle?

At the start of round 0 and every ``analysis.early_bird_every`` iterations after, the mask
that pruning the current weights to round 1's density would give is drawn; the newest mask's
normalized Hamming distance to each of the previous ``window − 1`` masks is recorded, and the
early-bird point is the first iteration where the window is full and no distance exceeds the
threshold. As in the reference code (GATECH-EIC/Early-Bird-Tickets, ``EarlyBird`` in
``main.py``): a window of 5 masks, the mask of the initial weights the first of them, a
threshold of 0.1 that a distance of exactly 0.1 passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lth.errors import ConfigError
from lth.pruning import Mask

WINDOW = 5


def check_threshold(threshold: float) -> float:
    """``threshold`` if in (0, 1), else ConfigError naming the key."""
    if not 0 < threshold < 1:
        raise ConfigError(f"analysis.early_bird_threshold={threshold} must be in (0, 1): a "
                          "normalized Hamming distance (the paper uses 0.1)")
    return threshold


def mask_distance(a: Mask, b: Mask) -> float:
    """Normalized Hamming distance of two masks over all their entries."""
    differ = sum(int((a[n] != b[n]).sum()) for n in a)
    return differ / max(1, sum(a[n].numel() for n in a))


@dataclass
class EarlyBird:
    """The running window of masks and the first iteration where it settled."""

    threshold: float = 0.1
    window: int = WINDOW
    masks: list[Mask] = field(default_factory=list)  # the newest window - 1 masks
    points: list[dict[str, float | None]] = field(default_factory=list)  # iter, max distance
    found_iter: int | None = None

    def add(self, it: int, mask: Mask) -> bool:
        """Take the mask of iteration ``it``; True the first time the window has settled."""
        mask = {n: m.detach().bool().cpu().clone() for n, m in mask.items()}
        distances = [mask_distance(mask, old) for old in self.masks]
        self.masks = [*self.masks, mask][-(self.window - 1):]  # the older ones of the next window
        # max_distance: the largest distance to the window's older masks (None for the first)
        self.points.append({"iter": it, "max_distance": max(distances, default=None)})
        if (self.found_iter is None and len(distances) >= self.window - 1
                and max(distances) <= self.threshold):
            self.found_iter = it
            return True
        return False
