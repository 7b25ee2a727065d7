"""Mid-round checkpoints: everything needed to continue a round bit-identically.

A checkpoint holds the model and optimizer states, the loop's ``TrainState`` (iteration, loss
accumulator, evaluations so far) and every RNG state (torch CPU, CUDA when present, numpy,
Python). The learning rate and the batches are pure functions of the iteration, so the
iteration is their whole state. Only tensors, numbers, strings, lists and dicts are stored,
so the file loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lth.errors import CheckpointError
from lth.train import TrainState

FORMAT = 1


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


def pack(round_index: int, span: tuple[int, int], state: TrainState, model: nn.Module,
         optimizer: torch.optim.Optimizer, wall_s: float) -> dict[str, Any]:
    """The checkpoint of round ``round_index`` (training ``span`` = (start, end) iterations)."""
    return {
        "format": FORMAT, "round": round_index, "span": list(span), "wall_s": wall_s,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "train": {"it": state.it, "loss_sum": state.loss_sum.detach().cpu(),
                  "steps": state.steps, "last_loss": state.last_loss, "evals": state.evals},
        "rng": rng_state(),
    }


def unpack(ckpt: Any, path: Path, round_index: int, span: tuple[int, int], model: nn.Module,
           optimizer: torch.optim.Optimizer) -> tuple[TrainState, float]:
    """Restore model, optimizer and RNGs from ``ckpt``; returns the loop state and the wall
    time spent so far. CheckpointError if ``ckpt`` is not a checkpoint of this round."""
    fix = f"delete it to restart round {round_index} from its beginning"
    try:
        if ckpt["format"] != FORMAT or ckpt["round"] != round_index:
            raise CheckpointError(f"{path} is not a checkpoint of round {round_index}: {fix}")
        if list(ckpt["span"]) != list(span):
            raise CheckpointError(f"{path} covers iterations {ckpt['span']}, the round "
                                  f"{list(span)}: {fix}")
        t = ckpt["train"]
        state = TrainState(int(t["it"]), t["loss_sum"], int(t["steps"]),
                           float(t["last_loss"]), list(t["evals"]))
        if not span[0] < state.it < span[1]:
            raise CheckpointError(f"{path} is at iteration {state.it}, outside the round: {fix}")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        set_rng_state(ckpt["rng"])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path} does not fit this run ({reason}): {fix}") from None
    return state, float(ckpt.get("wall_s", 0.0))
