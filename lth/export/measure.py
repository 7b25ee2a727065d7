"""What a deployed model costs: parameters, MACs, file size and ONNX Runtime CPU latency.

MACs are counted in lth's one convention (``lth.models.macs.CONVENTION``), so an export's
``macs_dense``/``macs_sparse`` are the round's own numbers in ``metrics.jsonl``.

Latency is the median wall time of ``session.run`` over many repeats, after warm-up runs that
are not counted. ``interleaved_latency`` times several models in turns (A, B, C, A, B, C, ...)
so that a busy, shared machine slows them all alike and their ratios stay meaningful.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lth.models.macs import count_macs


@dataclass(frozen=True)
class ModelCost:
    """Size of a PyTorch model: parameters, nonzero parameters, and MACs per sample in lth's
    one convention (``lth.models.macs``, as ``metrics.jsonl``): every weight, and only the
    unpruned ones."""

    params: int
    nonzero: int
    macs_dense: int
    macs_sparse: int


def model_cost(model: nn.Module, example_input: torch.Tensor,
               mask: Mapping[str, torch.Tensor] | None = None) -> ModelCost:
    """Parameters, nonzero parameters and MACs of one forward pass on ``example_input``
    [1, *input_shape]; ``macs_sparse`` counts the weights ``mask`` keeps (all without one)."""
    params = sum(p.numel() for p in model.parameters())
    nonzero = sum(int((p != 0).sum()) for p in model.parameters())
    macs = count_macs(model.cpu(), example_input.cpu(), mask)
    return ModelCost(params=params, nonzero=nonzero, macs_dense=macs.dense,
                     macs_sparse=macs.sparse)


def _time_runs(sess, feed: dict[str, np.ndarray], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - start)
    return times


def interleaved_latency(sessions: Mapping[str, object], batch: np.ndarray, *, rounds: int = 10,
                        repeats: int = 5, warmup: int = 3) -> dict[str, float]:
    """Median latency in milliseconds of each ONNX Runtime session on ``batch`` [B, ...].

    Each session first runs ``warmup`` times untimed; then ``rounds`` turns over all sessions
    each time ``repeats`` runs, so every median is over ``rounds * repeats`` runs.
    """
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    feeds = {k: {s.get_inputs()[0].name: batch} for k, s in sessions.items()}  # type: ignore[attr-defined]
    for key, sess in sessions.items():
        _time_runs(sess, feeds[key], warmup)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(rounds):
        for key, sess in sessions.items():
            times[key] += _time_runs(sess, feeds[key], repeats)
    return {k: 1000.0 * statistics.median(v) for k, v in times.items()}


def batch_latency(sess, x: np.ndarray, batch_sizes: tuple[int, ...], *, repeats: int = 50,
                  warmup: int = 5) -> dict[str, float]:
    """``batch_<B>`` -> median ONNX Runtime latency in milliseconds of one session on the first
    B samples of ``x`` [N, ...] (B capped at N), over ``repeats`` timed runs after ``warmup``
    untimed ones."""
    out = {}
    for b in batch_sizes:
        batch = x[:max(1, min(b, len(x)))]
        out[f"batch_{len(batch)}"] = interleaved_latency({"m": sess}, batch, rounds=repeats,
                                                         repeats=1, warmup=warmup)["m"]
    return out
