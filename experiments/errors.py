"""How entry points report errors. Light on purpose (no torch): `--help` imports it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import OmegaConfBaseException

from lth.errors import LthError

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
