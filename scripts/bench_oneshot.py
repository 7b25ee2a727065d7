"""Two measurements, each interleaved so that a busy machine slows the things compared alike.

    python -m scripts.bench_oneshot [--out results/benchmarks/oneshot] [--threads 2] [--quick]

1. ``round_to``: ONNX Runtime CPU latency of a channel-pruned Conv-2 (3x32x32 inputs: 64/64
   conv channels, 256/256 hidden units), channels chosen by global L1 at 50% on weights whose
   channels have unequal scales (as trained ones do), kept counts as the scores give them
   (``prune.channel_round_to=1``) and rounded to multiples of 8 and 16, beside the dense
   network; batch 1 and 32.
2. Calibrated pruning time: Wanda's and SparseGPT's one-shot pruning of the ``vit_digits``
   ViT (128 calibration samples), magnitude per row, and one training round of it (400
   iterations of batch 64, Adam), timed in turns.

Writes ``bench_oneshot.md`` and ``bench_oneshot.json`` under --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.export import export_onnx, interleaved_latency, session
from lth.files import write_text
from lth.models import ConvNet, ViT
from lth.pruning import PruneRates, full_mask, layer_rates, scheduled_densities
from lth.pruning.channels import alive_channels, remove_channels
from lth.pruning.pruner import Pruner, PrunerSettings
from lth.pruning.structured import ChannelPruner

ROUND_TO = (1, 8, 16)


def _conv2() -> nn.Module:
    torch.manual_seed(0)
    model = ConvNet((3, 32, 32), 10, depth=2).eval()
    with torch.no_grad():  # unequal channel scales: global L1 keeps odd counts per layer
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.mul_(torch.rand(m.weight.shape[0], *[1] * (m.weight.dim() - 1)) * 2)
    return model


def channel_latency(threads: int, quick: bool) -> list[dict[str, Any]]:
    """Latency rows: dense and each ``round_to``, batch 1 and 32."""
    model, x = _conv2(), torch.randn(32, 3, 32, 32)
    rates = layer_rates(model, sorted(full_mask(model)), PruneRates(0.5, output=0.0))
    nets: dict[str, tuple[nn.Module, list[int]]] = {"dense": (model, [64, 64, 256, 256])}
    for k in ROUND_TO:
        pruner = ChannelPruner(_conv2, x, torch.zeros(32, dtype=torch.long), 8,
                               PrunerSettings(channel_round_to=k))
        mask = pruner(model.state_dict(), full_mask(model), strategy="magnitude_global",
                      seed=1, densities=scheduled_densities(rates, 1))
        kept = {g.root: int(alive_channels(g, mask).sum()) for g in pruner.groups()}
        counts = [kept[n] for n in ("conv1", "conv2", "fc1", "fc2")]
        nets[f"round_to={k}"] = (remove_channels(model, mask, x[:2]), counts)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {name: session(export_onnx(net, x[:1], Path(tmp) / f"{i}.onnx"), threads)
                    for i, (name, (net, _)) in enumerate(nets.items())}
        for batch in (1, 32):
            ms = interleaved_latency(sessions, x[:batch].numpy(), rounds=3 if quick else 10,
                                     repeats=5 if quick else 10)
            for name, (_, counts) in nets.items():
                rows.append({"net": name, "channels": counts, "batch": batch,
                             "ms": round(ms[name], 4),
                             "speedup": round(ms["dense"] / ms[name], 2)})
    return rows


def _vit() -> nn.Module:
    return ViT((1, 8, 8), 10, patch=4, dim=32, depth=2, heads=4, mlp_dim=64)


def pruning_time(quick: bool) -> dict[str, float]:
    """Median seconds of each one-shot pruning and of one training round, in turns."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = _vit()
    mask = {n: m for n, m in full_mask(model).items() if n != "head.weight"}
    densities = {n: 0.5 for n in mask}
    pruner = Pruner(_vit, x, y, 64, PrunerSettings(calibration_samples=128))
    iterations = 40 if quick else 400

    def train() -> None:
        net = _vit()
        opt = torch.optim.Adam(net.parameters(), 2e-3)
        for _ in range(iterations):
            idx = torch.randint(0, len(x), (64,))
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()

    jobs = {s: (lambda s=s: pruner.solve(model.state_dict(), mask, strategy=s, seed=0,
                                         densities=densities))
            for s in ("magnitude_row", "wanda", "sparsegpt")}
    jobs[f"train {iterations} it"] = train
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(1 if quick else 2):
        for name, job in jobs.items():
            start = time.perf_counter()
            job()
            times[name].append(time.perf_counter() - start)
    return {k: round(sorted(v)[len(v) // 2], 4) for k, v in times.items()}


def report(latency: list[dict[str, Any]], timing: dict[str, float], meta: dict[str, Any]) -> str:
    """The markdown page."""
    lines = [f"`{meta['command']}` — {meta['date']}, {meta['machine']}, torch {meta['torch']}, "
             f"ONNX Runtime {meta['threads']} threads.", "",
             "| network | kept channels | batch | latency (ms) | speed-up vs dense |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {r['net']} | {'/'.join(map(str, r['channels']))} | {r['batch']} | "
              f"{r['ms']:.3f} | {r['speedup']:.2f}× |" for r in latency]
    train = next(v for k, v in timing.items() if k.startswith("train"))
    lines += ["", "| one-shot pruning of the vit_digits ViT (128 samples) | seconds | "
              "× one training round |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v:.3f} | {v / train:.3f} |" for k, v in timing.items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks/oneshot")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    meta = {"command": "python -m scripts.bench_oneshot " + shlex.join(argv or sys.argv[1:]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads}
    latency, timing = channel_latency(args.threads, args.quick), pruning_time(args.quick)
    out = Path(args.out)
    write_text(out / "bench_oneshot.json", json.dumps(
        {"meta": meta, "latency": latency, "pruning_s": timing}, indent=2))
    write_text(out / "bench_oneshot.md", report(latency, timing, meta))
    print(report(latency, timing, meta))


if __name__ == "__main__":
    main()
