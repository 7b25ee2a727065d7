"""lth: lottery tickets and pruning research framework."""

__version__ = "0.1.0"
