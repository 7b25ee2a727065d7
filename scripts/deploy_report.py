"""Deployment report: size, MACs, ONNX Runtime CPU latency and accuracy, side by side.

    python -m scripts.deploy_report [--out results/deploy] [--threads 1] [--quick]

Two parts, each measured in one run with every model's latency interleaved with the dense
model's (so a busy machine slows them alike):

1. Speed at CIFAR shapes (3x32x32, random weights; speed does not depend on the values):
   ResNet-20 and VGG-16, dense vs 25/50/75% of each layer's channels removed (L1, layer-wise)
   vs a 90%-sparse unstructured ticket shape, each fp32 and int8.
2. Accuracy on real data available offline (scikit-learn digits, 1x8x8; no CIFAR here):
   ResNet-20 dense (IMP round 0), its IMP ticket (weight rewinding), one-shot channel pruning
   of the dense net + fine-tuning, and a distilled ResNet-20 of reduced width with about the
   parameters of the 50%-channel model; fp32 (PyTorch and ORT) and int8 (ORT) accuracy.

Writes ``deploy_report.md``, ``deploy_report.json`` and ``deploy_report.png`` under --out.
"""

from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.data import load_dataset
from lth.export import (
    export_onnx,
    interleaved_latency,
    model_cost,
    ort_accuracy,
    quantize_int8,
    save_sparse,
    session,
)
from lth.export.pipeline import calibration_batches
from lth.files import write_text
from lth.lottery import Lottery, LotterySettings, RunStore
from lth.models import VGG, LeNet300100, ResNetCIFAR, count_parameters
from lth.pruning import PruneRates, apply_mask, density, full_mask, prune_mask
from lth.pruning.channels import channel_groups, remove_channels
from lth.pruning.structured import prune_channel_groups
from lth.tracking import NullSink
from lth.train import Span, evaluate, step_schedule, train
from lth.train.distill import distill
from scripts._deploy_report_lib import machine, rows_of, write_markdown, write_plot

CHANNEL_FRACTIONS = (0.25, 0.5, 0.75)


def channel_mask(model: nn.Module, x: torch.Tensor, fraction: float) -> dict[str, torch.Tensor]:
    """One-shot layer-wise L1 channel pruning of ``fraction`` of every group's channels."""
    mask = full_mask(model)
    return prune_channel_groups(channel_groups(model, x[:1]), model.state_dict(), mask,
                                score="l1", scope="layerwise", seed=0,
                                densities=dict.fromkeys(mask, 1.0 - fraction))


def weight_mask(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """One-shot global magnitude pruning to ``sparsity`` (an unstructured ticket's shape)."""
    mask = full_mask(model)
    return prune_mask(model.state_dict(), mask, strategy="magnitude_global", seed=0,
                      densities=dict.fromkeys(mask, 1.0 - sparsity))


def export_pair(model: nn.Module, x: torch.Tensor, calib: list, folder: Path, key: str
                ) -> dict[str, Path]:
    """fp32 and int8 ONNX files of ``model``."""
    fp32 = export_onnx(model, x[:1], folder / f"{key}.onnx")
    return {"fp32": fp32, "int8": quantize_int8(fp32, folder / f"{key}.int8.onnx", calib)}


def measure(variants: dict[str, dict[str, Any]], x1: torch.Tensor, x32: torch.Tensor,
            args: argparse.Namespace) -> None:
    """Fill each variant's fp32/int8 latency (ms) at batch 1 and 32, all interleaved."""
    sessions = {(k, p): session(path, args.threads)
                for k, v in variants.items() for p, path in v["files"].items()}
    for batch, x in (("b1", x1), ("b32", x32)):
        reps = args.repeats * (4 if batch == "b1" else 1)
        lat = interleaved_latency(sessions, x.numpy(), rounds=args.rounds, repeats=reps)
        for (k, p), ms in lat.items():
            variants[k].setdefault("latency", {}).setdefault(p, {})[batch] = ms
    for (k, p), sess in sessions.items():
        variants[k].setdefault("sessions", {})[p] = sess


def speed_section(arch: str, args: argparse.Namespace, folder: Path) -> list[dict]:
    """Part 1: CIFAR-shaped ``arch`` with random weights."""
    torch.manual_seed(0)
    dense = (ResNetCIFAR((3, 32, 32), 10, depth=20) if arch == "resnet20"
             else VGG((3, 32, 32), 10, depth=16)).eval()
    x = torch.randn(32, 3, 32, 32)
    calib = [torch.randn(8, 3, 32, 32).numpy() for _ in range(4)]
    models: dict[str, tuple[nn.Module, dict]] = {"dense": (dense, {"kind": "dense"})}
    for f in CHANNEL_FRACTIONS:
        mask = channel_mask(dense, x, f)
        models[f"channels-{int(f * 100)}%"] = (remove_channels(dense, mask, x[:2]), {
            "kind": "structured", "channels_removed": f, "sparsity": 1 - density(mask)})
    ticket = weight_mask(dense, 0.9)
    sparse_model = copy.deepcopy(dense)
    apply_mask(sparse_model, ticket)
    models["ticket-90%"] = (sparse_model, {"kind": "ticket", "sparsity": 1 - density(ticket)})
    variants = {}
    for key, (model, info) in models.items():
        variants[key] = {"sparsity": 0.0, **info, "cost": model_cost(model, x[:1]),
                         "files": export_pair(model, x, calib, folder, f"{arch}-{key}")}
    measure(variants, x[:1], x, args)
    return rows_of("speed", arch, variants)


def digits_lottery(data, args: argparse.Namespace, folder: Path) -> RunStore:
    """IMP on digits with ResNet-20: round 0 is the dense net, the last round the ticket."""
    settings = LotterySettings(
        seed=0, rounds=args.ticket_rounds, iterations=args.iterations, batch_size=64,
        rewind_iter=args.iterations // 20, strategy="magnitude_global",
        rates=PruneRates(0.5, output=0.0))
    lottery = Lottery(settings, data, lambda: ResNetCIFAR(data.input_shape, 10, depth=20),
                      sgd(args.lr), step_schedule([args.iterations * 3 // 4]),
                      RunStore(folder / "run"), NullSink(), torch.device("cpu"))
    lottery.run(on_round=lambda r: print(f"  IMP round {r['round']}: density "
                                         f"{r['density']:.3f} acc {r['test_acc']:.4f}"))
    return lottery.store


def sgd(lr: float):  # noqa: ANN201
    return lambda p: torch.optim.SGD(p, lr=lr, momentum=0.9, weight_decay=5e-4)


def loaded(store: RunStore, k: int, data) -> tuple[nn.Module, dict]:
    model = ResNetCIFAR(data.input_shape, 10, depth=20)
    model.load_state_dict(store.load_tensors(store.final_path(k)))
    return model.eval(), store.load_tensors(store.mask_path(k))


def finetuned_channels(dense: nn.Module, data, fraction: float, args: argparse.Namespace
                       ) -> tuple[nn.Module, dict]:
    """One-shot channel pruning of the trained dense net, then fine-tuning with the mask kept
    and the training schedule replayed (learning-rate rewinding, Renda et al. 2020: it beat
    600 iterations at lr/10 here, 99.4% vs 98.3% at 50% of channels)."""
    model = copy.deepcopy(dense)
    mask = channel_mask(model, data.x_train, fraction)
    apply_mask(model, mask)
    train(model, data, sgd(args.lr)(model.parameters()),
          Span(0, args.finetune, step_schedule([args.finetune * 3 // 4])), batch_size=64, seed=1,
          mask=mask)
    return remove_channels(model, mask, data.x_train[:8]), mask


def student_width(target_params: int, data) -> int:
    """The ResNet-20 width whose parameter count is closest to ``target_params``."""
    def params(w: int) -> int:
        return count_parameters(ResNetCIFAR(data.input_shape, 10, 20, w))
    return min(range(2, 17), key=lambda w: abs(params(w) - target_params))


def accuracy_section(args: argparse.Namespace, folder: Path) -> list[dict]:
    """Part 2: dense, ticket, channel-pruned and distilled ResNet-20 on digits."""
    data = load_dataset("digits")
    store = digits_lottery(data, args, folder)
    dense, _ = loaded(store, 0, data)
    ticket, ticket_mask = loaded(store, args.ticket_rounds, data)
    models = {"dense": (dense, {"kind": "dense"}),
              f"ticket-{round(100 * (1 - density(ticket_mask)))}%": (ticket, {
                  "kind": "ticket", "sparsity": 1 - density(ticket_mask), "mask": ticket_mask})}
    for f in CHANNEL_FRACTIONS:
        small, mask = finetuned_channels(dense, data, f, args)
        models[f"channels-{int(f * 100)}%"] = (small, {
            "kind": "structured", "channels_removed": f, "sparsity": 1 - density(mask)})
    target = count_parameters(models["channels-50%"][0])
    width = student_width(target, data)
    torch.manual_seed(0)
    student = ResNetCIFAR(data.input_shape, 10, depth=20, width=width)
    distill(student, dense, data, sgd(args.lr)(student.parameters()),
            iterations=args.iterations, batch_size=64, seed=2,
            lr_factor=step_schedule([args.iterations * 3 // 4]))
    dense_params = count_parameters(dense)
    models[f"student-w{width}"] = (student.eval(), {
        "kind": "distilled", "sparsity": 1 - count_parameters(student)
        / dense_params})
    return measure_digits(models, data, args, folder)


def measure_digits(models: dict, data, args: argparse.Namespace, folder: Path) -> list[dict]:
    calib = calibration_batches(data, 8, 32)
    variants = {}
    for key, (model, info) in models.items():
        files = export_pair(model, data.x_test, calib, folder, f"digits-{key}")
        variants[key] = {"sparsity": 0.0, **info, "files": files,
                         "cost": model_cost(model, data.x_test[:1]),
                         "torch_acc": evaluate(model, data.x_test, data.y_test)[1]}
        if "mask" in info:
            sparse = save_sparse(folder / f"{key}.sparse.pt", model.state_dict(), info.pop("mask"))
            torch.save(model.state_dict(), folder / f"{key}.dense.pt")
            variants[key].update(sparse_bytes=sparse.stat().st_size,
                                 dense_pt_bytes=(folder / f"{key}.dense.pt").stat().st_size)
    measure(variants, data.x_test[:1], data.x_test[:32], args)
    for v in variants.values():
        v["acc"] = {p: ort_accuracy(s, data.x_test, data.y_test)
                    for p, s in v["sessions"].items()}
    return rows_of("accuracy", "resnet20-digits", variants)


def lenet_sparse_file(folder: Path) -> dict[str, float]:
    """Target check: a 90%-sparse LeNet-300-100 (MNIST shape) as a compressed checkpoint."""
    torch.manual_seed(0)
    model = LeNet300100((1, 28, 28), 10)
    mask = weight_mask(model, 0.9)
    apply_mask(model, mask)
    torch.save(model.state_dict(), folder / "lenet.pt")
    sparse = save_sparse(folder / "lenet.sparse.pt", model.state_dict(), mask)
    dense = (folder / "lenet.pt").stat().st_size
    return {"sparsity": 1 - density(mask), "dense_bytes": dense,
            "sparse_bytes": sparse.stat().st_size, "ratio": sparse.stat().st_size / dense}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/deploy")
    p.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    p.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds")
    p.add_argument("--repeats", type=int, default=3, help="runs per model per round (b32)")
    p.add_argument("--iterations", type=int, default=1500, help="digits training iterations")
    p.add_argument("--finetune", type=int, default=1500, help="fine-tuning iterations")
    p.add_argument("--ticket-rounds", type=int, default=3, help="IMP rounds at 50%% each")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--quick", action="store_true", help="tiny budgets: a smoke test")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.repeats, args.iterations, args.finetune = 2, 1, 60, 20
        args.ticket_rounds = 1
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)  # 2 shared cores: more threads only oversubscribe them
    meta = {"command": "python -m scripts.deploy_report " + shlex.join(sys.argv[1:]),
            "machine": machine(args.threads),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for arch in ("resnet20", "vgg16"):
            print(f"speed: {arch}", flush=True)
            rows += speed_section(arch, args, Path(tmp))
        print("accuracy: resnet20 on digits", flush=True)
        rows += accuracy_section(args, Path(tmp))
        meta["lenet_sparse_checkpoint"] = lenet_sparse_file(Path(tmp))
    meta["wall_s"] = round(time.time() - time.mktime(time.strptime(meta["date"],
                                                                  "%Y-%m-%d %H:%M:%S")))
    write_text(out / "deploy_report.json", json.dumps({**meta, "rows": rows}, indent=2))
    write_markdown(out / "deploy_report.md", rows, meta)
    write_plot(out / "deploy_report.png", rows)
    print((out / "deploy_report.md").read_text())


if __name__ == "__main__":
    main()
