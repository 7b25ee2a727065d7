"""Targets 4-5 of scripts/benchmark.py: the real CLI in subprocesses, timed by wall clock."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LENET_PRESET_ITERS = 50_000  # conf/experiment/lenet_mnist_frankle2019.yaml


def cli_env(threads: int, wandb_dir: Path) -> dict[str, str]:
    """The environment of a benchmarked subprocess: the checkout importable, W&B offline."""
    env = dict(os.environ)
    path = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env.update(PYTHONPATH=os.pathsep.join(path), WANDB_SILENT="true", WANDB_MODE="offline",
               WANDB_DIR=str(wandb_dir), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), HYDRA_FULL_ERROR="1")
    return env


def timed(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 3600
          ) -> tuple[float, str]:
    """(wall seconds, stdout) of one command; RuntimeError with its stderr if it fails."""
    start = time.perf_counter()
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return wall, out.stdout


def lottery_cmd(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "experiments.lottery", *overrides]


_IMPORT_CHECK = """
import json, sys, time
t = time.perf_counter()
import lth, lth.data, lth.models, lth.pruning, lth.train, lth.lottery, lth.tracking
import lth.analysis, lth.export
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "loaded": [m for m in ("wandb", "matplotlib",
    "torchvision", "hydra") if m in sys.modules]}))
"""


def startup(env: dict[str, str], tmp: Path, repeats: int) -> dict[str, object]:
    """Target 4: `--help`, composing the config (`--cfg job`) and `import lth` (+ what it
    loads), each the median of ``repeats`` fresh processes."""
    help_s = [timed(lottery_cmd("--help"), env, tmp)[0] for _ in range(repeats)]
    compose_s = [timed(lottery_cmd("--cfg", "job"), env, tmp)[0] for _ in range(repeats)]
    imports = [json.loads(timed([sys.executable, "-c", _IMPORT_CHECK], env, tmp)[1])
               for _ in range(repeats)]
    return {
        "help_s": statistics.median(help_s), "help_s_each": help_s,
        "compose_s": statistics.median(compose_s), "compose_s_each": compose_s,
        "import_lth_s": statistics.median(i["seconds"] for i in imports),
        "import_lth_loads": imports[0]["loaded"],
    }


def default_experiment(env: dict[str, str], tmp: Path, quick: bool) -> dict[str, object]:
    """Target 5a: wall time of `python -m experiments.lottery` (the default experiment)."""
    extra = ["prune.rounds=1", "train.duration=200it"] if quick else []
    args = lottery_cmd(f"output_root={tmp / 'default'}", "wandb.mode=offline",
                       f"wandb.dir={tmp}", *extra)
    wall, stdout = timed(args, env, tmp)
    rounds = [ln for ln in stdout.splitlines() if ln.strip()[:1].isdigit()]
    return {"command": "python -m experiments.lottery " + " ".join(args[3:]),
            "wall_s": wall, "rounds": len(rounds), "quick_overrides": extra}


def lenet_round(env: dict[str, str], tmp: Path, n1: int, n2: int,
                full: int | None) -> dict[str, object]:
    """Target 5b: one round of the LeNet-300-100 preset on MNIST-shaped random data.

    Runs the CLI for n1 and n2 iterations (round 0 only) and extrapolates the 50K-iteration
    round as t(n1) + (50000 - n1) * marginal; with ``full`` it runs that many iterations too.
    """
    from tests.datafiles import make_mnist  # the idx writer the loader tests use

    data = tmp / "mnist"
    if not (data / "MNIST").exists():
        make_mnist(data, "MNIST", 60_000, 10_000)

    def run(iters: int) -> float:
        out = tmp / f"lenet{iters}"
        return timed(lottery_cmd("experiment=lenet_mnist_frankle2019", f"dataset.root={data}",
                                 "prune.rounds=0", f"train.duration={iters}it",
                                 f"output_root={out}", "wandb.mode=offline",
                                 f"wandb.dir={tmp}"), env, tmp)[0]

    t1, t2 = run(n1), run(n2)
    marginal = (t2 - t1) / (n2 - n1)
    result: dict[str, object] = {
        "n1": n1, "n2": n2, "wall_s_n1": t1, "wall_s_n2": t2, "marginal_ms": marginal * 1e3,
        "estimated_round_s": t1 + (LENET_PRESET_ITERS - n1) * marginal,
        "estimate": f"t({n1}) + ({LENET_PRESET_ITERS} - {n1}) x marginal",
    }
    if full:
        result["measured_iters"], result["measured_round_s"] = full, run(full)
    return result
