"""User-facing errors: each carries a one-line message that names the fix.

Entry points catch `LthError`, print its message on one line and exit non-zero; anything
else is a bug and keeps its traceback.
"""


class LthError(Exception):
    """An error caused by input (config, files, data), not by a bug in lth."""


class ConfigError(LthError):
    """A config value is invalid; the message names the key and the fix."""


class DataError(LthError):
    """A dataset cannot be loaded; the message says how to get it."""


class CheckpointError(LthError):
    """A file of the run store is missing, corrupt or does not match the model."""


class TrainingError(LthError):
    """Training cannot go on (e.g. a NaN loss); completed rounds are kept."""


class StorageError(LthError):
    """The run store cannot be written (no space, read-only, not a directory)."""


class LockError(LthError):
    """Another process is working on the same run directory."""
