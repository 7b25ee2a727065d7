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
    """Training cannot go on (e.g. a NaN loss); completed rounds are kept. ``members``: the
    positions, in a group trained together, of the members that diverged (empty: all)."""

    def __init__(self, message: str, members: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.members = members


class StorageError(LthError):
    """The run store cannot be written (no space, read-only, not a directory)."""


class LockError(LthError):
    """Another process is working on the same run directory."""


class Preempted(BaseException):
    """Training stopped on a preemption signal (SIGTERM, Submitit's SIGUSR2) after writing its
    checkpoint. A BaseException, like KeyboardInterrupt: nothing on the way out mistakes it for
    an error of the run. Entry points print the message, call ``previous`` (the handler that
    was installed before lth's, e.g. Submitit's requeue) and exit 128 + ``signum``."""

    def __init__(self, signum: int, it: int, message: str, previous: object = None) -> None:
        super().__init__(message)
        self.signum, self.it, self.previous = signum, it, previous

    def forward(self) -> None:
        """Hand the signal to the handler that was installed before lth's, if any."""
        if callable(self.previous):
            self.previous(self.signum, None)
