"""Several seeds of one IMP experiment in one process, their rounds trained together.

Each seed is a whole ``Lottery`` (own init, data order, pruning seed, masks, run directory and
sink), so each run directory is laid out exactly as a single run's and resumes as one. Only
the training of a round is shared: a ``ReplicaStepper`` trains the round's K models through
the one loop core (``lth.train.core.run_loop``), with the single run's evaluation points and
mid-round checkpoints. Each seed's checkpoint goes to its own run directory in the single
run's format; a round resumes from them when every seed of the group has one at the same
iteration, and starts again otherwise. Rounds a seed has already completed are skipped for it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from lth.faults import kill_point
from lth.lottery.driver import Lottery, Record, RoundStart
from lth.train import Callbacks, TrainResult, TrainState, checkpoint, run_loop
from lth.train.checkpoint import Checkpoint
from lth.train.replicas import ReplicaStepper

RoundCallback = Callable[[int, Record], None]  # (replica index, round record)


def _run_hooks(it: int, starts: Sequence[RoundStart], models: list[nn.Module]) -> None:
    for start, model in zip(starts, models):
        if it in start.hooks:
            start.hooks[it](model)


@dataclass
class _Group:
    """One round of the replicas that lack it: their lotteries and begun rounds."""

    k: int
    lots: list[Lottery]
    starts: list[RoundStart]

    def checkpoints(self) -> list[Checkpoint] | None:
        """Every replica's checkpoint, all at one iteration; None (and the partial ones
        deleted) otherwise."""
        found = [lot.load_checkpoint(st) for lot, st in zip(self.lots, self.starts)]
        if all(c is not None for c in found) and len({c.state.it for c in found}) == 1:
            return found  # type: ignore[return-value]
        for lot in self.lots:  # a kill between the K writes: start the round again
            lot.store.remove(lot.store.checkpoint_path(self.k))
        return None

    def load_models(self, ckpts: list[Checkpoint]) -> None:
        """Each replica's weights and the RNG states (before the models are stacked)."""
        for lot, st, c in zip(self.lots, self.starts, ckpts):
            checkpoint.restore(c, lot.store.checkpoint_path(self.k), self.k, st.model,
                               lambda _: None)  # the stacked optimizer loads in resume()
            st.began -= c.wall_s

    def resume(self, stepper: ReplicaStepper, ckpts: list[Checkpoint]) -> list[TrainState]:
        """Restore the optimizer states; the loop states to continue from."""
        paths = ", ".join(str(lot.store.checkpoint_path(self.k)) for lot in self.lots)
        with checkpoint.fitting(f"the optimizer states of {paths} do not fit this run",
                                f"delete them to restart round {self.k} from its beginning"):
            stepper.load_optimizer_states([c.optimizer for c in ckpts])
        return [c.state for c in ckpts]

    def save(self, stepper: ReplicaStepper, states: list[TrainState]) -> None:
        models, optim = stepper.models(), stepper.optimizer_states()
        for lot, st, model, state, opt in zip(self.lots, self.starts, models, states, optim):
            wall = time.perf_counter() - st.began
            lot.save_checkpoint(st, checkpoint.capture(state, model, opt, wall))
        kill_point(f"checkpoint:{self.k}:{states[0].it}")


@dataclass
class ReplicaLottery:
    """K lotteries that differ only in their seed, sharing one dataset, run side by side."""

    lotteries: Sequence[Lottery]

    def __post_init__(self) -> None:
        if not self.lotteries:
            raise ValueError("ReplicaLottery needs at least one lottery")
        first = self.lotteries[0]
        for lot in self.lotteries[1:]:
            if dataclasses.replace(lot.settings, seed=first.settings.seed) != first.settings:
                raise ValueError("replicas must differ in their seed only")
            if lot.data is not first.data:
                raise ValueError("replicas must share one Dataset")
        if len({lot.store.root for lot in self.lotteries}) != len(self.lotteries):
            raise ValueError("replicas need one run directory each")

    def pending_rounds(self) -> list[int]:
        """Rounds that some replica has yet to complete, in order."""
        return sorted(set().union(*(lot.pending_rounds() for lot in self.lotteries)))

    def _train(self, group: _Group) -> list[TrainResult]:
        k, lots, starts = group.k, group.lots, group.starts
        first, s = lots[0], lots[0].settings
        ckpts = group.checkpoints()
        if ckpts:
            group.load_models(ckpts)
        stepper = ReplicaStepper([st.model for st in starts], first.data, first.make_optimizer,
                                 batch_size=s.batch_size,
                                 seeds=[lot.settings.data_seed for lot in lots],
                                 masks=[st.mask for st in starts])
        resume = group.resume(stepper, ckpts) if ckpts else None
        hooks = {it: (lambda models, it=it: _run_hooks(it, starts, models))
                 for it in {i for st in starts for i in st.hooks}}
        callbacks = Callbacks(
            hooks, on_eval=lambda j, it, point: lots[j].sink.log_curve(k, it, point),
            on_checkpoint=lambda states: group.save(stepper, states))
        options = dataclasses.replace(
            first.loop_options(starts[0], f"round {k} x{len(lots)}"),
            replica_names=tuple(f"seed {lot.settings.seed}" for lot in lots))
        results = run_loop(stepper, first.data, starts[0].span, options, callbacks, resume)
        stepper.models()  # the trained weights back into each replica's model
        return results

    def run_round(self, k: int) -> dict[int, Record]:
        """Train round ``k`` of every replica that lacks it; replica index -> its record."""
        index = [i for i, lot in enumerate(self.lotteries) if k in lot.pending_rounds()]
        if not index:
            return {}
        lots = [self.lotteries[i] for i in index]
        starts = [lot.begin_round(k) for lot in lots]
        span = starts[0].span
        if any((st.span.start, st.span.end) != (span.start, span.end) for st in starts):
            raise ValueError(f"round {k} spans differ between replicas")
        results = self._train(_Group(k, lots, starts))
        return {i: lot.finish_round(st, result)
                for i, lot, st, result in zip(index, lots, starts, results)}

    def run(self, on_round: RoundCallback | None = None) -> list[list[Record]]:
        """Run every pending round; returns each replica's records, stored ones included."""
        for lot in self.lotteries:
            lot.remove_stale_checkpoints()
        for k in self.pending_rounds():
            for i, record in self.run_round(k).items():
                if on_round is not None:
                    on_round(i, record)
        return [lot.store.read_metrics() for lot in self.lotteries]

