"""Deployment report: size, MACs, ONNX Runtime CPU latency and accuracy, side by side.

    python -m scripts.deploy_report [--out results/deploy] [--threads 1] [--archs resnet20,vgg16]
        [--ticket-run DIR [--channel-run DIR ...] [--student-run DIR ...]] [--quick]

Two parts, each measured in one run with every model's latency interleaved with the dense
model's (so a busy machine slows them alike):

1. Speed at CIFAR shapes (3x32x32, random weights; speed does not depend on the values):
   ResNet-20 and VGG-16 (``--archs``), dense vs 25/50/75% of each layer's channels removed
   (L1, layer-wise) vs a 90%-sparse unstructured ticket shape, each fp32 and int8.
2. Accuracy of stored runs (nothing is trained here): the dense network (round 0 of
   ``--ticket-run``, an ``experiments.lottery`` run) and its ticket (its last round), the last
   round of each ``--channel-run`` (a ``prune.granularity=channel`` run, physically smaller)
   and each ``--student-run`` (an ``experiments.distill`` run); fp32 (PyTorch and ORT) and
   int8 (ORT) accuracy on the runs' test set.

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
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lth.errors import ConfigError, LthError
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
from lth.models import VGG, LeNet300100, ResNetCIFAR, count_parameters
from lth.pruning import apply_mask, density, full_mask, prune_mask
from lth.pruning.channels import channel_groups, remove_channels
from lth.pruning.structured import prune_channel_groups
from lth.train import evaluate
from scripts._deploy_report_lib import machine, rows_of, write_markdown, write_plot

if TYPE_CHECKING:
    from experiments.stored import StoredRun

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
        mask = ticket if key == "ticket-90%" else None
        variants[key] = {"sparsity": 0.0, **info, "cost": model_cost(model, x[:1], mask),
                         "files": export_pair(model, x, calib, folder, f"{arch}-{key}")}
    measure(variants, x[:1], x, args)
    return rows_of("speed", arch, variants)


def opened(run_dir: str, key: str, kind: str = "lottery") -> StoredRun:
    """A stored run named by the option ``key``, reopened (kind, schema and hash checked)."""
    from experiments.stored import open_run

    return open_run(run_dir, key=key, kinds=(kind,))


def stored_round(run: StoredRun, data=None, k: int | None = None):  # noqa: ANN001, ANN201
    """Round ``k`` (default: the last completed) of a reopened lottery run: (model with its
    mask applied, mask, dataset, run config)."""
    from experiments.setup import load_data, model_factory
    from lth.export.pipeline import load_round, resolve_round

    data = data if data is not None else load_data(run.cfg, torch.device("cpu"))
    model = model_factory(run.cfg, data)()
    mask = load_round(model, run.store, resolve_round(run.store, k))
    return model, mask, data, run.cfg


def channels_removed(full: nn.Module, small: nn.Module) -> float:
    """The share of conv output channels ``small`` lacks against ``full``."""
    def count(m: nn.Module) -> int:
        return sum(c.out_channels for c in m.modules() if isinstance(c, nn.Conv2d))
    return 1 - count(small) / max(1, count(full))


def stored_student(run: StoredRun, data) -> tuple[nn.Module, dict]:  # noqa: ANN001
    """The student of a reopened ``experiments.distill`` run, and its record."""
    from omegaconf import OmegaConf

    from experiments.setup import model_factory

    (record,) = run.store.read_metrics() or [None]
    if record is None:
        raise ConfigError(f"--student-run={run.store.root} has no complete student: run or "
                          "resume its python -m experiments.distill command first")
    node = OmegaConf.create({"model": run.cfg.model, "dataset": {"name": "stored"}})
    model = model_factory(node, data)()
    model.load_state_dict(run.store.load_tensors(run.store.final_path(0)))
    return model.eval(), record


def open_runs(args: argparse.Namespace) -> dict[str, list[StoredRun]]:
    """Every run the options name, reopened before anything is measured: a bad one fails
    at once, not after the speed section."""
    if not args.ticket_run and (args.channel_run or args.student_run):
        raise ConfigError("--channel-run and --student-run are compared with a --ticket-run: "
                          "pass --ticket-run=<a run directory of python -m experiments.lottery>")
    return {"ticket": [opened(args.ticket_run, "--ticket-run")] if args.ticket_run else [],
            "channel": [opened(r, "--channel-run") for r in args.channel_run],
            "student": [opened(r, "--student-run", "distill") for r in args.student_run]}


def accuracy_section(runs: dict[str, list[StoredRun]], args: argparse.Namespace,
                     folder: Path) -> list[dict]:
    """Part 2: the stored runs' dense network (round 0 of --ticket-run), ticket (its last
    round), channel-pruned networks (--channel-run, physically smaller) and students
    (--student-run), side by side; nothing is trained here."""
    (ticket_run,) = runs["ticket"]
    dense, _, data, cfg = stored_round(ticket_run, k=0)
    ticket, ticket_mask, _, _ = stored_round(ticket_run, data)
    arch = f"{cfg.model._target_.rsplit('.', 1)[-1]}-{cfg.dataset.name}"
    models = {"dense": (dense.eval(), {"kind": "dense"}),
              f"ticket-{round(100 * (1 - density(ticket_mask)))}%": (ticket, {
                  "kind": "ticket", "sparsity": 1 - density(ticket_mask), "mask": ticket_mask})}
    for run in runs["channel"]:
        model, mask, _, _ = stored_round(run, data)
        small = remove_channels(model, mask, data.x_train[:8])
        removed = channels_removed(model, small)
        models[f"channels-{round(100 * removed)}%"] = (small, {
            "kind": "structured", "channels_removed": removed, "sparsity": 1 - density(mask)})
    dense_params = count_parameters(dense)
    for run in runs["student"]:
        student, record = stored_student(run, data)
        models[f"student-{count_parameters(student)}p"] = (student, {
            "kind": "distilled", "sparsity": 1 - count_parameters(student) / dense_params})
    return measure_digits(models, data, args, folder, arch)


def measure_digits(models: dict, data, args: argparse.Namespace, folder: Path,
                   arch: str) -> list[dict]:
    calib = calibration_batches(data, 8, 32)
    variants = {}
    for key, (model, info) in models.items():
        files = export_pair(model, data.x_test, calib, folder, f"digits-{key}")
        variants[key] = {"sparsity": 0.0, **info, "files": files,
                         "cost": model_cost(model, data.x_test[:1], info.get("mask")),
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
    return rows_of("accuracy", arch, variants)


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
    p.add_argument("--archs", default="resnet20,vgg16",
                   help="speed section: comma-separated resnet20, vgg16 ('' skips it)")
    p.add_argument("--ticket-run", help="a stored lottery run: round 0 is the dense model, "
                   "its last round the ticket (accuracy section; omitted: no such section)")
    p.add_argument("--channel-run", action="append", default=[],
                   help="a stored prune.granularity=channel run (repeatable): its last round")
    p.add_argument("--student-run", action="append", default=[],
                   help="a stored experiments.distill run (repeatable)")
    p.add_argument("--quick", action="store_true", help="tiny timing budgets: a smoke test")
    args = p.parse_args()
    unknown = set(filter(None, args.archs.split(","))) - {"resnet20", "vgg16"}
    if unknown:
        p.error(f"--archs {args.archs!r}: unknown {', '.join(sorted(unknown))}; use resnet20, "
                "vgg16 or ''")
    if args.quick:
        args.rounds, args.repeats = 2, 1
    return args


def main() -> int:
    args = parse_args()
    try:
        runs = open_runs(args)
        report(args, runs)
    except LthError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def report(args: argparse.Namespace, runs: dict[str, list[StoredRun]]) -> None:
    """Measure both parts and write the report files under ``args.out``."""
    torch.set_num_threads(1)  # 2 shared cores: more threads only oversubscribe them
    meta = {"command": "python -m scripts.deploy_report " + shlex.join(sys.argv[1:]),
            "runs": [r for r in [args.ticket_run, *args.channel_run, *args.student_run] if r],
            "machine": machine(args.threads),
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for arch in filter(None, args.archs.split(",")):
            print(f"speed: {arch}", flush=True)
            rows += speed_section(arch, args, Path(tmp))
        if args.ticket_run:
            print(f"accuracy: stored runs {args.ticket_run} and others", flush=True)
            rows += accuracy_section(runs, args, Path(tmp))
        meta["lenet_sparse_checkpoint"] = lenet_sparse_file(Path(tmp))
    meta["wall_s"] = round(time.time() - time.mktime(time.strptime(meta["date"],
                                                                  "%Y-%m-%d %H:%M:%S")))
    write_text(out / "deploy_report.json", json.dumps({**meta, "rows": rows}, indent=2))
    write_markdown(out / "deploy_report.md", rows, meta)
    write_plot(out / "deploy_report.png", rows)
    print((out / "deploy_report.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
