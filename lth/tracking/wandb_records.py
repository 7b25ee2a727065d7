"""Read what a W&B run wrote to disk: the `.wandb` record log of an offline (or online) run.

Used by tests and scripts to prove what reached W&B without a server. The file is a LevelDB
log (https://github.com/google/leveldb/blob/main/doc/log_format.md) with a 7-byte W&B header
(`:W&B`, magic 0xBEE1, version 0). Each record is one `wandb_internal_pb2.Record`:
`checksum: uint32 (zlib crc32 of type+data), length: uint16, type: uint8, data`, in 32 KiB
blocks; a record that does not fit is split FIRST / MIDDLE* / LAST. wandb >= 0.19 writes
this in Go (wandb-core) and ships no Python reader, hence this one.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
_BLOCK = 32768
_RECORD_HEADER = 7  # checksum uint32, length uint16, type uint8
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class WandbRun:
    """The content of one `.wandb` file, decoded.

    history: one dict per `run.log` call, key -> JSON value (W&B's `_step`, `_runtime`,
    `_timestamp` included; a nested key is joined with "."). metrics: `define_metric`
    name or glob -> its step metric ("" when it has none)."""

    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)
    exited: bool = False


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield the `Record` protobuf messages of a `.wandb` file in order.

    A truncated tail (a run killed mid-write) ends the iteration; a bad checksum raises
    ValueError."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if not data.startswith(_HEADER):
        raise ValueError(f"{path} is not a W&B record log (bad header)")
    for payload in _payloads(data):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        yield record


def _payloads(data: bytes) -> Iterator[bytes]:
    pos, parts = len(_HEADER), []
    while pos + _RECORD_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _RECORD_HEADER:  # zero trailer of a block
            pos += left_in_block
            continue
        checksum, length, kind = struct.unpack_from("<IHB", data, pos)
        start = pos + _RECORD_HEADER
        chunk = data[start : start + length]
        if kind == 0 and length == 0:  # zero padding: preallocated, never written
            return
        if len(chunk) < length:
            return
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != checksum:
            raise ValueError(f"corrupt W&B record at byte {pos}")
        pos = start + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            parts = [chunk]
        elif kind == _MIDDLE:
            parts.append(chunk)
        elif kind == _LAST:
            yield b"".join([*parts, chunk])
            parts = []


def read_wandb_run(path: str | Path) -> WandbRun:
    """Decode a `.wandb` file: run identity, final config, history rows, summary, metrics."""
    run = WandbRun()
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group = r.run_id, r.project, r.run_group
            run.name, run.tags = r.display_name, list(r.tags)
            _apply_config(run.config, r.config)
        elif kind == "config":
            _apply_config(run.config, record.config)
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update(_items(record.summary.update))
            for item in record.summary.remove:
                run.summary.pop(_key(item), None)
        elif kind == "metric":
            m = record.metric
            run.metrics[m.name or m.glob_name] = m.step_metric
        elif kind == "exit":
            run.exited = True
    run.config.pop("_wandb", None)  # W&B's own bookkeeping, not the experiment's
    return run


def read_wandb_records(path: str | Path) -> list[dict[str, Any]]:
    """The history rows of a `.wandb` file, one dict per `run.log` call."""
    return read_wandb_run(path).history


def find_wandb_file(directory: str | Path, run_id: str | None = None) -> Path:
    """The newest `<directory>/wandb/[offline-]run-*/run-*.wandb` (of `run_id` if given).

    Each process that opens a run, resumed ones included, gets its own run folder."""
    root = Path(directory) / "wandb"
    pattern = f"run-{run_id}.wandb" if run_id else "run-*.wandb"
    files = [*root.glob(f"offline-run-*/{pattern}"), *root.glob(f"run-*/{pattern}")]
    if not files:
        raise FileNotFoundError(f"no W&B run file under {root}")

    def newest(p: Path) -> tuple[str, float]:
        # Folder names carry a per-second timestamp: run-YYYYMMDD_HHMMSS-<id>.
        stamp = p.parent.name.removeprefix("offline-").removeprefix("run-")
        return stamp, p.stat().st_mtime

    return max(files, key=newest)


def _apply_config(config: dict[str, Any], record: Any) -> None:
    for item in record.update:
        keys = list(item.nested_key) or [item.key]
        target = config
        for k in keys[:-1]:
            target = target.setdefault(k, {})
        target[keys[-1]] = json.loads(item.value_json)
    for item in record.remove:
        config.pop(_key(item), None)


def _items(items: Any) -> dict[str, Any]:
    return {_key(item): json.loads(item.value_json) for item in items}


def _key(item: Any) -> str:
    return ".".join(item.nested_key) if item.nested_key else item.key
