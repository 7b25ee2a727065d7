"""How many intra-op threads a CPU process uses: the ``threads`` key and its automatic choice.

``auto`` is one thread, whatever the machine, for two measured reasons (2-core CPUs,
results/benchmarks/README.md, "Threads"):

- the thread count changes the numbers: 300 iterations of the default network trained with 1
  and with 2 threads from the same seed end at different weights (largest difference 1.05) and
  test accuracies (59.9% against 56.5%); a count chosen from the machine's load would make a
  run's results depend on what else was running, and a resumed round would mix two counts;
- one thread is never much slower and often far faster for lth's small models: on an idle
  2-core CPU a round of the default network takes 3.3-4.3 s with 1 thread and 2.3-2.8 s with 2,
  on a shared one 64.5 s with 1 and 511 s with 2 (torch's one thread per core waits on the
  other processes).

``threads=N`` sets N (faster on an idle many-core machine, but not the numbers a one-thread run
of the same hash gives); ``$OMP_NUM_THREADS``, when set, is kept, and the line printed at the
start says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lth.errors import ConfigError


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count set and why (``reason`` is printed once at the start)."""

    threads: int
    reason: str

    def line(self) -> str:
        note = "" if self.threads == 1 else "; results differ from a one-thread run's"
        return f"threads: {self.threads} ({self.reason}{note}; set threads=N to choose)"


def parse_threads(value: object) -> int | None:
    """``threads`` as a positive int, None for ``auto``; ConfigError otherwise."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise ConfigError(f"threads={value!r} must be auto or a positive number of threads "
                      "(e.g. threads=1)")


def choose_threads(value: object, environ: dict[str, str] | None = None) -> ThreadChoice:
    """The ThreadChoice of the ``threads`` key: a number as given; ``auto`` keeps
    ``$OMP_NUM_THREADS`` when it is set, else one thread."""
    env = os.environ if environ is None else environ
    given = parse_threads(value)
    if given is not None:
        return ThreadChoice(given, "threads set")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    return ThreadChoice(1, "auto: one thread, the same numbers on any load")


def set_threads(value: object) -> ThreadChoice:
    """Choose the thread count of ``threads`` and set it in torch; the choice."""
    import torch

    choice = choose_threads(value)
    torch.set_num_threads(choice.threads)
    return choice
