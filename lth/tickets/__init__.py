"""Tickets in your own code: a stored round as a model, its start weights and mask, a run's
records, and one portable file per ticket (safetensors tensors + JSON metadata).

``lth.tickets.portable`` reads and writes the portable file without the run store (it imports
neither ``lth.store`` nor ``lth.lottery``); ``lth.tickets.stored`` reads a run directory.
The names below are imported on first use, so importing this package imports neither.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {"Ticket": "portable", "save_ticket": "portable", "load_ticket": "portable",
          "model_from_config": "portable", "load_round": "stored", "read_records": "stored",
          "export_ticket": "stored"}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'lth.tickets' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lth.tickets.{_WHERE[name]}"), name)
