"""Mid-training checkpoints: everything needed to continue a span bit-identically.

A checkpoint holds the model and optimizer states, the loop's ``TrainState`` (iteration, loss
accumulator, evaluations so far, the current mask and the mask update's state) and every RNG
state (torch CPU, CUDA when present, numpy, Python). The learning rate and the batches are
pure functions of the iteration, so the iteration is their whole state. Only tensors,
numbers, strings, lists and dicts are stored, so the file loads with
``torch.load(weights_only=True)``. A replica's checkpoint (replicas=K) has the format of its
single run's: either can resume the other. Format 1 (before masks were training state) has
no mask and no update state: it resumes with the span's start mask.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lth.errors import CheckpointError
from lth.train.core import TrainState

FORMAT = 2
READABLE = (1, 2)  # format 1: no mask, no update state (the start mask holds)


@dataclass
class Checkpoint:
    """A round's state at ``state.it``: loop, model, optimizer, RNGs, wall time so far."""

    state: TrainState
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    wall_s: float
    extra: dict[str, Any] = field(default_factory=dict)  # what the caller adds (none yet)


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and plain lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` returned."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def capture(state: TrainState, model: nn.Module, optimizer_state: dict[str, Any],
            wall_s: float, extra: dict[str, Any] | None = None) -> Checkpoint:
    """The checkpoint of ``model`` now, with the current RNG states."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return Checkpoint(state, weights, optimizer_state, rng_state(), wall_s, extra or {})


def pack(round_index: int, span: tuple[int, int], ckpt: Checkpoint) -> dict[str, Any]:
    """The stored form of round ``round_index``'s checkpoint (``span`` = (start, end))."""
    s = ckpt.state
    mask = None if s.mask is None else {n: m.detach().cpu() for n, m in s.mask.items()}
    return {
        "format": FORMAT, "round": round_index, "span": list(span), "wall_s": ckpt.wall_s,
        "model": ckpt.model, "optimizer": ckpt.optimizer,
        "train": {"it": s.it, "loss_sum": s.loss_sum.detach().cpu(), "steps": s.steps,
                  "last_loss": s.last_loss, "evals": s.evals, "mask": mask,
                  "update": s.update},
        "rng": ckpt.rng, **({"extra": ckpt.extra} if ckpt.extra else {}),
    }


def _fix(round_index: int) -> str:
    return f"delete it to restart round {round_index} from its beginning"


def _reason(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def unpack(obj: Any, path: Path, round_index: int, span: tuple[int, int]) -> Checkpoint:
    """The checkpoint stored in ``obj``; CheckpointError unless it is one of this round."""
    fix = _fix(round_index)
    try:
        if obj["format"] not in READABLE or obj["round"] != round_index:
            raise CheckpointError(f"{path} is not a checkpoint of round {round_index}: {fix}")
        if list(obj["span"]) != list(span):
            raise CheckpointError(f"{path} covers iterations {obj['span']}, the round "
                                  f"{list(span)}: {fix}")
        t, extra = obj["train"], dict(obj.get("extra", {}))
        update = dict(t.get("update") or {})
        if not update and "early_bird" in extra:  # format 1: round 0's early-bird window
            update = extra.pop("early_bird")
        mask = t.get("mask")
        if mask is not None and not all(torch.is_tensor(m) for m in mask.values()):
            raise ValueError("its mask is not a tensor dict")
        state = TrainState(int(t["it"]), t["loss_sum"], int(t["steps"]),
                           float(t["last_loss"]), list(t["evals"]),
                           None if mask is None else dict(mask), update)
        if not span[0] < state.it < span[1]:
            raise CheckpointError(f"{path} is at iteration {state.it}, outside the round: {fix}")
        return Checkpoint(state, dict(obj["model"]), obj["optimizer"], obj["rng"],
                          float(obj.get("wall_s", 0.0)), extra)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path} does not fit this run ({_reason(e)}): {fix}") from None


@contextmanager
def fitting(problem: str, fix: str) -> Iterator[None]:
    """Turn the errors of loading checkpoint states into one CheckpointError:
    ``<problem> (<reason>): <fix>``."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        raise CheckpointError(f"{problem} ({_reason(e)}): {fix}") from None


def restore(ckpt: Checkpoint, path: Path, round_index: int, model: nn.Module,
            load_optimizer: Callable[[dict[str, Any]], None]) -> None:
    """Load ``ckpt`` into ``model``, the optimizer and the RNGs; CheckpointError if it does
    not fit them."""
    with fitting(f"{path} does not fit this run", _fix(round_index)):
        model.load_state_dict(ckpt.model)
        load_optimizer(ckpt.optimizer)
        set_rng_state(ckpt.rng)


SCALER_KEY = "grad_scaler"  # fp16's GradScaler state, kept beside the optimizer's


def optimizer_state(optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler | None) -> dict[str, Any]:
    """The optimizer's state dict, with the GradScaler's state (scale, growth tracker)."""
    state = optimizer.state_dict()
    if scaler is not None:
        state = {**state, SCALER_KEY: scaler.state_dict()}
    return state


def load_optimizer(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
                   state: dict[str, Any]) -> None:
    """Restore what ``optimizer_state`` returned (KeyError when the scaler's is missing)."""
    optimizer.load_state_dict({k: v for k, v in state.items() if k != SCALER_KEY})
    if scaler is not None:
        scaler.load_state_dict(state[SCALER_KEY])
