"""Several seeds of one IMP experiment in one process, their rounds trained together.

Each seed is a whole ``Lottery`` (own init, data order, pruning seed, masks, run directory and
sink), so each run directory is laid out exactly as a single run's and resumes as one. Only
the training of a round is shared: ``lth.train.replicas.train_replicas`` trains the round's
K models in one vmapped loop. Rounds a seed has already completed are skipped for that seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from lth.lottery.driver import Lottery, RoundStart
from lth.train.replicas import train_replicas

RoundCallback = Callable[[int, dict[str, Any]], None]  # (replica index, round record)


def _run_hooks(it: int, starts: Sequence[RoundStart], models: list[nn.Module]) -> None:
    for start, model in zip(starts, models):
        if it in start.hooks:
            start.hooks[it](model)


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

    def run_round(self, k: int) -> dict[int, dict[str, Any]]:
        """Train round ``k`` of every replica that lacks it; replica index -> its record."""
        group = [i for i, lot in enumerate(self.lotteries) if k in lot.pending_rounds()]
        if not group:
            return {}
        lots = [self.lotteries[i] for i in group]
        starts = [lot.begin_round(k) for lot in lots]
        span, s = starts[0].span, lots[0].settings
        if any((st.span["start"], st.span["end"]) != (span["start"], span["end"])
               for st in starts):
            raise ValueError(f"round {k} spans differ between replicas")
        hooks = {it: (lambda models, it=it: _run_hooks(it, starts, models))
                 for it in {i for st in starts for i in st.hooks}}
        results = train_replicas(
            [st.model for st in starts], lots[0].data, lots[0].make_optimizer,
            start_iter=span["start"], end_iter=span["end"], batch_size=s.batch_size,
            seeds=[lot.settings.data_seed for lot in lots], lr_factor=span["lr"],
            masks=[st.mask for st in starts], eval_every=s.eval_every, hooks=hooks,
            on_eval=lambda j, it, point: lots[j].sink.log_curve(k, it, point),
            progress=lots[0].progress, desc=f"round {k} x{len(lots)}",
        )
        return {i: lot.finish_round(st, result)
                for i, lot, st, result in zip(group, lots, starts, results)}

    def run(self, on_round: RoundCallback | None = None) -> list[list[dict[str, Any]]]:
        """Run every pending round; returns each replica's records, stored ones included."""
        for k in self.pending_rounds():
            for i, record in self.run_round(k).items():
                if on_round is not None:
                    on_round(i, record)
        return [lot.store.read_metrics() for lot in self.lotteries]
