"""Early-bird detection during round 0 (You et al. 2020), as loop hooks of the dense round.

Every ``early_bird_every`` iterations the mask that pruning the current weights to round 1's
density gives is drawn with the run's pruner (weight masks; with ``prune.granularity=channel``
the channel pruner's, so whole channels) and fed to ``lth.measure.early_bird.EarlyBird``.
Round 0's record gets ``early_bird_iter`` (null if the window never settled) and
``round_0/early_bird.json`` the distance at each point. The detector's window travels in the
round's checkpoints, so a resumed round 0 detects exactly as an uninterrupted one. With
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

Hook = Callable[[nn.Module], None]


def _then(first: Hook | None, second: Hook) -> Hook:
    """``first`` (if any), then ``second``, as one hook of the same iteration."""
    if first is None:
        return second

    def both(model: nn.Module) -> None:
        first(model)
        second(model)
    return both


def early_bird_mask(store: RunStore, model: nn.Module) -> Mask | None:
    """The mask stored at round 0's early-bird point (checked to fit ``model``), or None if
    round 0 never settled."""
    path = store.early_bird_mask_path
    if not path.exists():
        return None
    mask = store.load_tensors(path)
    check_mask(model, mask, str(path))
    return mask


class EarlyBirdTracker:
    """Round 0's detector: hooks at its iterations, its state for checkpoints."""

    def __init__(self, states: RunStates, pruner: Callable[..., Mask],
                 extra: dict[str, Any]) -> None:
        self.states, self.pruner, self.extra = states, pruner, extra
        self.detector = EarlyBird(states.settings.early_bird_threshold)
        self.initial: dict[str, torch.Tensor] | None = None  # init.pt, read at the first draw
        extra["early_bird_iter"] = None

    def add_hooks(self, hooks: dict[int, Hook], start: int, end: int) -> None:
        """A hook every ``early_bird_every`` iterations of ``(start, end]``, run after any hook
        ``hooks`` has at that iteration (e.g. saving the rewind point)."""
        every = self.states.settings.early_bird_every
        for it in range(start + every, end + 1, every):
            hooks[it] = _then(hooks.get(it), lambda m, it=it: self.observe(it, m))

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

    def observe(self, it: int, model: nn.Module) -> None:
        """Draw the mask of iteration ``it``; note the early-bird point when it settles."""
        store, mask = self.states.store, self.draw(model)
        if self.detector.add(it, mask):
            self.extra["early_bird_iter"] = it
            if self.states.settings.early_bird_ticket:
                store.save_tensors(store.early_bird_mask_path, mask)
        store.write_text(store.round_dir(0) / "early_bird.json", json.dumps({
            "threshold": self.detector.threshold, "window": self.detector.window,
            "early_bird_iter": self.detector.found_iter, "points": self.detector.points}))

    def state(self) -> dict[str, Any]:
        """The detector's window and points, for round 0's checkpoint."""
        d = self.detector
        return {"masks": d.masks, "points": d.points,
                "found_iter": -1 if d.found_iter is None else d.found_iter}

    def load(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint's ``state()``."""
        d = self.detector
        d.masks, d.points = list(state["masks"]), list(state["points"])
        d.found_iter = None if state["found_iter"] < 0 else int(state["found_iter"])
        self.extra["early_bird_iter"] = d.found_iter
