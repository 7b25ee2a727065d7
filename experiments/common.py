"""What every entry point shares: turning a composed config into lth objects, and errors."""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors, run_cli  # noqa: F401 - light, for --help
from lth.data import Dataset, load_dataset
from lth.errors import ConfigError, LthError
from lth.train.optim import prefer_fused


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain Python data."""
    data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    assert isinstance(data, dict)
    return data  # type: ignore[return-value]


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


def load_data(cfg: DictConfig, device: torch.device) -> Dataset:
    """The dataset named by ``cfg.dataset``, in memory on ``device``."""
    d = cfg.dataset
    data = load_dataset(
        d.name, root=d.root, download=d.download, val_size=d.val_size,
        split_seed=d.split_seed, num_samples=d.num_samples, augment=d.augment,
    )
    return data.to(device)


def model_factory(cfg: DictConfig, data: Dataset) -> Callable[[], torch.nn.Module]:
    """A function building a fresh model for ``data``; checked once on one sample."""

    def make() -> torch.nn.Module:
        try:
            return instantiate(cfg.model, input_shape=list(data.input_shape),
                               num_classes=data.num_classes)
        except LthError:
            raise
        except Exception as e:  # Hydra wraps the model's own TypeError/ValueError
            cause = e.__cause__ or e
            raise ConfigError(f"model {cfg.model._target_} cannot be built: "
                              f"{str(cause).splitlines()[0]}") from None

    model = make()
    try:
        with torch.inference_mode():
            model.eval()(data.x_train[:2].cpu())
    except RuntimeError as e:
        raise ConfigError(
            f"model {cfg.model._target_} does not fit dataset {cfg.dataset.name} "
            f"(input shape {tuple(data.input_shape)}): {str(e).splitlines()[0]}; choose a "
            "model for this input"
        ) from None
    return make


def optimizer_factory(cfg: DictConfig) -> Callable[..., torch.optim.Optimizer]:
    """The partial optimizer of ``cfg.optimizer`` (call it with parameters)."""
    if cfg.optimizer.lr <= 0:
        raise ConfigError(f"optimizer.lr={cfg.optimizer.lr} must be positive")
    return prefer_fused(instantiate(cfg.optimizer))


def versions() -> dict[str, str]:
    """Software versions recorded with every run."""
    import lth

    return {"lth": lth.__version__, "torch": torch.__version__,
            "python": platform.python_version()}
