"""Iterative vs one-shot: one-shot runs at several densities as one series beside the ticket.

A one-shot run (``prune.oneshot=true``) prunes the dense network of round 0 straight to the
density of ``prune.rounds`` rounds. Runs of one experiment that differ only in that count (and
the seed) form one curve, drawn as the series ``oneshot`` beside the iterative ticket whose
config is the same but for ``prune.oneshot``. Its point for ``prune.rounds = R`` is placed at
round R, the round whose iterative ticket has the same target density, so the table compares
them row by row and ``paired`` subtracts them seed by seed. Round 0 is the same dense network
in both (it does not depend on the pruning schedule).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from lth.analysis.runs import Run, replicate_key
from lth.errors import ConfigError

ONESHOT = "oneshot"


def is_oneshot(run: Run) -> bool:
    """Whether ``run`` was pruned one-shot."""
    prune = run.config.get("prune")
    return bool(isinstance(prune, dict) and prune.get("oneshot"))


def as_iterative(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with ``prune.oneshot`` off and no ``prune.rounds``: the curve's key."""
    out = copy.deepcopy(config)
    prune = out.setdefault("prune", {})
    prune["oneshot"] = False
    prune.pop("rounds", None)
    return out


def oneshot_records(run: Run) -> list[dict[str, Any]]:
    """The pruned round of a one-shot run as ``oneshot`` records, at round ``prune.rounds``."""
    rounds = int(run.config["prune"]["rounds"])
    return [{**r, "control": ONESHOT, "round": rounds} for r in run.rounds if r["round"] >= 1]


def merge_oneshot(runs: Iterable[Run]) -> list[Run]:
    """The runs with every one-shot run folded into its iterative partner of the same seed.

    A one-shot curve without an iterative run of that seed becomes a run of its own: the
    dense round 0 and the ``oneshot`` series. Two one-shot runs of one seed and density are
    the same experiment stored twice: a ConfigError.
    """
    out: list[Run] = []
    slot: dict[tuple[str, int], int] = {}  # (curve, seed) -> index of its run in ``out``
    shots: list[Run] = []
    for run in runs:
        if is_oneshot(run):
            shots.append(run)
        else:
            slot[(replicate_key(run), run.seed)] = len(out)
            out.append(run)
    seen: dict[tuple[str, int, int], Run] = {}
    for shot in sorted(shots, key=lambda r: (r.seed, str(r.path))):
        config = as_iterative(shot.config)
        key = (replicate_key(replace(shot, config=config)), shot.seed)
        point = (*key, int(shot.config["prune"]["rounds"]))
        if point in seen:
            raise ConfigError(f"{seen[point].path} and {shot.path} are the same one-shot "
                              f"experiment (seed {shot.seed}): pass only one of them")
        seen[point] = shot
        if key not in slot:
            slot[key] = len(out)
            out.append(Run(shot.path.parent, config, shot.rounds[:1], []))
        partner = out[slot[key]]
        out[slot[key]] = replace(partner, controls=[*partner.controls, *oneshot_records(shot)])
    return out
