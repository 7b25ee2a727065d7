"""Several trainings of one experiment in one process, each round's trained together.

Each seed is a whole ``Lottery`` (own init, data order, pruning seed, masks, run directory and
sink), so each run directory is laid out exactly as a single run's and resumes as one. What is
shared is the training: round k's members, the tickets of every seed that lacks round k and
the controls of round k of every seed (each control a member), train as one replica group
through the one loop core (``lth.lottery.span.train``: the single run's evaluation points and
mid-round checkpoints, each member's in its own run directory in the single run's format).
The instability copies of a round form one group too. A group resumes when every member has a
checkpoint at the same iteration, and starts again otherwise. A group of one seed
(``group_branches``) trains a round's ticket and controls together.

Members differ from their single runs only in the batched kernels (see
``lth.train.replicas``): initial weights, masks, batches, learning rates and evaluation points
are exactly the single run's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lth.errors import TrainingError
from lth.lottery.controls import check_controls, control_start
from lth.lottery.driver import Lottery, Record, RoundStart
from lth.lottery.instability import (
    InstabilityOptions,
    analyse,
    copy_start,
    missing_copies,
    pending_instability,
)
from lth.store import RunStore
from lth.train import TrainResult

RoundCallback = Callable[[int, Record], None]  # (replica index, round or branch record)


def train_group(pairs: Sequence[tuple[Lottery, RoundStart]], desc: str) -> list[TrainResult]:
    """Train begun rounds or branches of several lotteries (seeds) as one replica group."""
    first = pairs[0][0]
    return first.train_members([lot.member(st) for lot, st in pairs],
                               f"{desc} x{len(pairs)}")


def missing_controls(lottery: Lottery, names: Sequence[str], k: int) -> list[str]:
    """The controls of round ``k`` not yet stored for ``lottery``."""
    done = {r["control"] for r in lottery.store.read_controls() if r["round"] == k}
    return [n for n in names if n not in done]


def has_work(store: RunStore, last: int, controls: Sequence[str], instability: bool) -> bool:
    """Whether a run has rounds up to ``last``, controls of its stored rounds or (with
    ``instability``) instability analyses still to train."""
    if store.pending_rounds(last):
        return True
    done = {(r["round"], r["control"]) for r in store.read_controls()}
    if any((r["round"], n) not in done for r in store.read_metrics()
           if 1 <= r["round"] <= last for n in controls):
        return True
    return instability and bool(pending_instability(store))


@dataclass
class ReplicaLottery:
    """K lotteries that differ only in their seed, sharing one dataset, run side by side;
    ``controls`` train beside every round k >= 1 as members of the round's group,
    ``instability`` adds the analysis of every round (its copies grouped by round)."""

    lotteries: Sequence[Lottery]
    controls: tuple[str, ...] = ()
    instability: InstabilityOptions | None = None
    # replica index -> why its seed stopped (a non-finite loss): the others go on without it
    failed: dict[int, str] = field(default_factory=dict)

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
        self.controls = check_controls(self.controls)

    def pending_rounds(self) -> list[int]:
        """Rounds that some replica has yet to complete, or whose controls some replica
        lacks, in order."""
        last = self.lotteries[0].settings.last_round
        rounds = set().union(*(lot.pending_rounds() for lot in self.healthy()))
        for lot in self.healthy():
            rounds |= {r["round"] for r in lot.store.read_metrics()
                       if 1 <= r["round"] <= last and missing_controls(lot, self.controls,
                                                                       r["round"])}
        return sorted(rounds)

    def healthy(self) -> list[Lottery]:
        """The replicas whose seed has not diverged in this process."""
        return [lot for i, lot in enumerate(self.lotteries) if i not in self.failed]

    def _members(self, k: int) -> list[tuple[int, Lottery, RoundStart]]:
        """Round ``k``'s tickets of the replicas that lack it, then its missing controls
        (none of a seed that diverged)."""
        tickets = {i: lot.begin_round(k) for i, lot in enumerate(self.lotteries)
                   if i not in self.failed and k in lot.pending_rounds()}
        out = [(i, self.lotteries[i], st) for i, st in tickets.items()]
        if k >= 1:
            for i, lot in enumerate(self.lotteries):
                if i in self.failed:
                    continue
                for name in missing_controls(lot, self.controls, k):
                    out.append((i, lot, control_start(lot, k, name, tickets.get(i))))
        return out

    def run_round(self, k: int) -> list[tuple[int, Record]]:
        """Train round ``k``'s members as one group; (replica index, record) of each, the
        tickets' first."""
        while members := self._members(k):
            try:
                results = train_group([(lot, st) for _, lot, st in members], f"round {k}")
            except TrainingError as e:
                self._fail(k, {members[j][0] for j in e.members}, e)
                continue  # the others again, from their checkpoints
            return [(i, lot.finish_round(st, result))
                    for (i, lot, st), result in zip(members, results)]
        return []

    def _fail(self, k: int, seeds: set[int], error: TrainingError) -> None:
        """Leave the diverged replicas ``seeds`` behind, each run recording why; re-raise
        when nothing would be left to train (one seed, or a failure naming no member)."""
        if not seeds or len(self.lotteries) == 1 or seeds >= set(range(len(
                self.lotteries))) - set(self.failed):
            raise error
        for i in sorted(seeds):
            self.failed[i] = str(error)
            self.lotteries[i].store.note_failure(k, str(error))

    def run_instability(self, k: int) -> list[tuple[int, Record]]:
        """Round ``k``'s missing instability copies of every replica as one group, then each
        replica's analysis; (replica index, instability record)."""
        assert self.instability is not None
        lots = [(i, lot) for i, lot in enumerate(self.lotteries)
                if i not in self.failed and k in lot.store.completed_rounds() and not any(
                    r["round"] == k for r in lot.store.read_instability())]
        members = [(i, lot, copy_start(lot, k, c)) for i, lot in lots
                   for c in missing_copies(lot, k)]
        if members:
            results = train_group([(lot, st) for _, lot, st in members], f"round {k} copies")
            for (_, lot, st), result in zip(members, results):
                lot.finish_round(st, result)
        return [(i, analyse(lot, k, self.instability)) for i, lot in lots]

    def run(self, on_round: RoundCallback | None = None,
            on_instability: RoundCallback | None = None) -> list[list[Record]]:
        """Run every pending round (with its controls), then the instability analyses;
        returns each replica's round records, stored ones included."""
        for lot in self.lotteries:
            lot.remove_stale_checkpoints()  # a seed left behind resumes like any other
        for k in self.pending_rounds():
            for i, record in self.run_round(k):
                if on_round is not None:
                    on_round(i, record)
        if self.instability is not None:
            rounds = sorted({r["round"] for lot in self.lotteries
                             for r in lot.store.read_metrics()})
            for k in rounds:
                for i, record in self.run_instability(k):
                    if on_instability is not None:
                        on_instability(i, record)
        return [lot.store.read_metrics() for lot in self.lotteries]
