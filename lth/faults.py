"""Test-only fault injection: die at a named point, as a ``kill -9`` would.

``LTH_TEST_KILL_AT=<point>`` makes the process SIGKILL itself when it reaches ``<point>``, so
the crash-and-resume tests can stop the real CLI exactly while a file is half written or
right after a checkpoint. Points: ``write:<dir>/<file>`` (the file's temporary copy is
complete but not yet renamed, e.g. ``write:round_1/final.pt``) and ``checkpoint:<round>:<it>``
(the round's checkpoint at iteration ``it`` is on disk). ``LTH_TEST_SIGNAL_AT=<round>:<it>``
sends a real SIGTERM mid-round instead (the preemption tests). Never set them outside tests.
"""

from __future__ import annotations

import os
import signal

ENV = "LTH_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``LTH_TEST_KILL_AT`` equals ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


SIGNAL_ENV = "LTH_TEST_SIGNAL_AT"


def with_signal_hook(hooks: dict, round_index: int) -> dict:
    """``hooks`` plus, if ``LTH_TEST_SIGNAL_AT=<round>:<it>`` names this round, one that sends
    this process a real SIGTERM when ``it`` iterations are done (as Slurm would)."""
    spec = os.environ.get(SIGNAL_ENV, "")
    k, _, it = spec.partition(":")
    if not spec or int(k) != round_index:
        return hooks
    at, inner = int(it), hooks.get(int(it))

    def hook(model: object) -> None:
        if inner is not None:
            inner(model)
        os.kill(os.getpid(), signal.SIGTERM)

    return {**hooks, at: hook}
