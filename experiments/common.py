"""What every entry point shares: turning a composed config into lth objects, and errors."""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Callable
from typing import Any

import torch
from hydra.errors import HydraException, MissingConfigException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lth.data import Dataset, load_dataset
from lth.errors import ConfigError, LthError

# HYDRA_FULL_ERROR as the user set it: run_cli sets HYDRA_FULL_ERROR=1 itself.
_USER_FULL_ERROR = "LTH_USER_HYDRA_FULL_ERROR"


def _full_error() -> bool:
    """Whether the user asked for tracebacks (HYDRA_FULL_ERROR=1)."""
    return os.environ.get(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1"


def _hydra_message(e: Exception) -> str:
    """One line for a config that does not compose (Hydra's own report spans many)."""
    if isinstance(e, MissingConfigException) and e.options and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")
        options = ", ".join(o for o in e.options if not o.endswith("_schema"))
        return f"{group}={name} is unknown: choose one of {options}"
    parts = [str(x).strip().splitlines()[0].rstrip(".") for x in (e, e.__cause__)
             if x is not None and str(x).strip()]
    return ": ".join(parts or [type(e).__name__]) + " (--help lists the keys and groups)"


def run_cli(main: Callable[[], Any]) -> None:
    """Call a ``@hydra.main`` entry point; a config that does not compose is reported as one
    ``error:`` line with exit code 2, like an LthError (Hydra's report with HYDRA_FULL_ERROR=1).
    """
    if _full_error():
        main()
        return
    os.environ.setdefault(_USER_FULL_ERROR, "0")
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises its errors here instead of printing
    try:
        main()
    except (HydraException, OmegaConfBaseException) as e:
        print(f"error: {_hydra_message(e)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except OSError as e:  # e.g. Hydra creating its log folder under output_root
        print(f"error: cannot write {e.filename or ''} ({e.strerror or e}): set output_root to "
              "a writable location with free space", file=sys.stderr, flush=True)
        sys.exit(2)


def report_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Print an LthError as one line and exit 2 (traceback with HYDRA_FULL_ERROR=1)."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except LthError as e:
            if _full_error():
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: completed rounds are kept; rerun the same command to resume",
                  file=sys.stderr)
            sys.exit(130)

    return wrapper


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
    return instantiate(cfg.optimizer)


def versions() -> dict[str, str]:
    """Software versions recorded with every run."""
    import lth

    return {"lth": lth.__version__, "torch": torch.__version__,
            "python": platform.python_version()}
