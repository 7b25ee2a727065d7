"""Section 6 of scripts/benchmark.py (issue #12): ResNet-20 at scale, DDP, the full figure.

6a ResNet-20 on CIFAR-10-shaped data, batch 128: lth's round (through the driver) against a
   bare PyTorch loop at the same precision; lth bf16 (+ compile) against lth fp32;
6b ``replicas=8`` ResNet-20 against 8 sequential runs (throughput);
6c DDP: the default experiment through torchrun with 2 gloo ranks against 1 process;
6d the Frankle & Carbin LeNet-300-100 figure (21 rounds x 50K it, ticket + random_reinit,
   5 seeds) estimated from measured per-iteration times, with replicas=5 for the tickets
   (controls run one at a time: replicas refuse them) and open_lth-style one run at a time.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lth.data import BatchIterator, Dataset
from lth.errors import ConfigError
from lth.lottery import Lottery, LotterySettings
from lth.models import ResNetCIFAR
from lth.pruning import PruneRates
from lth.store import RunStore
from lth.tracking import CurveFileSink
from lth.train import step_schedule
from lth.train.accel import Accel, check_compile
from scripts import bench_training
from scripts.bench_timing import Marginal, Variant, clock, compare

ROOT = Path(__file__).resolve().parents[1]
BATCH = 128
FIGURE = dict(rounds=20, iterations=50_000, seeds=5)  # Frankle & Carbin 2019, Figure 1/3


def cifar_shaped(n_train: int, device: torch.device) -> Dataset:
    """Random CIFAR-10-shaped data: x [N, 3, 32, 32], y in 0..9."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n_train + 512, 3, 32, 32, generator=g), torch.randint(0, 10, (n_train
                                                                              + 512,), generator=g)
    return Dataset("cifar-shaped", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   10).to(device)


def resnet_lottery(data: Dataset, device: torch.device, accel: Accel, batch: int,
                   eval_every: int):  # noqa: ANN201 - a bench_training.LotteryFactory
    """ResNet-20 through the driver, SGD with momentum (the preset's), no checkpoints."""

    def make(seed: int, root: Path, iterations: int, rounds: int) -> Lottery:
        settings = LotterySettings(seed=seed, rounds=rounds, iterations=iterations,
                                   batch_size=batch, rewind_iter=0,
                                   strategy="magnitude_global", rates=PruneRates(0.2),
                                   eval_every=eval_every)
        opt = lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4)  # noqa: E731
        return Lottery(settings, data, lambda: ResNetCIFAR((3, 32, 32), 10), opt,
                       step_schedule([]), RunStore(root), CurveFileSink(root / "curve.jsonl"),
                       device, accel=accel)

    return make


def bare_resnet(data: Dataset, device: torch.device, batch: int) -> Variant:
    """A hand-written fp32 loop: the same model, optimizer and batches, nothing else."""

    def run(n: int) -> tuple[float, float]:
        torch.manual_seed(0)
        model = ResNetCIFAR((3, 32, 32), 10).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        batches = BatchIterator(data.x_train, data.y_train, batch, 1)
        start = clock(device)
        for it in range(n):
            x, y = batches.batch(it)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        end = clock(device)
        return end[0] - start[0], end[1] - start[1]

    return run


def section_6a(device: torch.device, n: tuple[int, int], batch: int, repeats: int) -> dict:
    data = cifar_shaped(4 * batch * n[1], device)
    ev = 10 * n[1]  # no evaluation inside the measured spans (both sides train only)
    variants = {"bare_fp32": bare_resnet(data, device, batch),
                "lth_fp32": bench_training.lottery_round0(
                    resnet_lottery(data, device, Accel(), batch, ev), [0], device),
                "lth_bf16": bench_training.lottery_round0(
                    resnet_lottery(data, device, Accel("bf16"), batch, ev), [0], device)}
    compile_note = None
    try:
        check_compile()
        variants["lth_bf16_compile"] = bench_training.lottery_round0(
            resnet_lottery(data, device, Accel("bf16", compile=True), batch, ev), [0], device)
    except ConfigError as e:
        compile_note = str(e)
    out = compare(variants, *n, repeats, warmup=2)
    return {"marginal": {k: v.as_dict() for k, v in out.items()}, "compile": compile_note,
            "_m": out}


def section_6b(device: torch.device, n: tuple[int, int], batch: int, repeats: int,
               k: int) -> dict:
    data = cifar_shaped(4 * batch * n[1], device)
    make = resnet_lottery(data, device, Accel(), batch, 10 * n[1])
    out = compare({"single": bench_training.lottery_round0(make, [0], device),
                   "replicas": bench_training.lottery_round0(make, list(range(k)), device)},
                  *n, repeats, warmup=2)
    return {"marginal": {k_: v.as_dict() for k_, v in out.items()}, "_m": out}


def _cli_wall(ranks: int, iterations: int, threads: int) -> tuple[float, float]:
    """(wall, CPU of all processes) seconds of the default experiment's round 0
    (``iterations``), 1 process or ``ranks`` gloo ranks."""
    with tempfile.TemporaryDirectory() as tmp:
        launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                     f"--nproc_per_node={ranks}"] if ranks > 1 else [sys.executable])
        cmd = [*launcher, "-m", "experiments.lottery", f"output_root={tmp}", "prune.rounds=0",
               "device=cpu",  # gloo ranks on the CPU, also on a GPU machine
               f"train.duration={iterations}it", "train.eval_every=0it", "progress=false",
               "wandb.mode=disabled", "train.checkpoint_every=0it"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        start, cpu = time.perf_counter(), _children_cpu()
        subprocess.run(cmd, cwd=tmp, env=env, check=True, capture_output=True)
        return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def section_6c(n: tuple[int, int], threads: int) -> dict:
    """Marginal time per iteration, 1 process vs 2 gloo ranks (start-up cancels): wall, and
    CPU summed over the processes."""
    out = {}
    for ranks in (1, 2):
        (w1, c1), (w2, c2) = _cli_wall(ranks, n[0], threads), _cli_wall(ranks, n[1], threads)
        out[f"ranks_{ranks}"] = {"wall_s": [round(w1, 2), round(w2, 2)],
                                 "cpu_s": [round(c1, 2), round(c2, 2)],
                                 "marginal_us": round((w2 - w1) / (n[1] - n[0]) * 1e6, 1),
                                 "marginal_cpu_us": round((c2 - c1) / (n[1] - n[0]) * 1e6, 1)}
    return out


def section_6d(device: torch.device, n: tuple[int, int], repeats: int) -> dict:
    """LeNet-300-100 per-iteration times (1 run, replicas=5) and the figure's wall time."""
    data = bench_training.mnist_shaped(60_000, 10_000, device)
    make = bench_training.lenet_lottery(data, device, eval_every=n[1] - n[0])
    seeds = list(range(FIGURE["seeds"]))
    m = compare({"single": bench_training.lottery_round0(make, [0], device),
                 "replicas": bench_training.lottery_round0(make, seeds, device)},
                *n, repeats)
    its, rounds, s = FIGURE["iterations"], FIGURE["rounds"], FIGURE["seeds"]
    ticket_runs, control_runs = (rounds + 1) * its, rounds * its  # per seed
    est = {}
    for kind in ("wall", "cpu"):
        single_s = getattr(m["single"], f"{kind}_us") / 1e6
        group_s = getattr(m["replicas"], f"{kind}_us") / 1e6
        lth_s = ticket_runs * group_s + s * control_runs * single_s
        est[kind] = (round(lth_s / 60, 1), round(s * (ticket_runs + control_runs) * single_s
                                                 / 60, 1))
    return {"marginal": {k: v.as_dict() for k, v in m.items()},
            "estimate_lth_replicas_min": est["wall"][0],
            "estimate_one_run_at_a_time_min": est["wall"][1],
            "estimate_from_cpu_time_min": {"lth_replicas": est["cpu"][0],
                                           "one_run_at_a_time": est["cpu"][1]},
            "assumes": "per-iteration marginal incl. evaluation every "
                       f"{n[1] - n[0]} it; tickets of 5 seeds as replicas=5; random_reinit "
                       "controls one at a time (replicas refuse controls); start-up, "
                       "pruning and file writes not included"}


def rows_for(report: dict, k: int, ratio_row) -> list:  # noqa: ANN001 - benchmark._ratio_row
    """The table rows of section 6 (``ratio_row`` from scripts.benchmark)."""
    rows: list = []
    a = report.get("6a")
    if a:
        m: dict[str, Marginal] = a["_m"]
        batch = report["sizes"]["batch"]
        ratio_row(rows, f"6a ResNet-20 b{batch}: lth fp32 / bare fp32 loop", m["lth_fp32"],
                  m["bare_fp32"], "<= 1.10x")
        ratio_row(rows, "6a ResNet-20: lth fp32 / lth bf16 (speed-up)", m["lth_fp32"],
                  m["lth_bf16"], "info (GPU: not measured)")
        if "lth_bf16_compile" in m:
            ratio_row(rows, "6a ResNet-20: lth fp32 / lth bf16+compile (speed-up)",
                      m["lth_fp32"], m["lth_bf16_compile"], ">= 1.5x on GPU (not measured)")
    b = report.get("6b")
    if b:
        ratio_row(rows, f"6b ResNet-20 b{report['sizes']['replica_batch']} replicas={k} / {k} "
                  "sequential (throughput)",
                  b["_m"]["single"], b["_m"]["replicas"], ">= 1.5x CPU, >= 4x GPU", scale=k,
                  names=("1 run ", f"{k} replicas "))
    c = report.get("6c")
    if c:
        one, two = c["ranks_1"], c["ranks_2"]
        rows.append(("6c DDP gloo 2 ranks vs 1 process (default experiment)",
                     f"{one['marginal_us']:.0f} vs {two['marginal_us']:.0f} us/it (cpu, all "
                     f"ranks: {one['marginal_cpu_us']:.0f} vs {two['marginal_cpu_us']:.0f})",
                     f"{one['marginal_us'] / two['marginal_us']:.2f}x", "report"))
    d = report.get("6d")
    if d:
        rows.append(("6d LeNet-300-100 figure (21x50K it, +reinit, 5 seeds), estimated",
                     f"lth {d['estimate_lth_replicas_min']} min; one run at a time "
                     f"{d['estimate_one_run_at_a_time_min']} min (from cpu time: "
                     f"{d['estimate_from_cpu_time_min']['lth_replicas']} / "
                     f"{d['estimate_from_cpu_time_min']['one_run_at_a_time']} min)", "",
                     "< 15 min on one GPU (GPU: not measured)"))
    return rows


def strip(report: dict) -> dict:
    """The report without the Marginal objects (for JSON)."""
    return {k: {kk: vv for kk, vv in v.items() if kk != "_m"} if isinstance(v, dict) else v
            for k, v in report.items()}


def run(device: torch.device, quick: bool, repeats: int, threads: int, k: int) -> dict:
    """Every part of section 6; sizes small with ``quick``."""
    n = (1, 3)
    batch = 32 if quick else BATCH
    # replicas=8 at batch 128 is 8 x 128 ResNet-20 samples a step: on a CPU that alone is
    # minutes a repeat, so the CPU run compares them at batch 32 (batch 128 on CUDA).
    replica_batch = BATCH if device.type == "cuda" else 32
    report: dict = {"sizes": {"iterations": n, "batch": batch, "replicas": k,
                              "replica_batch": replica_batch}}
    report["6a"] = section_6a(device, n, batch, repeats)
    report["6b"] = section_6b(device, n, replica_batch, repeats, k)
    report["6c"] = section_6c((100, 300) if quick else (1000, 3000), threads)
    report["6d"] = section_6d(device, (100, 300) if quick else (300, 1300), repeats)
    return report
