"""How many intra-op threads a CPU process uses: the ``threads`` key and its automatic choice.

torch's default is one thread per core. That is right on an idle machine (a round of the
default network: 2.3-2.8 s with 2 threads, 3.3-4.3 s with 1, on an idle 2-core CPU) and badly
wrong on a busy one: the threads wait on each other and on the other processes (the same
round, 2-core Xeon VM shared at load ~8: 511 s with 2 threads, 64.5 s with 1; a new user's
2-core machine beside one busy process: 39 s against 6.7 s). So ``auto`` takes the cores that
other processes leave free at the start (measured over a quarter second from /proc/stat, else
the load average): every core when idle, one fewer per busy core, at least one
(results/benchmarks/README.md, "Threads").
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

from lth.errors import ConfigError


@dataclass(frozen=True)
class ThreadChoice:
    """The thread count set and why (``reason`` is printed once at the start)."""

    threads: int
    reason: str

    def line(self) -> str:
        return f"threads: {self.threads} ({self.reason}; set threads=N to choose)"


def cores() -> int:
    """The cores this process may run on (its affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is none."""
    try:
        fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(n_cores: int, window_s: float = 0.25) -> tuple[float, str]:
    """How many cores other processes keep busy now: measured over ``window_s`` seconds from
    /proc/stat (Linux; a neighbour started a moment ago counts), else the 1-minute load
    average. Returns (cores, what was measured)."""
    before = _cpu_times()
    if before is not None:
        time.sleep(window_s)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            share = (after[0] - before[0]) / (after[1] - before[1])
            return n_cores * share, "busy"
    try:
        return os.getloadavg()[0], "load"
    except (AttributeError, OSError):
        return 0.0, "load"


def auto_threads(n_cores: int, load: float) -> int:
    """Threads for ``n_cores`` cores when other processes keep ``load`` cores busy: the cores
    not taken, a load of 0.5 or more counting as one core (at least 1)."""
    busy = max(0, math.ceil(load - 0.5))
    return max(1, min(n_cores, n_cores - busy))


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
    ``$OMP_NUM_THREADS`` when it is set, else ``auto_threads`` of this machine."""
    env = os.environ if environ is None else environ
    given = parse_threads(value)
    if given is not None:
        return ThreadChoice(given, "threads set")
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return ThreadChoice(int(omp), "OMP_NUM_THREADS")
    n = cores()
    load, what = busy_cores(n)
    return ThreadChoice(auto_threads(n, load), f"auto: {n} cores, {what} {load:.1f}")


def set_threads(value: object) -> ThreadChoice:
    """Choose the thread count of ``threads`` and set it in torch; the choice."""
    import torch

    choice = choose_threads(value)
    torch.set_num_threads(choice.threads)
    return choice
