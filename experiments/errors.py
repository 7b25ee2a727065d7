"""How entry points report errors, and library exceptions turned into ConfigErrors that name
the config key. Light on purpose (no torch): `--help` imports it."""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import HydraException, MissingConfigException
from hydra.utils import get_method
from omegaconf.errors import OmegaConfBaseException

from lth.errors import ConfigError, LthError, Preempted

# HYDRA_FULL_ERROR as the user set it: run_cli sets HYDRA_FULL_ERROR=1 itself.
_USER_FULL_ERROR = "LTH_USER_HYDRA_FULL_ERROR"


def _full_error() -> bool:
    """Whether the user asked for tracebacks (HYDRA_FULL_ERROR=1)."""
    return os.environ.get(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1"


_CLUSTER_LAUNCHERS = ("joblib", "slurm", "submitit_slurm", "submitit_local")


def _missing_launcher(e: Exception) -> str | None:
    """The launcher named in ``e`` when it is one the ``cluster`` extra installs, else None."""
    text = " ".join(str(x) for x in (e, e.__cause__, getattr(e, "missing_cfg_file", None)) if x)
    found = re.search(r"hydra/launcher/(\w+)", text)
    return found[1] if found and found[1] in _CLUSTER_LAUNCHERS else None


def _hydra_message(e: Exception) -> str:
    """One line for a config that does not compose (Hydra's own report spans many)."""
    if (launcher := _missing_launcher(e)) is not None:
        return (f"hydra/launcher={launcher} needs its Hydra plugin, which is not installed: "
                'pip install -e ".[cluster]"')
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
            rank = int(os.environ.get("RANK", "0"))
            if rank == 0:
                print(f"error: {e}", file=sys.stderr, flush=True)
            elif not isinstance(e, ConfigError):  # torchrun: every rank checks the config alike
                print(f"error (rank {rank}): {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        except Preempted as e:  # the checkpoint is written; Submitit's handler requeues
            if int(os.environ.get("RANK", "0")) == 0:  # torchrun: every rank stops alike
                print(f"preempted: {e}", file=sys.stderr, flush=True)
            e.forward()
            sys.exit(128 + e.signum)
        except KeyboardInterrupt:
            print("interrupted: completed rounds are kept; rerun the same command to resume",
                  file=sys.stderr)
            sys.exit(130)

    return wrapper


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def build_error(group: str, target: str, make: Callable[[dict[str, Any]], object],
                kwargs: dict[str, Any], cause: BaseException) -> ConfigError:
    """A ConfigError naming the ``<group>.<key>`` of ``kwargs`` that made ``make`` raise
    ``cause``: the key without which ``make`` succeeds (or every key, if none does)."""
    text = first_line(cause)
    unexpected = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unexpected and unexpected[1] in kwargs:
        try:
            takes = " (it takes " + ", ".join(
                p for p in inspect.signature(get_method(target)).parameters
                if p not in ("self", "params", "input_shape", "num_classes")) + ")"
        except Exception:  # no signature to read: name the key alone
            takes = ""
        return ConfigError(f"{group}.{unexpected[1]} is not a parameter of {target}{takes}: "
                           "remove it")
    for key in kwargs:
        try:
            make({k: v for k, v in kwargs.items() if k != key})
        except Exception:
            continue
        return ConfigError(f"{group}.{key}={_show(kwargs[key])} is invalid for {target}: {text}")
    keys = ", ".join(f"{group}.{k}={_show(v)}" for k, v in kwargs.items())
    return ConfigError(f"{group}={target} cannot be built from {keys or 'no keys'}: {text}")
