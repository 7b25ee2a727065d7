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
    from lth.tickets.portable import Ticket

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


def _merged(where: Path | str, config: dict[str, Any], kind: str) -> DictConfig:
    """``config`` over its kind's schema, resolved as plain data would be; ConfigError if a
    key or value does not fit the schema (the message names ``where``, the file it came from)."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(SCHEMAS[kind]), config)
        assert isinstance(cfg, DictConfig)
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{where} does not fit the {kind} run schema "
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
    cfg = _merged(store.config_path, config, kind)
    store.check_name(OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
    # Where the run lies now: its name and output root are not hashed, so a moved run works.
    cfg.output_root, cfg.name = str(root.parent.parent), root.parent.name
    return StoredRun(store, cfg, kind)


def open_ticket(path: str | Path, key: str = "source") -> tuple[DictConfig, Ticket]:
    """A portable ticket file (``lth.tickets.export_ticket``) reopened like a run: its config
    merged with the lottery schema and checked against the hash the file carries."""
    from lth.store.hashing import run_hash

    where, file = f"{key}={path}", Path(path).expanduser()
    hint = "pass a file written by lth.tickets.export_ticket, or a run directory"
    if not file.is_file():
        raise ConfigError(f"{where} is neither a run directory nor a ticket file: {hint}")
    try:
        from lth.tickets.portable import load_ticket

        ticket = load_ticket(file)
    except ModuleNotFoundError as e:
        raise ConfigError(f"reading a ticket file needs {e.name}: pip install -e "
                          '".[portable]"') from None
    except Exception as e:  # noqa: BLE001 - safetensors' own errors, damaged metadata
        raise ConfigError(f"{where} is not a readable ticket file ({first_line(e)}): "
                          f"{hint}") from None
    if kind_of(ticket.config) != LOTTERY:
        raise ConfigError(f"{where} holds no lottery run's config: {hint}")
    got = run_hash(ticket.config)
    if got != ticket.hash:
        raise ConfigError(f"{where}: its config hashes to {got}, not to the ticket's hash "
                          f"{ticket.hash}: the file was edited or made by another lth "
                          "version; export it again from its run directory")
    return _merged(file, ticket.config, LOTTERY), ticket


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
