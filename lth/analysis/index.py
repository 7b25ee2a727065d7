"""A readable index of stored runs: one line per run directory, the differing keys only.

Hash-named directories are opaque; this lists each run's name, hash, the config keys whose
values differ among the listed runs, rounds complete / planned, branches, the lowest density
reached, dense and best-ticket accuracy and the lth version. It reads only the small text
files (``config.yaml``, ``metrics.jsonl``, ``controls.jsonl``, ``run.json``) and lists
directories, never a ``.pt`` file, so it stays fast on hundreds of runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lth.errors import ConfigError
from lth.store import RunStore

_MAX_DEPTH = 3  # <output_root>/<name>/<hash>/config.yaml
_SKIPPED = ("wandb", "export")
_RUN_FILES = ("config.yaml", "metrics.jsonl", "run.json")
KERNELS = "kernels."  # the prefix of the kernel facts' columns


@dataclass
class RunEntry:
    """What the index shows of one run directory."""

    path: Path
    name: str
    hash: str
    config: dict[str, Any]  # flattened: dotted key -> value
    done: int
    planned: int
    branches: list[str] = field(default_factory=list)
    min_density: float | None = None
    dense_acc: float | None = None
    ticket_acc: float | None = None  # the best final test_acc of rounds >= 1
    version: str | None = None


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts -> ``{"a.b": value}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def find_run_dirs(root: Path, depth: int = 0) -> Iterable[Path]:
    """Run directories at or below ``root`` (not inside a run): those holding a
    ``config.yaml``, or a run's records without one (a damaged run is named, not skipped)."""
    if any((root / name).is_file() for name in _RUN_FILES):
        yield root
        return
    if depth >= _MAX_DEPTH:
        return
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if not child.name.startswith((".", "round_")) and child.name not in _SKIPPED:
            yield from find_run_dirs(child, depth + 1)


def planned_rounds(cfg: Mapping[str, Any]) -> int:
    """Rounds the config asks for, the dense round 0 included (1 for a run without rounds)."""
    prune = cfg.get("prune")
    if not isinstance(prune, Mapping):
        return 1
    rounds = int(prune.get("rounds", 0))
    if prune.get("oneshot"):
        rounds = min(rounds, 1)
    elif prune.get("schedule"):
        rounds = min(rounds, len(prune["schedule"]))
    return rounds + 1


def read_entry(path: Path) -> RunEntry:
    """The index entry of the run directory ``path``, read through its store
    (CheckpointError naming the fix if a file is damaged or config.yaml was edited)."""
    store = RunStore(path)
    cfg = store.read_config()
    store.check_name(cfg)
    records, controls, info = store.read_metrics(), store.read_controls(), store.read_info()
    accs = [r["test_acc"] for r in records if "test_acc" in r]
    # controls by name, other branches (instability copies, ...) by kind
    branches = {str(c.get("control")) for c in controls}
    branches |= {p.parent.name for p in path.glob("round_*/*/*")
                 if p.is_dir() and p.parent.name != "controls"}
    return RunEntry(
        path=path, name=str(cfg.get("name") or path.parent.name), hash=path.name,
        config={**flatten(cfg), **kernel_columns(info)}, done=len(records),
        planned=planned_rounds(cfg),
        branches=sorted(branches),
        min_density=min((r["density"] for r in records if "density" in r), default=None),
        dense_acc=accs[0] if accs else None, ticket_acc=max(accs[1:]) if accs[1:] else None,
        version=_lth_version(info),
    )


def kernel_columns(info: Mapping[str, Any]) -> dict[str, Any]:
    """The kernel facts run.json holds (the creation's and every round's), flattened as
    ``kernels.<fact>`` -> value (``a|b`` where the rounds differ), shown like config keys when
    they differ among the listed runs; {} for runs stored before they were recorded."""
    rounds = info.get("rounds") if isinstance(info.get("rounds"), Mapping) else {}
    records = [info.get("versions"), *rounds.values()]
    seen: dict[str, list[str]] = {}
    for record in records:
        facts = record.get("kernels") if isinstance(record, Mapping) else None
        if isinstance(facts, Mapping):
            for key, value in flatten(facts, KERNELS).items():
                shown = _show(value)
                if shown not in seen.setdefault(key, []):
                    seen[key].append(shown)
    return {key: "|".join(values) for key, values in seen.items()}


def _lth_version(info: Mapping[str, Any]) -> str | None:
    """The lth version that created the run, as run.json says (None if it says none)."""
    versions = info.get("versions")
    version = versions.get("lth") if isinstance(versions, Mapping) else None
    return version if isinstance(version, str) else None


def parse_where(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> {key: value parsed as YAML}; ConfigError if one has no '='."""
    where: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--where {item!r} is not key=value: write e.g. --where seed=0 "
                              "or --where prune.strategy=magnitude_global")
        where[key.strip()] = yaml.safe_load(value) if value else None
    return where


def matches(entry: RunEntry, where: Mapping[str, Any]) -> bool:
    """Whether every ``key=value`` of ``where`` holds in the run's config (as value or text)."""
    for key, value in where.items():
        have = entry.config.get(key, entry.name if key == "name" else None)
        if have != value and str(have) != str(value):
            return False
    return True


def differing_keys(entries: Sequence[RunEntry]) -> list[str]:
    """The config keys whose values are not the same in every entry (missing counts)."""
    if len(entries) < 2:
        return []
    keys = sorted({k for e in entries for k in e.config} - {"name"})
    missing = object()
    # A kernel fact differs only among the runs that recorded it (older runs have none).
    return [k for k in keys
            if len({json.dumps(e.config.get(k, missing), sort_keys=True, default=repr)
                    for e in entries
                    if not k.startswith(KERNELS) or k in e.config}) > 1]


def index(root: Path, where: Mapping[str, Any] | None = None) -> list[RunEntry]:
    """The runs under ``root`` that match ``where``; ConfigError if ``root`` holds none."""
    if not root.is_dir():
        raise ConfigError(f"{root} is not a directory: give the output_root of your runs "
                          "(default: runs)")
    entries = [read_entry(p) for p in find_run_dirs(root)]
    if not entries:
        raise ConfigError(f"no run directory (with config.yaml) under {root}: give the "
                          "output_root your experiments wrote to")
    return [e for e in entries if matches(e, where or {})]


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def as_row(entry: RunEntry, keys: Sequence[str]) -> dict[str, Any]:
    """One run as plain data: the fixed columns, then ``keys`` of its config."""
    return {
        "name": entry.name, "hash": entry.hash, "path": str(entry.path),
        "keys": {k: entry.config.get(k) for k in keys},
        "rounds": entry.done, "planned": entry.planned, "branches": entry.branches,
        "min_density": entry.min_density, "dense_acc": entry.dense_acc,
        "ticket_acc": entry.ticket_acc, "lth": entry.version,
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def _aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]


def format_table(entries: Sequence[RunEntry], keys: Sequence[str], width: int | None = 100
                 ) -> str:
    """An aligned text table, one line per run, with a header. With ``width`` (columns) the
    differing keys share one last column as ``key=value`` and every line is clipped to
    ``width`` ("…" marks a cut); ``width=None`` gives every key its own column, and the lth
    version."""
    fixed = [[e.name, e.hash, f"{e.done}/{e.planned}", ",".join(e.branches) or "-",
              _pct(e.min_density), _pct(e.dense_acc), _pct(e.ticket_acc)] for e in entries]
    head = ["name", "hash", "rounds", "branches", "min density", "dense acc", "ticket acc"]
    if width is None:
        rows = [head[:2] + list(keys) + head[2:] + ["lth"]]
        rows += [f[:2] + [_show(e.config.get(k, "-")) for k in keys] + f[2:] + [e.version or "-"]
                 for f, e in zip(fixed, entries)]
        return "\n".join(_aligned(rows))
    short = [[_clip(f[0], 18), *f[1:3], *f[4:], _clip(f[3], 32)] for f in fixed]
    lines = _aligned([["name", "hash", "rounds", "density", "dense", "ticket", "branches"],
                      *short])
    if keys:
        differ = [" ".join(f"{k}={_show(e.config.get(k, '-'))}" for k in keys) for e in entries]
        pad = max(map(len, lines))
        lines = [f"{ln.ljust(pad)}  {d}" for ln, d in zip(lines, ["keys", *differ])]
    return "\n".join(_clip(ln, width).rstrip() for ln in lines)
