"""A stored lottery run reopened to train branches beside it (``experiments.control``,
``experiments.instability``): its own config.yaml, checked against the schema and against the
directory's hash before anything is written."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from experiments.schema import LotterySchema
from lth.errors import ConfigError


def run_config(cfg: DictConfig) -> DictConfig:
    """The stored run's config, checked against the schema, pointed at its directory."""
    run_dir = Path(cfg.run_dir).resolve()
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} is missing: run_dir must be a run directory "
                          "<output_root>/<name>/<hash> made by experiments.lottery")
    stored = OmegaConf.merge(OmegaConf.structured(LotterySchema), OmegaConf.load(path))
    assert isinstance(stored, DictConfig)
    stored.output_root, stored.name = str(run_dir.parent.parent), run_dir.parent.name
    stored.device, stored.progress = cfg.device, cfg.progress
    if cfg.wandb_mode is not None:
        stored.wandb.mode = cfg.wandb_mode
    return stored


def reopen(cfg: DictConfig):  # noqa: ANN201 (setup's types are imported lazily)
    """``(stored config, Prepared, LotterySettings)`` of the run ``cfg.run_dir``; ConfigError
    when its config.yaml no longer hashes to the directory's name."""
    from experiments import setup
    from lth.store import RunStore

    stored = run_config(cfg)
    prep = setup.prepare(stored)
    settings = setup.settings_from(stored, prep.iters_per_epoch)
    root = RunStore.for_config(stored.output_root, stored.name, setup.to_dict(stored)).root
    if root != Path(cfg.run_dir).resolve():  # checked before anything is written
        raise ConfigError(f"{cfg.run_dir}/config.yaml hashes to {root.name}, not to the "
                          "directory's name: it was changed or made by another lth version")
    return stored, prep, settings
