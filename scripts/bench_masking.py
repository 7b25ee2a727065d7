"""What a mask costs a training step: lth's pruned round against its dense one, beside the same
masking written by hand, and the multiply alone; plain SGD or fused Adam, evaluation only at
the end (LeNet-300-100 on MNIST-shaped 28x28 data, batch 60).

    python -m scripts.bench_masking [--optimizer sgd|adam] [--repeats 5] [--out FILE]

Every figure is a marginal time per iteration ((t(n2) - t(n1)) / (n2 - n1), start-up
cancels), the variants alternated and each ratio the median of per-repeat ratios
(scripts/bench_timing.py). Where the pruned/dense ratio comes from: if the hand-written loop
pays the same share for its one multiply as lth does, the CPU's speed at the dense step
(how fast its matrix kernels are beside one pass over the gradients) sets it, not lth's code.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scripts import bench_training as bt
from scripts.bench_timing import compare, ratio


def optimizer(name: str):  # noqa: ANN201
    """Plain SGD (no momentum: the cheapest step, so the mask's share is largest) or lth's
    fused Adam at the LeNet preset's rate."""
    if name == "sgd":
        return functools.partial(torch.optim.SGD, lr=0.05)
    return bt.lenet_adam(True)


def multiply_only(mask: dict[str, torch.Tensor], device: torch.device):  # noqa: ANN201
    """The masking of one step alone: one fused multiply over LeNet-300-100's gradients."""
    grads = [torch.randn(m.shape, device=device) for m in mask.values()]
    floats = [m.to(device, torch.float32) for m in mask.values()]

    def run(n: int) -> tuple[float, float]:
        start = time.perf_counter(), time.process_time()
        for _ in range(n):
            torch._foreach_mul_(grads, floats)
        return time.perf_counter() - start[0], time.process_time() - start[1]

    return run


def forward_backward(data, device: torch.device):  # noqa: ANN001, ANN201
    """A dense forward and backward of LeNet-300-100 on batch 60, no optimizer step."""
    model = bt._bare_model(device)
    x, y = data.x_train[:bt.LENET_BATCH], data.y_train[:bt.LENET_BATCH]

    def run(n: int) -> tuple[float, float]:
        start = time.perf_counter(), time.process_time()
        for _ in range(n):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
        return time.perf_counter() - start[0], time.process_time() - start[1]

    return run


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.bench_masking", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--n1", type=int, default=200)
    p.add_argument("--n2", type=int, default=1200)
    p.add_argument("--train-size", type=int, default=12_000)
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    device = torch.device("cpu")
    data = bt.mnist_shaped(args.train_size, 1_000, device)
    mask = bt.sparse_lenet_mask()
    make = optimizer(args.optimizer)
    t = compare({
        "lth_dense": bt.lth_train(data, device, make, None, 0),
        "lth_pruned": bt.lth_train(data, device, make, mask, 0),
        "bare_dense": bt.bare(data, device, make),
        "bare_mask_grad": bt.bare(data, device, make, strategy="grad", mask=mask),
        "multiply": multiply_only(mask, device),
        "forward_backward": forward_backward(data, device),
    }, args.n1, args.n2, args.repeats)
    rows = {
        "lth pruned / lth dense": ratio(t["lth_pruned"], t["lth_dense"], "cpu"),
        "bare masked gradient / bare dense": ratio(t["bare_mask_grad"], t["bare_dense"], "cpu"),
        "lth dense / bare dense": ratio(t["lth_dense"], t["bare_dense"], "cpu"),
        "one multiply / bare dense step": ratio(t["multiply"], t["bare_dense"], "cpu"),
        "forward+backward / bare dense step": ratio(t["forward_backward"], t["bare_dense"],
                                                    "cpu"),
    }
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    print(f"{cpu}, torch {torch.__version__}, {torch.backends.cpu.get_cpu_capability()}, "
          f"1 thread, {args.optimizer}")
    for name, m in t.items():
        print(f"  {name:<20} {m.cpu_us:8.1f} us/it cpu ({m.wall_us:8.1f} wall)")
    for name, value in rows.items():
        print(f"  {name:<38} {value:.3f}x")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "cpu": cpu, "torch": torch.__version__,
            "capability": torch.backends.cpu.get_cpu_capability(), "threads": 1,
            "optimizer": args.optimizer, "repeats": args.repeats, "n1": args.n1, "n2": args.n2,
            "variants": {k: v.as_dict() for k, v in t.items()}, "ratios_cpu": rows}, indent=1))


if __name__ == "__main__":
    main()
