"""Kept importable for the driver: the fault points live in ``lth.faults``."""

from lth.faults import ENV, kill_point

__all__ = ["ENV", "kill_point"]
