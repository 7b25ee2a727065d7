"""Weight matching's time against one training round, ResNet-20 and the default MLP.

    python -m scripts.bench_rebasin [--repeats 3] [--chunk 20] [--out F]

For each model, two networks at different seeds' initialisations are aligned by
``lth.permute.weight_matching`` (to convergence, at most 100 sweeps; the sweeps are counted)
and, in the same turn, ``--chunk`` training iterations of one of them are timed (forward,
backward, optimizer step on random data of the preset's batch and input shape). The turns
repeat ``--repeats`` times, the two measurements interleaved so a drifting shared machine
slows both alike; each figure is the median over turns. A round's time is the per-iteration
time times the preset's iterations per round (ResNet-20: ``resnet20_cifar10``, 160 epochs of
CIFAR-10 at batch 128 = 62,400 iterations; the default MLP: ``mnist1d_lottery``, 1,500
iterations at batch 100), so the ratio is what matching adds to one round of IMP. Trained
networks may need another number of sweeps than fresh ones (the results page says how many
the stored runs took).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lth.models import MLP1D, ResNetCIFAR
from lth.permute import perm_spec, weight_matching
from lth.permute.matching import seeded_order

# name -> (model factory, input shape, classes, batch, iterations per round, optimizer)
CASES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], int, int, int, str]] = {
    "resnet20": (lambda: ResNetCIFAR((3, 32, 32), 10, depth=20), (3, 32, 32), 10, 128,
                 160 * 50_000 // 128, "sgd"),
    "mlp1d_residual": (lambda: MLP1D((1, 40), 10, (500, 500), residual=True, init="pytorch"),
                       (1, 40), 10, 100, 1500, "adam"),
}


def time_matching(make: Callable[[], nn.Module]) -> tuple[float, int]:
    """Seconds to align seed 1's network to seed 0's, and the sweeps it took."""
    torch.manual_seed(0)
    a = make().state_dict()
    torch.manual_seed(1)
    model = make()
    b = model.state_dict()
    sweeps, order = [0], seeded_order(0)

    def counted(sweep: int, n: int) -> list[int]:
        sweeps[0] = sweep + 1
        return order(sweep, n)

    began = time.perf_counter()
    weight_matching(perm_spec(model), a, b, order=counted)
    return time.perf_counter() - began, sweeps[0]


def time_iterations(model: nn.Module, optimizer: torch.optim.Optimizer, shape: tuple[int, ...],
                    classes: int, batch: int, chunk: int) -> float:
    """Seconds per training iteration over ``chunk`` iterations."""
    x, y = torch.randn(batch, *shape), torch.randint(0, classes, (batch,))
    began = time.perf_counter()
    for _ in range(chunk):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    return (time.perf_counter() - began) / chunk


def bench(name: str, repeats: int, chunk: int) -> dict:
    make, shape, classes, batch, iters, opt = CASES[name]
    model = make()
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9) if opt == "sgd"
                 else torch.optim.Adam(model.parameters(), lr=1e-3))
    time_iterations(model, optimizer, shape, classes, batch, 2)  # warm-up
    match_s, sweeps, iter_s = [], [], []
    for _ in range(repeats):
        t, n = time_matching(make)
        match_s.append(t)
        sweeps.append(n)
        iter_s.append(time_iterations(model, optimizer, shape, classes, batch, chunk))
    per_iter = statistics.median(iter_s)
    round_s = per_iter * iters
    return {"model": name, "match_s": statistics.median(match_s), "match_s_all": match_s,
            "sweeps": sweeps, "iter_s": per_iter, "iters_per_round": iters,
            "round_s": round_s, "match_over_round": statistics.median(match_s) / round_s,
            "batch": batch, "chunk": chunk}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [bench(name, args.repeats, args.chunk) for name in CASES]
    for r in rows:
        print(f"{r['model']:>15}: weight matching {r['match_s']:7.2f} s ({r['sweeps']} sweeps)"
              f"  one round {r['round_s']:9.1f} s ({r['iters_per_round']} it x "
              f"{1e3 * r['iter_s']:.1f} ms)  matching / round {100 * r['match_over_round']:.3f}%")
    if args.out:
        args.out.write_text(json.dumps({
            "rows": rows, "threads": args.threads, "torch": torch.__version__,
            "machine": platform.processor() or platform.machine(),
            "date": time.strftime("%Y-%m-%d"),
            "command": f"python -m scripts.bench_rebasin --repeats {args.repeats} --chunk "
                       f"{args.chunk} --threads {args.threads}"}, indent=2) + "\n")


if __name__ == "__main__":
    main()
