"""Test-only fault injection: die at a named point, as a ``kill -9`` would.

``LTH_TEST_KILL_AT=<point>`` makes the process SIGKILL itself when it reaches ``<point>``, so
the crash-and-resume tests can stop the real CLI exactly while a file is half written or
right after a checkpoint. Points: ``write:<dir>/<file>`` (the file's temporary copy is
complete but not yet renamed, e.g. ``write:round_1/final.pt``) and ``checkpoint:<round>:<it>``
(the round's checkpoint at iteration ``it`` is on disk). Never set it outside tests.
"""

from __future__ import annotations

import os
import signal

ENV = "LTH_TEST_KILL_AT"


def kill_point(name: str) -> None:
    """SIGKILL this process if ``LTH_TEST_KILL_AT`` equals ``name``."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
