"""How many intra-op threads a CPU process uses: the ``threads`` key and its automatic choice.

torch's default is one thread per core. For lth's small models that is slower as soon as the
cores are few or busy: the threads wait on each other. Measured on a 2-core Xeon VM
(results/benchmarks/README.md, "Threads"): one 1500-iteration round of the default network
took 1.0-1.1x with 2 threads of what it took with 1 at load ~1, and several times longer with
2 threads beside one busy process (39 s against 6.7 s). So ``auto`` takes one thread unless
the machine has more than 4 cores, and then only the cores the load average leaves free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lth.errors import ConfigError

FEW_CORES = 4  # at or below this many cores, auto takes one thread


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


def load_average() -> float:
    """The 1-minute load average (0.0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def auto_threads(n_cores: int, load: float) -> int:
    """Threads for ``n_cores`` cores at ``load`` (1-minute load average, other processes
    included): 1 on few cores, else the cores the load leaves free (at least 1)."""
    if n_cores <= FEW_CORES:
        return 1
    return max(1, min(n_cores, int(n_cores - load)))


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
    n, load = cores(), load_average()
    return ThreadChoice(auto_threads(n, load), f"auto: {n} cores, load {load:.1f}")


def set_threads(value: object) -> ThreadChoice:
    """Choose the thread count of ``threads`` and set it in torch; the choice."""
    import torch

    choice = choose_threads(value)
    torch.set_num_threads(choice.threads)
    return choice
