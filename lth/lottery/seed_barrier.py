"""The error barrier between two stored runs' networks, before and after weight matching.

For a round k both runs completed, B's trained weights of round k are aligned to A's (Git
Re-Basin's weight matching, ``lth.lottery.pairs.MatchOptions``) and the error along the
straight paths A -> B and A -> B aligned is evaluated on the test set and a fixed training
subset (``lth.permute.barrier``; BatchNorm statistics recomputed per α on that subset for
models with BatchNorm), each network with its own zeros (sparse rounds: no mask is imposed
on the path). Stored in B's run directory: the permutation in
``round_<k>/barrier/<key>.perm.pt``, the curves in ``round_<k>/barrier/<key>.json`` and one
record in ``barrier.jsonl``, written last (a stored key is skipped). Nothing is trained.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from lth.errors import ConfigError
from lth.lottery.driver import Lottery, Record
from lth.lottery.instability import train_subset
from lth.lottery.pairs import MatchOptions, OtherRun, pair_key, stored_perm
from lth.measure.interpolate import alpha_grid, has_batchnorm
from lth.permute import perm_spec, weight_matching
from lth.permute.barrier import aligned_barrier
from lth.store import RunStore

KIND = "barrier"


@dataclass(frozen=True)
class BarrierOptions:
    """The path's α points, training-subset size, BatchNorm reset, and the matching."""

    alpha_points: int = 30
    train_samples: int = 1000
    bn_reset: bool | None = None  # None: on when the model has BatchNorm
    match: MatchOptions = field(default_factory=MatchOptions)

    def __post_init__(self) -> None:
        alpha_grid(self.alpha_points)
        if self.train_samples < 1:
            raise ConfigError(f"train_samples={self.train_samples} must be at least 1")


def barrier_key(other: OtherRun, store: RunStore, k: int, options: BarrierOptions) -> str:
    """What names the analysis of ``other`` against the run ``store``: both runs' hashes,
    the round, the path and the matching."""
    return pair_key({"kind": KIND, "run_a": other.hash, "run_b": store.root.name,
                     "round": k, "alpha_points": options.alpha_points,
                     "train_samples": options.train_samples, "bn_reset": options.bn_reset,
                     **options.match.fields()})


def pending_barriers(other: OtherRun, store: RunStore, rounds: list[int],
                     options: BarrierOptions) -> list[int]:
    """The rounds whose barrier to ``other`` is not stored in ``store`` yet."""
    done = {r["key"] for r in store.read_barriers()}
    return [k for k in rounds if barrier_key(other, store, k, options) not in done]


def barrier_metrics(record: Record) -> dict:
    """The W&B row: ``round`` and ``barrier/<A's hash>/<metric>``."""
    keys = ("barrier_test_before", "barrier_test_after", "barrier_train_before",
            "barrier_train_after")
    return {"round": record["round"],
            **{f"barrier/{record['run_a_hash']}/{key}": record[key] for key in keys}}


def run_barrier(lottery: Lottery, other: OtherRun, k: int, options: BarrierOptions) -> Record:
    """Align B's (``lottery``'s) round ``k`` to A's, evaluate both paths, store the record."""
    began, store = time.perf_counter(), lottery.store
    key = barrier_key(other, store, k, options)
    model = lottery.states.initial_model()
    a = lottery.states.load_state(model, other.store.final_path(k))
    b = lottery.states.load_state(model, store.final_path(k))
    m = options.match
    perm = stored_perm(store, k, KIND, key, lambda: weight_matching(
        perm_spec(model), a, b, max_iter=m.max_iter, seed=m.seed))
    train = train_subset(lottery, options.train_samples)
    bn = has_batchnorm(model) if options.bn_reset is None else options.bn_reset
    size = lottery.settings.batch_size
    bn_batches = ([train[0][i:i + size] for i in range(0, train[0].shape[0], size)]
                  if bn and has_batchnorm(model) else None)
    test = (lottery.data.x_test, lottery.data.y_test)
    paths = aligned_barrier(model, a, b, alpha_grid(options.alpha_points), test=test,
                            train=train, bn_batches=bn_batches, perm=perm)
    store.write_text(store.barrier_curve_path(k, key), json.dumps({
        "alpha": paths.before.alphas, "alpha_weighs": "run_a", "bn_reset": paths.before.bn_reset,
        **{f"{split}_err_{when}": getattr(c, f"{split}_err")
           for when, c in (("before", paths.before), ("after", paths.after))
           for split in ("test", "train")}}))
    a_record = next(r for r in other.store.read_metrics() if r["round"] == k)
    b_record = next(r for r in store.read_metrics() if r["round"] == k)
    record: Record = {
        "round": k, "key": key, "run_a": other.identity, "run_a_hash": other.hash,
        "density_a": a_record["density"], "density_b": b_record["density"],
        "barrier_test_before": paths.before.barrier_test,
        "barrier_test_after": paths.after.barrier_test,
        "barrier_train_before": paths.before.barrier_train,
        "barrier_train_after": paths.after.barrier_train,
        "test_err_a": paths.before.test_err[-1], "test_err_b": paths.before.test_err[0],
        "alpha_points": options.alpha_points, "train_samples": train[0].shape[0],
        "bn_reset": paths.before.bn_reset, **m.fields(),
        "wall_s": round(time.perf_counter() - began, 3),
    }
    store.append_barrier(record)
    lottery.sink.log_round(barrier_metrics(record))
    return record
