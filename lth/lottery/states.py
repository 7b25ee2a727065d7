"""The stored states a run's rounds and branches start from: init, rewind point, round weights
and masks, and what round k's mask is pruned from.

Rounds (``lth.lottery.driver``), controls, instability copies and early-bird detection all
start from these; they need the store, the settings and how to build the model, not the
driver, so none of them imports it.

What round k's mask is pruned from (``PruneInputs``): the round's weights, the mask they are
pruned within, and the weights the scored round started from (Zhou et al.'s criteria compare
the two). IMP prunes round k-1's trained weights within its mask; with ``at_init`` (pruning at
initialisation: SNIP, GraSP, SynFlow, ...) round k prunes the weights it starts from (the
initialisation, or the rewind point) from the dense mask.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lth.errors import CheckpointError
from lth.lottery.settings import LotterySettings
from lth.pruning import Mask, check_mask, full_mask
from lth.store import RunStore
from lth.train import Span, constant_schedule
from lth.train.schedule import LRFactor


@dataclass(frozen=True)
class PruneInputs:
    """What round k's mask is pruned from: ``weights`` within ``mask``; ``initial`` the
    weights the scored weights' round started from (equal to ``weights`` at init)."""

    weights: dict[str, torch.Tensor]
    mask: Mask
    initial: dict[str, torch.Tensor]


@dataclass(frozen=True)
class RunStates:
    """One run's stored start states, checked against the model they are loaded into."""

    store: RunStore
    settings: LotterySettings
    make_model: Callable[[], nn.Module]
    lr_factor: LRFactor
    device: torch.device

    def load_state(self, model: nn.Module, path: Path) -> dict[str, torch.Tensor]:
        """The tensors of ``path``, checked to fit ``model`` name by name and shape by shape."""
        state = self.store.load_tensors(path)
        expected = {n: tuple(t.shape) for n, t in model.state_dict().items()}
        if {n: tuple(t.shape) for n, t in state.items()} != expected:
            odd = sorted(set(state).symmetric_difference(expected)) or sorted(
                n for n in state if tuple(state[n].shape) != expected[n])
            raise CheckpointError(
                f"{path} does not match the model (layers {', '.join(odd[:3])} differ): it was "
                "made for another model; delete the run directory or choose the matching model")
        return state

    def load_mask(self, model: nn.Module, k: int) -> Mask:
        """The ticket's stored mask of round ``k``, checked to fit ``model``."""
        path = self.store.mask_path(k)
        mask = self.store.load_tensors(path)
        check_mask(model, mask, str(path))
        return mask

    def initial_model(self) -> nn.Module:
        """A fresh model at the run's initialisation (init.pt, saved on first use)."""
        torch.manual_seed(self.settings.init_seed)
        model = self.make_model().to(self.device)
        if self.store.init_path.exists():
            model.load_state_dict(self.load_state(model, self.store.init_path))
        else:
            self.store.save_tensors(self.store.init_path, model.state_dict())
        return model

    def start_weights(self, k: int, model: nn.Module,
                      final: dict[str, torch.Tensor] | None = None) -> Span:
        """Load round k's (>= 1) start weights into ``model``, unmasked; its span.

        ``final`` is round k-1's trained state when the caller has it already. Branches start
        from here too, so they replay exactly the ticket's span.
        """
        s = self.settings
        if s.retrain == "weight_rewind":
            model.load_state_dict(self.load_state(model, self.store.rewind_path))
            return Span(s.rewind_iter, s.iterations, self.lr_factor)
        if final is None:
            final = self.load_state(model, self.store.final_path(k - 1))
        model.load_state_dict(final)
        if s.retrain == "lr_rewind":
            return Span(s.rewind_iter, s.iterations, self.lr_factor)
        final_lr = constant_schedule(self.lr_factor(s.iterations - 1))
        return Span(s.iterations, s.iterations + s.finetune_iters, final_lr)

    def round_start_state(self, k: int, model: nn.Module) -> dict[str, torch.Tensor]:
        """The weights round ``k`` started from (init.pt for round 0); ``model`` is scratch."""
        if k == 0:
            return self.load_state(model, self.store.init_path)
        self.start_weights(k, model)
        return {n: t.clone() for n, t in model.state_dict().items()}

    def prune_inputs(self, k: int, model: nn.Module) -> PruneInputs:
        """What round ``k``'s (>= 1) mask is pruned from (``model`` is scratch)."""
        if self.settings.at_init:
            start = self.round_start_state(k, model)
            return PruneInputs(start, full_mask(model, self.settings.include_bias), start)
        initial = self.round_start_state(k - 1, model)
        return PruneInputs(self.load_state(model, self.store.final_path(k - 1)),
                           self.load_mask(model, k - 1), initial)
