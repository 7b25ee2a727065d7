"""Finding and loading stored runs, and grouping the replicates (seeds) of one experiment.

A run directory is recognised by its ``metrics.jsonl``. Paths may name run directories,
folders above them (``<output_root>/<name>``, ``<output_root>``) or a Hydra multirun folder,
whose job folders hold ``run_dir.txt`` (written by experiments.lottery) pointing at the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.errors import ConfigError
from lth.store import RunStore

# scripts.runs, which imports this package, reads text files only: nothing here imports torch
# at import time (lth.store reads tensors with a lazy import).

_POINTER = "run_dir.txt"
_MAX_DEPTH = 4  # <multirun>/<job>/run_dir.txt, <output_root>/<name>/<hash>/metrics.jsonl


@dataclass
class Run:
    """One stored run: its resolved config, its rounds and its controls."""

    path: Path
    config: dict[str, Any]
    rounds: list[dict[str, Any]]
    controls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.parent.name)


def _walk(path: Path, depth: int) -> Iterable[Path]:
    if (path / "metrics.jsonl").is_file():
        yield path
        return
    pointer = path / _POINTER
    if pointer.is_file():
        yield Path(pointer.read_text().strip())
        return
    if depth >= _MAX_DEPTH:
        return
    for child in sorted(p for p in path.iterdir() if p.is_dir()):
        if child.name not in ("wandb", "round_0") and not child.name.startswith("round_"):
            yield from _walk(child, depth + 1)


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories at or below ``paths`` (following ``run_dir.txt``), without repeats."""
    found: dict[Path, None] = {}
    for p in paths:
        path = Path(p)
        if not path.is_dir():
            raise ConfigError(f"{path} is not a directory: give run directories, "
                              "<output_root>/<name> or a Hydra multirun folder")
        for run in _walk(path, 0):
            if (run / "metrics.jsonl").is_file():
                found[run.resolve()] = None
    if not found:
        where = ", ".join(map(str, paths))
        raise ConfigError(f"no run directory (with metrics.jsonl) under {where}")
    return list(found)


def load_run(path: str | Path) -> Run:
    """The run stored at ``path``, read through its store: CheckpointError naming the fix if
    its config.yaml is missing, damaged or no longer hashes to the directory's name."""
    store = RunStore(path)
    config = store.read_config()
    store.check_name(config)
    return Run(Path(path), config, store.read_metrics(), store.read_controls())


def replicate_key(run: Run) -> str:
    """Runs with equal keys differ only in the seed: ``<name>-<8 hex digits>``."""
    from lth.store.hashing import semantic_config

    cfg = semantic_config(run.config)
    cfg.pop("seed", None)
    text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
    return f"{run.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def group_runs(runs: Iterable[Run]) -> dict[str, list[Run]]:
    """Runs grouped by ``replicate_key``, each group sorted by seed.

    Two runs of one group with the same seed are one experiment stored twice (e.g. under two
    output roots): a ConfigError, as counting both would fake a replicate.
    """
    groups: dict[str, dict[int, Run]] = {}
    for run in runs:
        group = groups.setdefault(replicate_key(run), {})
        if run.seed in group:
            raise ConfigError(f"{group[run.seed].path} and {run.path} are the same experiment "
                              f"(seed {run.seed}): pass only one of them")
        group[run.seed] = run
    return {k: [v[s] for s in sorted(v)] for k, v in sorted(groups.items())}
