"""A ticket as one portable file: safetensors tensors and JSON metadata, no run store needed.

The file holds, by prefix, the weights at initialisation (``init/``), at the rewind point
(``rewind/``, what round k >= 1 trains from), after training (``final/``) and the mask
(``mask/``, bool), each keyed by the model's state-dict names; its safetensors metadata holds
one JSON object under ``lth`` (config, hash, round, rewind, mask convention, model, input
shape, classes, versions, the round's record). Any safetensors reader opens it; this module
reads it back with torch and safetensors alone (it never imports the run store).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "lth-ticket/1"
PARTS = ("init", "rewind", "final", "mask")
MASK_CONVENTION = ("mask[name] is a bool tensor shaped like the parameter `name`; True keeps "
                   "the weight; the pruned network is weight * mask; parameters without a "
                   "mask entry are dense")


@dataclass
class Ticket:
    """One round's ticket: its weights at init, rewind point and after training, its mask,
    and where it came from. ``model()`` is the trained round with its mask applied."""

    init: dict[str, torch.Tensor]
    rewind: dict[str, torch.Tensor]
    final: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    model_config: dict[str, Any]      # the config's ``model`` node (``_target_`` and kwargs)
    input_shape: tuple[int, ...]
    num_classes: int
    round: int
    hash: str
    config: dict[str, Any] = field(default_factory=dict)   # the run's resolved config
    rewind_iter: int | None = None    # the rewind point in iterations (None: given in epochs)
    record: dict[str, Any] = field(default_factory=dict)   # the round's metrics.jsonl line
    versions: dict[str, str] = field(default_factory=dict)

    def model(self, weights: str = "final") -> nn.Module:
        """A fresh model holding ``weights`` (final, rewind or init) with the mask applied."""
        net = model_from_config(self.model_config, self.input_shape, self.num_classes)
        net.load_state_dict(getattr(self, weights))
        with torch.no_grad():
            params = dict(net.named_parameters())
            for name, m in self.mask.items():
                params[name].mul_(m.to(params[name].dtype))
        return net.eval()

    @property
    def density(self) -> float:
        """The share of masked weights kept."""
        kept = sum(int(m.sum()) for m in self.mask.values())
        return kept / max(1, sum(m.numel() for m in self.mask.values()))


def model_from_config(model: Mapping[str, Any], input_shape: Sequence[int],
                      num_classes: int) -> nn.Module:
    """The model a config's ``model`` node builds (its ``_target_`` called with the other
    keys), for inputs of ``input_shape`` and ``num_classes`` classes, without Hydra."""
    module, _, name = str(model["_target_"]).rpartition(".")
    make = getattr(importlib.import_module(module), name)
    kwargs = {k: v for k, v in model.items() if not str(k).startswith("_")}
    return make(input_shape=list(input_shape), num_classes=num_classes, **kwargs)


def _metadata(ticket: Ticket) -> dict[str, Any]:
    return {"format": FORMAT, "round": ticket.round, "hash": ticket.hash,
            "rewind_iter": ticket.rewind_iter, "mask_convention": MASK_CONVENTION,
            "model": ticket.model_config, "input_shape": list(ticket.input_shape),
            "num_classes": ticket.num_classes, "config": ticket.config,
            "record": ticket.record, "versions": ticket.versions}


def save_ticket(ticket: Ticket, path: str | Path) -> Path:
    """Write ``ticket`` to ``path`` (``.safetensors``) and return the path."""
    from safetensors.torch import save_file

    tensors = {f"{part}/{k}": v.detach().cpu().contiguous()
               for part in PARTS for k, v in getattr(ticket, part).items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"lth": json.dumps(_metadata(ticket))})
    return path


def load_ticket(path: str | Path) -> Ticket:
    """The Ticket of a portable file written by ``save_ticket``; ValueError if it is not one."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("lth", "{}"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not an lth ticket file ({FORMAT}): write it with "
                             "lth.tickets.export_ticket")
        parts: dict[str, dict[str, torch.Tensor]] = {p: {} for p in PARTS}
        for key in f.keys():
            part, _, name = key.partition("/")
            parts[part][name] = f.get_tensor(key)
    return Ticket(**parts, model_config=meta["model"], input_shape=tuple(meta["input_shape"]),
                  num_classes=meta["num_classes"], round=meta["round"], hash=meta["hash"],
                  config=meta["config"], rewind_iter=meta["rewind_iter"],
                  record=meta["record"], versions=meta["versions"])
