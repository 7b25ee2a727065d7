"""What experiments.distill builds: the teacher (a stored round), the student's size, its store.

The teacher is round ``k`` of a stored lottery run: its trained weights with its mask applied,
on the run's own dataset. The student is a model node (the teacher's by default) whose width is
scaled to a parameter budget: ``params``, or the parameters of the teacher run's round
``params_round`` (physically smaller when that run pruned channels, its unpruned weights and
unprunable parameters otherwise). Its run directory is named by a hash of the distillation
config in which the teacher is its identity ``<name>/<hash>``, not its path.
"""

from __future__ import annotations

import copy
import json
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from experiments.setup import to_dict
from experiments.versions import versions
from lth.data import Dataset
from lth.errors import ConfigError
from lth.export.pipeline import load_round, resolve_round
from lth.models import count_parameters
from lth.pruning import remaining, total
from lth.pruning.channels import remove_channels
from lth.store.lock import RunLock
from lth.store.store import RunStore

WIDTH_KEYS = ("width", "hidden", "channels")


@dataclass(frozen=True)
class Teacher:
    """A stored lottery run and the round whose weights teach."""

    store: RunStore
    cfg: DictConfig
    round: int

    @property
    def identity(self) -> str:
        """``<name>/<hash>``: the run, wherever its output root lies."""
        return f"{self.store.root.parent.name}/{self.store.root.name}"


def open_teacher(path: str | None, k: int | None) -> Teacher:
    """The teacher run at ``path`` (reopened: kind, schema and hash checked) and its round
    ``k``; ConfigError naming the fix."""
    from experiments.stored import open_run

    run = open_run(path, key="teacher")
    return Teacher(run.store, run.cfg, resolve_round(run.store, k))


def teacher_model(teacher: Teacher, make: Any, k: int | None = None) -> tuple[nn.Module, Any]:
    """Round ``k``'s (default: the teaching round's) model, mask applied, and its mask."""
    model = make()
    mask = load_round(model, teacher.store, teacher.round if k is None else k)
    return model, mask


def round_params(teacher: Teacher, make: Any, k: int, data: Dataset) -> int:
    """The parameters of round ``k`` of the teacher's run as deployed: the physically smaller
    network for a channel-pruned run, else its unpruned weights and unprunable parameters."""
    model, mask = teacher_model(teacher, make, resolve_round(teacher.store, k))
    if OmegaConf.select(teacher.cfg, "prune.granularity", default="weight") == "channel":
        return count_parameters(remove_channels(model, mask, data.x_train[:8].cpu()))
    return count_parameters(model) - total(mask) + remaining(mask)


def _scaled(value: Any, factor: float) -> Any:
    if isinstance(value, int):
        return max(1, round(value * factor))
    return [max(1, round(int(v) * factor)) for v in value]


def sized_model(model: DictConfig, data: Dataset, budget: int | None,
                width_key: str | None) -> DictConfig:
    """``model`` with its width key scaled so that its parameter count is closest to
    ``budget`` (unchanged when ``budget`` is None)."""
    if budget is None:
        return model
    if budget < 1:
        raise ConfigError(f"params={budget} must be a positive parameter count")
    key = width_key or next((k for k in WIDTH_KEYS if k in model), None)
    if key is None or key not in model:
        wanted = width_key or "width, hidden or channels"
        raise ConfigError(f"model {model.get('_target_')} has no {wanted} key to scale to the "
                          "parameter budget: set width_key=<its key>")
    base_value = OmegaConf.to_container(model)[key]  # type: ignore[index]
    base = max(base_value) if isinstance(base_value, list) else int(base_value)
    shape = {"input_shape": list(data.input_shape), "num_classes": data.num_classes}

    def node(i: int) -> DictConfig:
        out = copy.deepcopy(model)
        out[key] = _scaled(base_value, i / base)
        return out

    def params(i: int) -> int:
        return count_parameters(instantiate(node(i), **shape))

    lo, hi = 1, 8 * base  # the smallest i with params(i) >= budget, by bisection
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if params(mid) < budget else (lo, mid)
    best = min({max(1, lo - 1), lo}, key=lambda i: (abs(params(i) - budget), i))
    return node(best)


def open_student_store(cfg: DictConfig, teacher: Teacher, seeds: dict[str, Any],
                       locks: ExitStack) -> RunStore:
    """The student's run store (locked until ``locks`` closes), created with its config.yaml
    and run.json if new. ``cfg.teacher`` is the teacher's directory; the hash sees it as its
    identity ``<name>/<hash>`` (``lth.store.run_hash``), so moving the teacher renames nothing."""
    store = RunStore.for_config(cfg.output_root, cfg.name, to_dict(cfg))
    store.prepare()
    locks.enter_context(RunLock(store.lock_path))
    store.remove_temporaries()
    if not store.config_path.exists():
        store.write_text(store.config_path, OmegaConf.to_yaml(cfg, resolve=True))
    if not store.info_path.exists():  # never rewritten: it holds the per-round records
        store.write_text(store.info_path, json.dumps({
            "name": cfg.name, "hash": store.root.name, "versions": versions(),
            "teacher": {"run": teacher.identity, "round": teacher.round}, "seeds": seeds,
        }, indent=2))
    return store

