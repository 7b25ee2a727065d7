"""What sparse training costs in wall time: one RigL update against ΔT training iterations, and
SET/RigL trainings against a static sparse one, measured in interleaved turns.

    python -m scripts.bench_dst [--density 0.1] [--rounds 15] [--chunk 100] [--out F]

MNIST-1D's MLP 40-100-100-10 (``pai_mnist1d``'s network), batch 100, Adam, ERK densities, one
thread. Two measurements, each repeated ``--rounds`` times with the variants' order rotated
every round, each ratio the median over rounds of the two times in that round (a shared VM's
drifting speed slows both sides of a ratio alike):

- ``update``: one RigL update (the dense gradient of a batch, drop and grow in every layer,
  the new mask set with the weights and Adam state zeroed) against ``--chunk`` (ΔT) training
  iterations of the same stepper: the update's overhead as a fraction of a ΔT interval;
- ``training``: ``--chunk`` iterations of run_loop per turn, through the span from iteration
  ``k * chunk``, for static, SET and RigL (ΔT = ``--chunk``: one update per turn, at its
  start), the SET and RigL times over the static time.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from lth.data import BatchIterator, load_dataset
from lth.lottery.sparse import SparseTraining
from lth.models import MLP1D
from lth.pruning import full_mask
from lth.train.core import LoopOptions, Span, run_loop
from lth.train.loop import SingleStepper
from lth.train.masking import UpdateContext
from lth.train.schedule import constant_schedule
from lth.train.updates import sparse_settings


def stepper(method: str, density: float, data, total: int, chunk: int):  # noqa: ANN001, ANN201
    """A seeded model, Adam stepper and the method's start mask and update."""
    torch.manual_seed(0)
    model = MLP1D((40,), 10, hidden=[100, 100])
    s = sparse_settings(method, density, "erk", total, update_every=chunk, end=1.0)
    sparse = SparseTraining(s)
    mask = sparse.start_mask(full_mask(model), 0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batches = BatchIterator(data.x_train, data.y_train, 100, 0)
    return SingleStepper(model, opt, batches, mask), sparse.update(mask, 0)


def time_update(data, density: float, rounds: int, chunk: int) -> dict:  # noqa: ANN001
    """One RigL update against ``chunk`` steps, interleaved."""
    st, update = stepper("rigl", density, data, (rounds + 2) * chunk * 2, chunk)
    it, steps, updates = 0, [], []
    for r in range(rounds):
        for which in (("steps", "update") if r % 2 == 0 else ("update", "steps")):
            t0 = time.perf_counter()
            if which == "steps":
                for _ in range(chunk):
                    st.step(it, 1.0)
                    it += 1
                steps.append(time.perf_counter() - t0)
            else:
                ctx = UpdateContext(it, 0, st.masks()[0], st.model, st.optimizer_state(0),
                                    lambda it=it: st.dense_grads(it)[0])
                change = update.update(ctx)
                st.set_masks([change.mask])
                updates.append(time.perf_counter() - t0)
    ratios = [u / s for u, s in zip(updates, steps)]
    return {"chunk": chunk, "update_s": statistics.median(updates),
            "steps_s": statistics.median(steps), "update_over_chunk": statistics.median(ratios),
            "ratios": ratios}


def time_training(data, density: float, rounds: int, chunk: int) -> dict:  # noqa: ANN001
    """``chunk`` iterations per turn of static, SET and RigL, interleaved."""
    methods = ["static", "set", "rigl"]
    total = (rounds + 1) * chunk
    built = {m: stepper(m, density, data, total, chunk) for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    options = LoopOptions(eval_every=0, progress=False)
    for r in range(rounds):
        order = methods[r % 3:] + methods[:r % 3]
        for m in order:
            st, update = built[m]
            span = Span(r * chunk, (r + 1) * chunk, constant_schedule(1.0))
            t0 = time.perf_counter()
            run_loop(st, data, span, options, updates=None if update is None else [update])
            times[m].append(time.perf_counter() - t0)
    out = {m: statistics.median(v) for m, v in times.items()}
    for m in ("set", "rigl"):
        out[f"{m}_over_static"] = statistics.median(
            a / b for a, b in zip(times[m], times["static"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--out", type=Path)
    a = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist1d", val_size=500)
    result = {
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": 1, "density": a.density, "rounds": a.rounds,
        "update": time_update(data, a.density, a.rounds, a.chunk),
        "training": time_training(data, a.density, a.rounds, a.chunk),
    }
    u, t = result["update"], result["training"]
    print(f"one RigL update: {1e3 * u['update_s']:.2f} ms = {100 * u['update_over_chunk']:.1f}% "
          f"of {a.chunk} iterations ({1e3 * u['steps_s']:.1f} ms)")
    print(f"training {a.chunk} it/turn: static {1e3 * t['static']:.1f} ms, SET "
          f"{1e3 * t['set']:.1f} ms ({t['set_over_static']:.3f}x), RigL {1e3 * t['rigl']:.1f} ms "
          f"({t['rigl_over_static']:.3f}x)")
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
