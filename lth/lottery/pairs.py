"""Another stored run (A) beside this one (B): how analyses of the pair are keyed and what
they share (the rounds both completed, A's stored tensors checked against B's model, the
permutation found once and stored).

An analysis of a pair (a barrier between seeds, a transported mask) is stored in B's run
directory under a key: the first 12 hex digits of the sha256 of its canonical JSON fields
(the kind, A's and B's config hashes, the round, the matching method and its options, and
whatever else determines the result), so another source run, round or method is another
key, and a stored one is found again and skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

from lth.errors import ConfigError
from lth.permute import Perm
from lth.store import RunStore

METHODS = ("weight_matching",)  # Git Re-Basin's weight matching (lth.permute.matching)


@dataclass(frozen=True)
class OtherRun:
    """Run A, reopened: its store and ``<name>/<hash>``."""

    store: RunStore
    identity: str

    @property
    def hash(self) -> str:
        return self.store.root.name


@dataclass(frozen=True)
class MatchOptions:
    """How the permutation is found: method, coordinate-descent sweeps, visiting-order seed."""

    method: str = "weight_matching"
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"match.method={self.method!r} is unknown; choose one of "
                              f"{', '.join(METHODS)}")
        if self.max_iter < 1:
            raise ConfigError(f"match.max_iter={self.max_iter} must be at least 1 sweep")

    def fields(self) -> dict[str, Any]:
        return {"method": self.method, "max_iter": self.max_iter, "match_seed": self.seed}


def pair_key(fields: Mapping[str, Any]) -> str:
    """12 hex digits naming an analysis by the fields that determine it."""
    text = json.dumps(dict(fields), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def both_completed(other: OtherRun, store: RunStore, rounds: Iterable[int] | None,
                   first: int = 0) -> list[int]:
    """The requested rounds (None: every round >= ``first`` both runs completed); a
    ConfigError naming the run that lacks one."""
    mine = set(store.completed_rounds(None, first))
    theirs = set(other.store.completed_rounds(None, first))
    if rounds is None:
        return sorted(mine & theirs)
    wanted = sorted(set(rounds))
    for run, done, key in ((other.store.root, theirs, "run_a"), (store.root, mine, "run_b")):
        missing = [k for k in wanted if k not in done]
        if missing:
            which = f"completed rounds >= {first}" if first else "completed rounds"
            raise ConfigError(f"rounds {missing} are not {which} of {key}={run}; choose from "
                              f"{sorted(done)}")
    return wanted


def stored_perm(store: RunStore, k: int, kind: str, key: str,
                find: Callable[[], Perm]) -> Perm:
    """The permutation of analysis ``key``, found by ``find`` and stored the first time."""
    path = store.perm_path(k, kind, key)
    if path.is_file():
        return {p: t.long() for p, t in store.load_tensors(path).items()}
    perm = find()
    store.save_tensors(path, {p: t.to(torch.long) for p, t in perm.items()})
    return perm


def mask_overlap(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]
                 ) -> tuple[float, float]:
    """(Jaccard ``|a ∩ b| / |a ∪ b|`` over all layers, its chance level for independent
    random masks of the same layer densities), as ``lth.analysis.overlap`` defines them."""
    both = either = inter = union = 0.0
    for name in a:
        x, y = a[name].bool(), b[name].bool()
        n, da, db = x.numel(), x.float().mean().item(), y.float().mean().item()
        both += int((x & y).sum())
        either += int((x | y).sum())
        inter, union = inter + n * da * db, union + n * (da + db - da * db)
    return (1.0 if either == 0 else both / either), (1.0 if union == 0 else inter / union)
