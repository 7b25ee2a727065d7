"""``reproducible=portable`` at the entry points: the kernels pinned before torch loads.

Torch-free on purpose: an entry point calls ``pin_for(cfg)`` before it imports anything that
imports torch (``experiments.setup``), because ATen, MKL, oneDNN and OpenMP read their
settings when they load. ``check_portable`` (in ``setup.prepare``) then checks that they were
pinned and that this CPU runs the pinned kernels. lth.kernels says what is pinned and why.
"""

from __future__ import annotations

import os

from omegaconf import DictConfig, OmegaConf

from lth.errors import ConfigError
from lth.kernels import check_mode, check_pinned, is_pinned, pin_portable


def reproducible_of(cfg: DictConfig) -> str:
    """``reproducible`` (``default`` where a config stored before the key existed lacks it)."""
    return str(OmegaConf.select(cfg, "reproducible", default="default"))


def pin_for(cfg: DictConfig) -> None:
    """Pin the kernels if ``cfg`` (a lottery config, or a stored run's) is portable; call it
    before torch loads. ConfigError for an unknown ``reproducible``."""
    mode = reproducible_of(cfg)
    check_mode(mode)
    if mode == "portable":
        pin_portable()


def check_portable(cfg: DictConfig) -> None:
    """ConfigError for an unknown ``reproducible``; under ``portable``, unless the kernels
    were pinned before torch loaded and this CPU runs them (one thread, ATen's AVX2)."""
    mode = reproducible_of(cfg)
    check_mode(mode)
    if mode != "portable":
        return
    if not is_pinned(os.environ):
        raise ConfigError("reproducible=portable needs the kernels pinned before torch loads: "
                          "run it through the experiments' entry points (or call "
                          "lth.kernels.pin_portable() before importing torch)")
    threads = str(OmegaConf.select(cfg, "threads", default="auto"))
    if threads not in ("auto", "1"):
        raise ConfigError(f"reproducible=portable trains on one thread, and threads={threads} "
                          "asks for more: drop the threads override (or set threads=1)")
    check_pinned()
