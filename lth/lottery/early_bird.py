"""Early-bird detection during round 0 (You et al. 2020), as a mask update that only observes.

At iteration ``start`` (the initial weights) and every ``early_bird_every`` iterations after,
before the step of that iteration, as the reference code draws a mask before each epoch's
training, the mask that pruning the current weights to round 1's density gives is drawn with
the run's pruner (weight masks; with ``prune.granularity=channel`` the channel pruner's, so
whole channels) and fed to ``lth.measure.early_bird.EarlyBird``. Round 0's record gets
``early_bird_iter`` (null if the window never settled) and ``round_0/early_bird.json`` the
distance at each point. The detector's window is the update's state, so it travels in the
round's checkpoints and a resumed round 0 detects exactly as an uninterrupted one. With
``early_bird_ticket`` the mask drawn at the early-bird point is stored
(``round_0/early_bird_mask.pt``) and round 1 uses it instead of pruning round 0's final weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from lth.lottery.states import RunStates
from lth.measure.early_bird import EarlyBird
from lth.pruning import Mask, check_mask, full_mask, layer_rates
from lth.store import RunStore
from lth.train.masking import MaskChange, UpdateContext


def early_bird_mask(store: RunStore, model: nn.Module) -> Mask | None:
    """The mask stored at round 0's early-bird point (checked to fit ``model``), or None if
    round 0 never settled."""
    path = store.early_bird_mask_path
    if not path.exists():
        return None
    mask = store.load_tensors(path)
    check_mask(model, mask, str(path))
    return mask


class EarlyBirdDetector:
    """Round 0's detector: due at its iterations, never changes the mask; its window is its
    state. ``extra`` is round 0's record extras (``early_bird_iter``)."""

    def __init__(self, states: RunStates, pruner: Callable[..., Mask], extra: dict[str, Any],
                 start: int, end: int) -> None:
        self.states, self.pruner, self.extra = states, pruner, extra
        self.detector = EarlyBird(states.settings.early_bird_threshold)
        self.iters = set(range(start, end, states.settings.early_bird_every))
        self.initial: dict[str, torch.Tensor] | None = None  # init.pt, read at the first draw
        extra["early_bird_iter"] = None

    def due(self, it: int) -> bool:
        return it in self.iters

    def draw(self, model: nn.Module) -> Mask:
        """Round 1's mask if the current weights of ``model`` were pruned now."""
        s, weights = self.states.settings, model.state_dict()
        if self.initial is None:  # round 1's pruner compares with round 0's start (criteria)
            self.initial = self.states.load_state(model, self.states.store.init_path)
        dense = full_mask(model, s.include_bias)
        rates = layer_rates(model, sorted(dense), s.rates)
        return self.pruner(weights, dense, strategy=s.strategy,
                           densities=s.round_densities(1, rates), seed=s.prune_seed(1),
                           initial=self.initial)

    def update(self, ctx: UpdateContext) -> MaskChange | None:
        """Draw the mask of iteration ``ctx.it``; note the early-bird point when it settles."""
        store, mask = self.states.store, self.draw(ctx.model)
        if self.detector.add(ctx.it, mask):
            self.extra["early_bird_iter"] = ctx.it
            if self.states.settings.early_bird_ticket:
                store.save_tensors(store.early_bird_mask_path, mask)
        store.write_text(store.round_dir(0) / "early_bird.json", json.dumps({
            "threshold": self.detector.threshold, "window": self.detector.window,
            "early_bird_iter": self.detector.found_iter, "points": self.detector.points}))
        return None

    def state_dict(self) -> dict[str, Any]:
        """The detector's window and points, for round 0's checkpoint."""
        d = self.detector
        return {"masks": d.masks, "points": d.points,
                "found_iter": -1 if d.found_iter is None else d.found_iter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``state_dict()``."""
        d = self.detector
        d.masks, d.points = list(state["masks"]), list(state["points"])
        d.found_iter = None if state["found_iter"] < 0 else int(state["found_iter"])
        self.extra["early_bird_iter"] = d.found_iter
