"""Where and how an experiment computes: its device, this rank under torchrun, mixed precision
and compile, and the kernel facts recorded in ``run.json``."""

from __future__ import annotations

import os
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lth.errors import ConfigError
from lth.kernels import kernel_facts
from lth.train import distributed
from lth.train.accel import Accel


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name!r} is not a device; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but CUDA is not available; use device=cpu or auto")
    return device


def data_parallel(cfg: DictConfig, device: torch.device) -> distributed.Dist | None:
    """This rank under torchrun (process group initialised), checked against the config;
    None for one process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and cfg.train.batch_size % world:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} does not split across "
                          f"{world} ranks: use a multiple of {world} (it is the global batch)")
    return distributed.from_env(device.type)


def accel_of(cfg: DictConfig) -> Accel:
    """``train.precision``, ``train.compile`` and ``deterministic`` (defaults where a config
    stored before these keys existed lacks them)."""
    return Accel(OmegaConf.select(cfg, "train.precision", default="fp32"),
                 bool(OmegaConf.select(cfg, "train.compile", default=False)),
                 bool(OmegaConf.select(cfg, "deterministic", default=False)))


def kernels_of(cfg: DictConfig) -> dict[str, Any]:
    """The kernel facts of training ``cfg`` in this process (``lth.kernels.kernel_facts``)."""
    accel = accel_of(cfg)
    device = resolve_device(distributed.local_device(cfg.device))
    return kernel_facts(str(device), accel.compile, accel.deterministic)
