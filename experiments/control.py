"""Controls on an existing run: ``python -m experiments.control run_dir=<dir> control=<name>``.

Trains ``random_reinit``, ``random_prune`` or ``invert`` (lth.lottery.controls) beside
completed rounds of a stored run, reading everything else from the run's config.yaml, like
open_lth's branches.
``rounds=[3,5]`` picks rounds (default: every completed round >= 1); stored controls are
skipped, so rerunning the command does nothing more.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors
from experiments.schema import LotterySchema, register
from lth.errors import ConfigError

register()


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


def run(cfg: DictConfig) -> Path:
    """Train the requested controls of the run ``cfg.run_dir``; returns the run directory."""
    from experiments import setup
    from lth.lottery import RunStore
    from lth.lottery.controls import check_controls, pending_controls, run_control
    from lth.lottery.table import format_header, format_row

    names = check_controls([cfg.control] if isinstance(cfg.control, str) else cfg.control)
    stored = run_config(cfg)
    prep = setup.prepare(stored)
    settings = setup.settings_from(stored, prep.iters_per_epoch)
    root = RunStore.for_config(stored.output_root, stored.name, setup.to_dict(stored)).root
    if root != Path(cfg.run_dir).resolve():  # checked before anything is written
        raise ConfigError(f"{cfg.run_dir}/config.yaml hashes to {root.name}, not to the "
                          "directory's name: it was changed or made by another lth version")
    with ExitStack() as stack:
        store = setup.open_store(stored, settings, stack)
        pairs = pending_controls(store, names, list(cfg.rounds) or None)
        print(format_header())
        if not pairs:
            print("the requested controls are stored; nothing to train")
            return store.root
        lottery = setup.build(stored, prep, settings, store, setup.open_sink(stored, store, stack))
        for k, name in pairs:
            print(format_row(run_control(lottery, k, name), note=name), flush=True)
    return store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="control")
@report_errors
def main(cfg: DictConfig) -> None:
    print(f"run directory: {run(cfg)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
