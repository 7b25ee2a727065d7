"""Where a round of the default network spends its time: Adam's step and the forward/backward
pass, per 300 iterations, with subnormal floats kept (the default) and flushed to zero.

    python -m scripts.bench_denormals [--iterations 1500] [--out results/benchmarks/<file>.json]

Trains the default experiment's network (residual MLP 40-500-500-10, PyTorch init, Adam 2e-2,
batch 100) on MNIST-1D with one thread, the same loop in two processes' worth of state: once
as lth trains (IEEE subnormals), once under ``torch.set_flush_denormal(True)``. The momentum
of a weight whose gradient stays zero (a dead ReLU unit's) decays by Adam's beta1 each step into
the subnormal range, where x86 arithmetic is many times slower; flushing removes that cost
but changes the numbers, so lth does not flush. Timings depend on the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from lth.data.embedded import load_mnist1d
from lth.models import MLP1D

SUBNORMAL = torch.finfo(torch.float32).tiny


def measure(iterations: int, flush: bool, block: int = 300) -> dict:
    """Per-block mean milliseconds of the forward/backward pass and of Adam's step."""
    torch.manual_seed(0)  # the same data and initial weights either way, made unflushed
    data = load_mnist1d()
    x, y = data.x_train.reshape(len(data.x_train), -1), data.y_train
    model = MLP1D((40,), 10, (500, 500), residual=True, init="pytorch")
    opt = torch.optim.Adam(model.parameters(), lr=2e-2, fused=True)
    gen = torch.Generator().manual_seed(0)
    blocks, fb, ad = [], 0.0, 0.0
    torch.set_flush_denormal(flush)
    try:
        for it in range(iterations):
            idx = torch.randint(0, len(x), (100,), generator=gen)
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            t1 = time.perf_counter()
            opt.step()
            t2 = time.perf_counter()
            fb, ad = fb + t1 - t0, ad + t2 - t1
            if (it + 1) % block == 0:
                moments = [s["exp_avg"] for s in opt.state.values()]
                sub = sum(int(((m != 0) & (m.abs() < SUBNORMAL)).sum()) for m in moments)
                blocks.append({"iterations": it + 1,
                               "forward_backward_ms": round(fb / block * 1e3, 2),
                               "adam_ms": round(ad / block * 1e3, 2), "subnormal_exp_avg": sub})
                fb = ad = 0.0
    finally:  # the process's other work keeps IEEE subnormals
        torch.set_flush_denormal(False)
    return {"flush_denormal": flush, "blocks": blocks}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_denormals",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1500, help="training iterations")
    parser.add_argument("--out", type=Path, help="write the JSON here (default: print only)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    result = {"cpu": platform.processor() or platform.machine(),
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "torch": torch.__version__, "threads": 1,
              "runs": [measure(args.iterations, flush) for flush in (False, True)]}
    for run in result["runs"]:
        for b in run["blocks"]:
            print(f"flush={run['flush_denormal']!s:5} it {b['iterations']:5}: forward+backward "
                  f"{b['forward_backward_ms']:5.2f} ms, Adam {b['adam_ms']:5.2f} ms, "
                  f"subnormal momenta {b['subnormal_exp_avg']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
