"""What a new user's CPU sees: thread counts side by side, and the main job's wall time.

    python -m scripts.bench_threads rounds [--pairs 3] [--busy]   # 1 vs 2 threads, one round
    python -m scripts.bench_threads main [--busy]                 # python -m experiments.lottery

``rounds`` times one 1500-iteration round of the default experiment (no controls) as whole
processes with ``threads=1`` and ``threads=2``, alternating, and reports each pair's ratio.
``main`` times the main command as the README gives it (``threads`` at its default, W&B
offline) into a fresh output root. ``--busy`` starts one busy process beside it (a Python
loop on one core) for the whole measurement: "one busy neighbour". The load average is
recorded before and after, since the machine may be shared. Writes JSON to --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def env_for(tmp: Path) -> dict[str, str]:
    """The checkout importable, W&B offline under ``tmp``, no thread count imposed."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(PYTHONPATH=str(ROOT), WANDB_SILENT="true", WANDB_MODE="offline",
               WANDB_DIR=str(tmp))
    return env


def timed(overrides: list[str], tmp: Path) -> tuple[float, str]:
    """(wall seconds, stdout) of ``python -m experiments.lottery <overrides>`` in ``tmp``."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "experiments.lottery", *overrides], cwd=tmp,
                         env=env_for(tmp), capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return time.perf_counter() - start, out.stdout


@contextmanager
def neighbour(busy: bool) -> Iterator[None]:
    """One busy process on one core while the block runs (nothing when ``busy`` is false)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        time.sleep(2 if busy else 0)  # let it show in the scheduler
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def machine() -> dict[str, object]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def round_seconds(stdout: str) -> float:
    """The training time of round 0 in the printed table (its last column, ``12.3s``)."""
    row = next(ln for ln in stdout.splitlines() if ln.split()[:1] == ["0"])
    return float(row.split()[-1].rstrip("s"))


def rounds(pairs: int, tmp: Path) -> dict[str, object]:
    """One round of the default experiment, threads=1 and threads=2 alternating."""
    out = []
    for i in range(pairs):
        wall, train = {}, {}
        for threads in ((1, 2) if i % 2 == 0 else (2, 1)):
            root = tmp / f"r{i}t{threads}"
            wall[threads], stdout = timed(["prune.rounds=0", "prune.controls=[]",
                                           "progress=false", f"threads={threads}",
                                           f"output_root={root}"], tmp)
            train[threads] = round_seconds(stdout)
        out.append({"wall 1t s": wall[1], "wall 2t s": wall[2], "round 1t s": train[1],
                    "round 2t s": train[2], "round 2t/1t": train[2] / train[1]})
        print(out[-1], flush=True)
    return {"pairs": out}


def main_job(tmp: Path) -> dict[str, object]:
    """The main command with its defaults, into a fresh output root."""
    wall, stdout = timed(["progress=false", f"output_root={tmp / 'runs'}"], tmp)
    print(stdout)
    return {"wall s": wall, "stdout": stdout}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_threads",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("rounds", "main"))
    parser.add_argument("--pairs", type=int, default=3, help="rounds: alternating pairs")
    parser.add_argument("--busy", action="store_true", help="one busy process beside it")
    parser.add_argument("--out", required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as t, neighbour(args.busy):
        before = os.getloadavg()
        result = rounds(args.pairs, Path(t)) if args.what == "rounds" else main_job(Path(t))
        after = os.getloadavg()
    record = {"command": " ".join(["python -m scripts.bench_threads", *(argv or sys.argv[1:])]),
              "busy_neighbour": args.busy, "load_before": before, "load_after": after,
              "machine": machine(), **result}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"load average before {before[0]:.2f}, after {after[0]:.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
