"""Durations: ``"<N>it"`` or ``"<N>ep"``, turned into iterations once, at the edge."""

from __future__ import annotations

import re

from lth.errors import ConfigError

_PATTERN = re.compile(r"^\s*(\d+)\s*(it|ep)\s*$")


def parse_duration(value: str | int, iters_per_epoch: int, key: str) -> int:
    """Iterations in ``value`` ("500it" or "2ep"); ``key`` names the config key in errors."""
    match = _PATTERN.match(str(value))
    if match is None:
        raise ConfigError(
            f"{key}={value!r} is not a duration: write '<N>it' (iterations) or '<N>ep' "
            "(epochs) with N >= 0, e.g. '500it'"
        )
    count, unit = int(match.group(1)), match.group(2)
    return count if unit == "it" else count * iters_per_epoch
