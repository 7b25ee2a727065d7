"""The one reopening of a stored run, for every branch, export and script that reads one.

``open_run`` checks, before anything is read beyond config.yaml or written: the path is given
and is a run directory, its config.yaml is readable and of the expected kind (a lottery run of
``experiments.lottery``, or a student of ``experiments.distill``), it fits that kind's schema,
and it still hashes to the directory's name (``RunStore.check_name``; a student's hash sees
its teacher as ``<name>/<hash>``, not its path). It returns the store and the config merged
with its schema, pointed at the directory where it lies. Every failure is one LthError whose
message names the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from experiments.errors import first_line
from experiments.schema import DistillSchema, LotterySchema
from lth.errors import ConfigError
from lth.store import RunStore

if TYPE_CHECKING:
    from experiments.setup import Prepared
    from lth.lottery import LotterySettings

LOTTERY, DISTILL = "lottery", "distill"
SCHEMAS: dict[str, type] = {LOTTERY: LotterySchema, DISTILL: DistillSchema}
MAKERS = {LOTTERY: "python -m experiments.lottery", DISTILL: "python -m experiments.distill"}


@dataclass(frozen=True)
class StoredRun:
    """A reopened run: its store, its config (merged with its schema) and its kind."""

    store: RunStore
    cfg: DictConfig
    kind: str

    @property
    def identity(self) -> str:
        """``<name>/<hash>``: the run, wherever its output root lies."""
        return f"{self.store.root.parent.name}/{self.store.root.name}"


def kind_of(config: dict[str, Any]) -> str | None:
    """``lottery``, ``distill`` or None (not a run config of lth), from its top-level keys."""
    if "prune" in config and "dataset" in config:
        return LOTTERY
    if "teacher" in config and "temperature" in config:
        return DISTILL
    return None


def _merged(store: RunStore, config: dict[str, Any], kind: str) -> DictConfig:
    """``config`` over its kind's schema, resolved as plain data would be; ConfigError if a
    key or value does not fit the schema."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS[kind]), config)
        assert isinstance(cfg, DictConfig)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{store.config_path} does not fit the {kind} run schema "
                          f"({first_line(e)}): restore it as the run wrote it") from None
    return cfg


def open_run(path: str | Path | None, key: str | None = "run_dir",
             kinds: tuple[str, ...] = (LOTTERY,)) -> StoredRun:
    """The run directory ``path`` (named ``key=`` in messages; the bare path when None),
    checked as the module says; ``kinds``: which kinds of run are accepted."""
    makers = " or ".join(MAKERS[k] for k in kinds)
    hint = f"pass the run directory printed by {makers}"
    if not path:
        raise ConfigError(f"{key} is not set: pass {key}=<the run directory printed by "
                          f"{makers}>")
    where = f"{key}={path}" if key else str(path)
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"{where} is not a run directory (no such directory): {hint}")
    store = RunStore(root)
    if not store.config_path.is_file():
        raise ConfigError(f"{where} is not a run directory (no config.yaml): {hint}")
    config = store.read_config()
    kind = kind_of(config)
    if kind not in kinds:
        what = f"a run of {MAKERS[kind]}" if kind else "not a run of lth"
        raise ConfigError(f"{where} is {what}: {hint}")
    cfg = _merged(store, config, kind)
    store.check_name(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    # Where the run lies now: its name and output root are not hashed, so a moved run works.
    cfg.output_root, cfg.name = str(root.parent.parent), root.parent.name
    return StoredRun(store, cfg, kind)


def branch_run(cfg: DictConfig) -> StoredRun:
    """The lottery run ``cfg.run_dir`` reopened to train branches beside it, with the
    branch command's ``device``, ``progress`` and ``wandb_mode`` (when set)."""
    run = open_run(cfg.run_dir)
    run.cfg.device, run.cfg.progress = cfg.device, cfg.progress
    if cfg.wandb_mode is not None:
        run.cfg.wandb.mode = cfg.wandb_mode
    return run


def prepared(run: StoredRun) -> tuple[Prepared, LotterySettings]:
    """The reopened run's data, factories and settings, as ``experiments.lottery`` built them."""
    from experiments import setup

    prep = setup.prepare(run.cfg)
    return prep, setup.settings_from(run.cfg, prep.iters_per_epoch)
