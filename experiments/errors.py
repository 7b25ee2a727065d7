"""How entry points report errors. Light on purpose (no torch): `--help` imports it."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from lth.errors import LthError


def report_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Print an LthError as one line and exit 2 (traceback with HYDRA_FULL_ERROR=1)."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except LthError as e:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: completed rounds are kept; rerun the same command to resume",
                  file=sys.stderr)
            sys.exit(130)

    return wrapper
