"""The run directory's text files read back as plain data: config.yaml, run.json, JSONL.

Torch-free on purpose: ``scripts.runs`` indexes hundreds of runs through these readers and
never imports torch. A damaged file is a CheckpointError whose message names the fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lth.errors import CheckpointError

_CONFIG_FIX = ("restore it from a copy of the run, or delete the run directory to start the "
               "experiment again")


def read_config(path: Path) -> dict[str, Any]:
    """A run's config.yaml as plain data (YAML mappings, lists, scalars)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing: {_CONFIG_FIX}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} cannot be read ({type(e).__name__}): "
                              f"{_CONFIG_FIX}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise CheckpointError(f"{path} is not YAML{line}: {_CONFIG_FIX}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a mapping of config keys: {_CONFIG_FIX}")
    return data


def read_info(path: Path) -> dict[str, Any]:
    """run.json as a dict ({} if there is none)."""
    try:
        info = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(info, dict) or not isinstance(info.get("rounds", {}), dict):
            raise ValueError("not a JSON object with a 'rounds' object")
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path} cannot be read ({e}): restore it, or delete it "
                              "to let this run record its versions afresh") from None
    return info


def read_jsonl(path: Path, keys: tuple[str, ...] = ("round",)) -> list[dict[str, Any]]:
    """The records of a JSONL file, in order ([] if there is none): each line a JSON object
    holding ``keys`` (CheckpointError naming the file and line otherwise)."""
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise CheckpointError(
                f"{path} line {n} is not JSON; delete that line to redo its round"
            ) from None
        if not isinstance(record, dict) or not all(k in record for k in keys):
            raise CheckpointError(
                f"{path} line {n} is not a record (a JSON object with "
                f"{', '.join(repr(k) for k in keys)}); delete that line to redo its round")
        records.append(record)
    return records


def check_round_order(path: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` (of metrics.jsonl) if they are rounds 0..n-1 in order; else CheckpointError
    naming the first line out of place: a lost line would otherwise have a later round
    retrained under its number."""
    for n, record in enumerate(records):
        if record["round"] != n:
            raise CheckpointError(
                f"{path} line {n + 1} is round {record['round']!r}, not round {n}: the rounds "
                f"must be 0..n-1 in order; delete line {n + 1} and the lines after it to "
                f"redo rounds {n} and later (or restore the missing line)")
    return records
