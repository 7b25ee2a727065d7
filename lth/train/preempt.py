"""Preemption: a signal asks the loop to checkpoint at once and stop.

Slurm sends SIGTERM before it preempts or requeues a job (``scontrol requeue``); Submitit
forwards its own warning as SIGUSR2 (``--signal=USR2@<s>``, Hydra's
``hydra.launcher.signal_delay_s``) to a handler that requeues the job. ``handle_preemption``
installs a handler for both that only sets a flag; the loop looks at the flag once per
iteration (a Python bool: free), and when it is set writes the round's checkpoint at the start
of the iteration and raises ``lth.errors.Preempted``. The handler that was installed before
(Submitit's requeue, for SIGUSR2) is then called by ``Preempted.forward()``, so a Submitit
job checkpoints first and is requeued second; a rerun of the same command resumes there.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from lth.errors import Preempted

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None))
                if s is not None)
# signum: the signal the loop acts on; seen: the one this process received. They differ only
# under data parallelism (``collective``), where the ranks first agree (lth.train.distributed).
_state: dict[str, Any] = {"signum": None, "seen": None, "previous": {}, "collective": False}


def requested() -> int | None:
    """The preemption signal received, if one was (None: train on)."""
    return _state["signum"]


def seen() -> int | None:
    """The preemption signal this process received, agreed on or not."""
    return _state["seen"]


def set_collective(on: bool) -> None:
    """Under data parallelism a signal is acted on only once the ranks agree (``agree``), so
    that every rank stops at the same iteration."""
    _state["collective"] = on


def agree() -> None:
    """Some rank received a preemption signal: stop at the next iteration."""
    _state["signum"] = _state["seen"] or signal.SIGTERM


def _handler(signum: int, frame: FrameType | None) -> None:
    _state["seen"] = signum
    if not _state["collective"]:
        _state["signum"] = signum


@contextmanager
def handle_preemption() -> Iterator[None]:
    """SIGTERM and SIGUSR2 set the preemption flag while the context is open (main thread
    only; elsewhere a no-op). The previous handlers come back on exit."""
    try:
        previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    except ValueError:  # not the main thread: signals cannot be handled here
        yield
        return
    _state.update(previous=previous, signum=None, seen=None)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state.update(previous={}, signum=None, seen=None)


def raise_if_requested(it: int, desc: str, save: Callable[[], None] | None) -> None:
    """If a preemption signal came: ``save()`` (the checkpoint, when there is one to write)
    and raise Preempted."""
    signum = _state["signum"]
    if signum is None:
        return
    if save is not None:
        save()
    what = "checkpoint written" if save is not None else "no checkpoint to write"
    raise Preempted(signum, it, f"stopped by {signal.Signals(signum).name} at iteration {it} "
                    f"({desc}), {what}: rerun the same command to resume",
                    _state["previous"].get(signum))
