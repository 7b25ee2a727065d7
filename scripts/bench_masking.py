"""What lth adds to a training step and what a mask costs, measured in interleaved chunks.

    python -m scripts.bench_masking [--optimizer sgd|adam] [--rounds 40] [--chunk 100] [--out F]

LeNet-300-100 on MNIST-shaped 28x28 data, batch 60, one thread, evaluation only at the ends.
Each variant keeps its model and optimizer and trains ``--chunk`` more iterations per turn;
the variants take turns (the order rotated every round), and each ratio is the median over
rounds of the two variants' times in that round, so a machine whose speed drifts over seconds
to minutes (a shared VM) slows both sides of a ratio alike. The variants:

- ``bare``: a hand-written loop (forward, backward, step), no mask;
- ``bare_masked``: the same with the pruned gradients zeroed by one fused multiply;
- ``lth``: ``lth.train.core.run_loop`` over a ``SingleStepper`` with the dense round's mask;
- ``lth_pruned``: the same with an IMP-like mask (21% of fc1/fc2 kept, 48% of the output);
- ``multiply``: the one multiply alone, for scale.

The script uses only ``run_loop``, ``Span``, ``SingleStepper`` and the models, data and
pruning functions, so it runs against older checkouts too (``PYTHONPATH=<checkout>``).
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import BatchIterator, Dataset
from lth.models import LeNet300100
from lth.pruning import full_mask, prune_mask, scheduled_densities
from lth.train.core import LoopOptions, Span, run_loop
from lth.train.loop import SingleStepper

BATCH = 60
Chunk = Callable[[int], None]  # train k more iterations


def mnist_shaped(n_train: int, n_test: int) -> Dataset:
    g = torch.Generator().manual_seed(0)
    return Dataset("mnist-shaped", torch.randn(n_train, 1, 28, 28, generator=g),
                   torch.randint(0, 10, (n_train,), generator=g),
                   torch.randn(n_test, 1, 28, 28, generator=g),
                   torch.randint(0, 10, (n_test,), generator=g), 10)


def lenet_mask() -> dict[str, torch.Tensor]:
    """IMP after 7 rounds of layer-wise magnitude pruning (20%/round, output 10%/round)."""
    torch.manual_seed(0)
    model = LeNet300100((1, 28, 28), 10)
    weights = {n: p.detach() for n, p in model.named_parameters()}
    rates = {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}
    return prune_mask(weights, full_mask(model), strategy="magnitude_layerwise", seed=0,
                      densities=scheduled_densities(rates, 7))


def optimizer_factory(name: str) -> Callable[..., torch.optim.Optimizer]:
    if name == "sgd":  # plain SGD: the cheapest step, so a mask's share is largest
        return functools.partial(torch.optim.SGD, lr=0.05)
    return functools.partial(torch.optim.Adam, lr=1.2e-3, fused=True)


def bare(data: Dataset, make_opt: Callable, mask: dict[str, torch.Tensor] | None) -> Chunk:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                          nn.ReLU(), nn.Linear(100, 10))
    opt = make_opt(model.parameters())
    layers = {"fc1.weight": model[1], "fc2.weight": model[3], "fc3.weight": model[5]}
    pairs = [(layers[n].weight, m.float()) for n, m in (mask or {}).items()]
    batches = BatchIterator(data.x_train, data.y_train, BATCH, 1)
    state = {"it": 0}

    def run(k: int) -> None:
        for it in range(state["it"], state["it"] + k):
            x, y = batches.batch(it)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if pairs:
                torch._foreach_mul_([p.grad for p, _ in pairs], [m for _, m in pairs])
            opt.step()
        state["it"] += k

    return run


def lth(data: Dataset, make_opt: Callable, mask: dict[str, torch.Tensor] | None) -> Chunk:
    torch.manual_seed(0)
    model = LeNet300100((1, 28, 28), 10)
    m = full_mask(model) if mask is None else mask
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in m:
                p.mul_(m[n])
    stepper = SingleStepper(model, make_opt(model.parameters()),
                            BatchIterator(data.x_train, data.y_train, BATCH, 1), m)
    state = {"it": 0}

    def run(k: int) -> None:
        run_loop(stepper, data, Span(state["it"], state["it"] + k, lambda it: 1.0),
                 LoopOptions())
        state["it"] += k

    return run


def multiply(mask: dict[str, torch.Tensor]) -> Chunk:
    grads = [torch.randn(m.shape) for m in mask.values()]
    floats = [m.float() for m in mask.values()]

    def run(k: int) -> None:
        for _ in range(k):
            torch._foreach_mul_(grads, floats)

    return run


def measure(variants: dict[str, Chunk], rounds: int, chunk: int) -> dict[str, list[float]]:
    """Per variant, the CPU seconds of each round's chunk (after one warm-up chunk each)."""
    names = list(variants)
    for name in names:
        variants[name](chunk)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.process_time()
            variants[name](chunk)
            times[name].append(time.process_time() - start)
    return times


def paired(times: dict[str, list[float]], a: str, b: str) -> dict[str, float]:
    """Median and quartiles over rounds of a's time / b's time in the same round."""
    r = sorted(x / y for x, y in zip(times[a], times[b]))
    q = statistics.quantiles(r, n=4)
    return {"median": round(statistics.median(r), 4), "q1": round(q[0], 4),
            "q3": round(q[2], 4)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_masking", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--chunk", type=int, default=100, help="iterations per turn")
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data, mask, make_opt = mnist_shaped(12_000, 60), lenet_mask(), optimizer_factory(
        args.optimizer)
    times = measure({"bare": bare(data, make_opt, None),
                     "bare_masked": bare(data, make_opt, mask),
                     "lth": lth(data, make_opt, None), "lth_pruned": lth(data, make_opt, mask),
                     "multiply": multiply(mask)}, args.rounds, args.chunk)
    ratios = {"lth / bare (overhead)": paired(times, "lth", "bare"),
              "lth pruned / lth dense": paired(times, "lth_pruned", "lth"),
              "bare masked / bare": paired(times, "bare_masked", "bare"),
              "one multiply / bare step": paired(times, "multiply", "bare")}
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    head = (f"{cpu}, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
            f"1 thread, {args.optimizer}, {args.rounds} rounds of {args.chunk} iterations")
    print(head)
    for name, t in times.items():
        print(f"  {name:<12} {1e6 * statistics.median(t) / args.chunk:8.1f} us/it (cpu, median)")
    for name, r in ratios.items():
        print(f"  {name:<26} {r['median']:.3f}x  (quartiles {r['q1']:.3f}-{r['q3']:.3f})")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "machine": head, "torch": torch.__version__, "optimizer": args.optimizer,
            "rounds": args.rounds, "chunk": args.chunk, "ratios": ratios,
            "us_per_it": {n: 1e6 * statistics.median(t) / args.chunk for n, t in times.items()},
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
