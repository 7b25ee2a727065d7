"""A stored run read from Python: a round as a Ticket (model, mask, start weights), the run's
records, and a round exported as a portable ticket file. Reads through the run store (files
checked by their sha256 sidecars, config.yaml checked against the directory's hash)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth.data.load import SHAPES
from lth.errors import ConfigError
from lth.store import RunStore
from lth.tickets.portable import Ticket, save_ticket


@dataclass(frozen=True)
class Records:
    """A run's text records as plain data: its config, one dict per completed round, per
    completed control, per instability analysis, and run.json."""

    config: dict[str, Any]
    rounds: list[dict[str, Any]]
    controls: list[dict[str, Any]]
    instability: list[dict[str, Any]]
    info: dict[str, Any]


def _open(run_dir: str | Path) -> tuple[RunStore, dict[str, Any]]:
    store = RunStore(run_dir)
    config = store.read_config()
    store.check_name(config)
    return store, config


def read_records(run_dir: str | Path) -> Records:
    """The records of the run directory ``run_dir`` (no tensor is read)."""
    store, config = _open(run_dir)
    return Records(config, store.read_metrics(), store.read_controls(),
                   store.read_instability(), store.read_info())


def _rewind_iter(config: dict[str, Any]) -> int | None:
    text = str(config.get("prune", {}).get("rewind", "0it"))
    return int(text[:-2]) if text.endswith("it") and text[:-2].isdigit() else None


def load_round(run_dir: str | Path, round: int | None = None) -> Ticket:
    """Round ``round`` (default: the last completed one) of the run directory ``run_dir``
    as a Ticket: ``ticket.model()`` is the trained round with its mask applied."""
    store, config = _open(run_dir)
    records = store.read_metrics()
    done = [r["round"] for r in records]
    k = done[-1] if round is None and done else round
    if k not in done:
        raise ConfigError(f"round {round} of {run_dir} is not complete: choose one of "
                          f"{', '.join(map(str, done)) or 'none (train it first)'}")
    name = config["dataset"]["name"]
    if name not in SHAPES:
        raise ConfigError(f"{run_dir} trained on {name!r}, whose input shape lth does not "
                          "know: build the model yourself and load final.pt")
    init = store.load_tensors(store.init_path)
    rewind = store.load_tensors(store.rewind_path) if store.rewind_path.exists() else init
    shape, classes = SHAPES[name]
    return Ticket(init=init, rewind=rewind, final=store.load_tensors(store.final_path(k)),
                  mask=store.load_tensors(store.mask_path(k)), model_config=config["model"],
                  input_shape=shape, num_classes=classes, round=k, hash=store.root.name,
                  config=config, rewind_iter=_rewind_iter(config),
                  record=next(r for r in records if r["round"] == k),
                  versions=store.read_info().get("versions", {}))


def export_ticket(run_dir: str | Path, path: str | Path, round: int | None = None) -> Path:
    """Write round ``round`` (default: the last) of ``run_dir`` as one portable file."""
    return save_ticket(load_round(run_dir, round), path)
