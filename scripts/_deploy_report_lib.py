"""scripts/deploy_report.py's rows, table (Markdown), figure and machine description.

A row is one model at one precision: ``section`` ("speed" or "accuracy"), ``arch``, ``model``,
``kind`` (dense | ticket | structured | distilled), ``precision`` (fp32 | int8),
``channels_removed``, ``sparsity`` (share of prunable weights removed, or of parameters for a
student), ``params``, ``nonzero``, ``macs_dense``, ``macs_sparse`` (lth's one MAC convention,
``lth.models.macs``, as in metrics.jsonl), ``file_bytes``, ``latency_b1_ms``,
``latency_b32_ms``, ``speedup_b1``/``speedup_b32`` (dense fp32 latency / this latency) and
``acc`` (ONNX Runtime accuracy, None for random weights).
"""

from __future__ import annotations

import io
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lth.files import atomic_write, write_text
from lth.models.macs import CONVENTION

Row = dict[str, Any]


def rows_of(section: str, arch: str, variants: dict[str, dict[str, Any]]) -> list[Row]:
    """Table rows (one per variant and precision), speedups against dense fp32."""
    base = variants["dense"]["latency"]["fp32"]
    rows = []
    for key, v in variants.items():
        for precision, path in v["files"].items():
            lat = v["latency"][precision]
            rows.append({
                "section": section, "arch": arch, "model": key, "kind": v["kind"],
                "precision": precision, "channels_removed": v.get("channels_removed", 0.0),
                "sparsity": v["sparsity"], "params": v["cost"].params,
                "nonzero": v["cost"].nonzero, "macs_dense": v["cost"].macs_dense,
                "macs_sparse": v["cost"].macs_sparse,
                "file_bytes": path.stat().st_size, "latency_b1_ms": lat["b1"],
                "latency_b32_ms": lat["b32"], "speedup_b1": base["b1"] / lat["b1"],
                "speedup_b32": base["b32"] / lat["b32"],
                "acc": v.get("acc", {}).get(precision), "torch_acc": v.get("torch_acc"),
                **({"sparse_bytes": v["sparse_bytes"], "dense_pt_bytes": v["dense_pt_bytes"]}
                   if "sparse_bytes" in v else {}),
            })
    return rows


def _find(rows: Sequence[Row], arch: str, model: str, precision: str) -> Row | None:
    return next((r for r in rows if r["arch"] == arch and r["model"] == model
                 and r["precision"] == precision), None)


def summary(rows: Sequence[Row], meta: dict[str, Any]) -> list[str]:
    """The target figures as Markdown bullet lines."""
    lines = []
    for arch in sorted({r["arch"] for r in rows if r["section"] == "speed"}):
        fp32, int8 = (_find(rows, arch, "channels-50%", p) for p in ("fp32", "int8"))
        if fp32 and int8:
            lines.append(f"- {arch} (3x32x32), 50% of channels removed, batch 32: "
                         f"**{fp32['speedup_b32']:.2f}x** faster than dense fp32 "
                         f"(target 1.8x); with int8 **{int8['speedup_b32']:.2f}x** "
                         "(target 2.5x)")
    for arch in sorted({r["arch"] for r in rows if r["section"] == "accuracy"}):
        dense, half = (_find(rows, arch, m, "fp32") for m in ("dense", "channels-50%"))
        if dense and half:
            lines.append(f"- {arch}: 50% of channels removed and fine-tuned: "
                         f"{100 * half['acc']:.2f}% vs dense {100 * dense['acc']:.2f}% "
                         f"(**{100 * (half['acc'] - dense['acc']):+.2f} points**; target "
                         "within 1 point)")
        for r in rows:
            if r["arch"] == arch and r["precision"] == "int8":
                fp = _find(rows, arch, r["model"], "fp32")
                if fp is not None:
                    lines.append(f"  - int8 {r['model']}: {100 * r['acc']:.2f}% "
                                 f"({100 * (r['acc'] - fp['acc']):+.2f} points vs fp32)")
    lenet = meta.get("lenet_sparse_checkpoint")
    if lenet:
        lines.append(f"- LeNet-300-100 at {100 * lenet['sparsity']:.0f}% sparsity: compressed "
                     f"checkpoint {lenet['sparse_bytes']:,} B = **{100 * lenet['ratio']:.1f}%** "
                     f"of the dense {lenet['dense_bytes']:,} B (target <= 15%)")
    return lines


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: Sequence[Row]) -> list[str]:
    """One Markdown table of the rows."""
    head = ("| arch | model | kind | prec. | ch. removed | sparsity | params (nonzero) | "
            "MMACs (sparse) | ONNX KB | b1 ms | b32 ms | speedup b1 | speedup b32 | acc |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['arch']} | {r['model']} | {r['kind']} | {r['precision']} | "
            f"{100 * r['channels_removed']:.0f}% | {100 * r['sparsity']:.1f}% | "
            f"{r['params']:,} ({r['nonzero']:,}) | {r['macs_dense'] / 1e6:.2f} "
            f"({r['macs_sparse'] / 1e6:.2f}) | "
            f"{r['file_bytes'] / 1024:.0f} | {r['latency_b1_ms']:.2f} | "
            f"{r['latency_b32_ms']:.2f} | {r['speedup_b1']:.2f} | {r['speedup_b32']:.2f} | "
            f"{_fmt(None if r['acc'] is None else 100 * r['acc'], '.2f')} |")
    return lines


def section(title: str, intro: list[str], rows: Sequence[Row]) -> list[str]:
    """A titled table, or nothing when the section has no rows (it was not asked for)."""
    return [title, "", *intro, *table(rows), ""] if rows else []


def write_markdown(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    """The report: command, machine, target figures, and a table per section."""
    m = meta["machine"]
    text = [
        "# Deployment report: pruned, distilled and dense models in ONNX Runtime", "",
        f"Command: `{meta['command']}` ({meta['date']}, {meta.get('wall_s', '?')} s)", "",
        f"Machine: {m['cpu']}, {m['cores']} cores (shared; load average at start "
        f"{', '.join(f'{v:.1f}' for v in m['load_average_at_start'])}), ORT CPU provider with "
        f"{m['ort_threads']} intra-op thread(s); torch {m['torch']}, onnxruntime "
        f"{m['onnxruntime']}, torch-pruning {m['torch_pruning']}.", "",
        "Latency: median over interleaved repeats, warm-up excluded; speedups are against "
        "the dense fp32 model of the same table, measured in the same run.", "",
        "## Targets", "", *summary(rows, meta), "",
        *section("## Speed at CIFAR shapes (3x32x32, random weights)", [],
                 [r for r in rows if r["section"] == "speed"]),
        *section("## Accuracy of stored runs (test set of the runs' dataset)",
                 [f"Runs: {', '.join(meta['runs'])}", ""] if meta.get("runs") else [],
                 [r for r in rows if r["section"] == "accuracy"]),
        "`sparsity`: share of prunable weights removed (for the student: share of the dense "
        "model's parameters it lacks). `MMACs (sparse)`: millions of multiply-accumulates per "
        f"sample, every weight (only the unpruned ones), in lth's one convention: {CONVENTION}. "
        "`acc`: ONNX Runtime top-1 test accuracy. Tickets run dense-shaped: their zeros cost "
        "the same time as any weight.", "",
    ]
    write_text(path, "\n".join(text))


_MARKERS = {"ticket": "D", "distilled": "*"}


def _panel(ax, rows: Sequence[Row], key: str) -> None:
    """One line per (arch, precision) through dense and the channel-pruned models; tickets
    and students as single markers of the same colour."""
    series = sorted({(r["arch"], r["precision"]) for r in rows})
    for i, (arch, prec) in enumerate(series):
        color = f"C{i}"
        mine = [r for r in rows if (r["arch"], r["precision"]) == (arch, prec)]
        line = sorted((100 * r["sparsity"], r[key]) for r in mine
                      if r["kind"] in ("dense", "structured"))
        ax.plot(*zip(*line), color=color, marker="o", linestyle="-" if prec == "fp32" else "--",
                label=f"{arch} {prec}: dense, channels removed")
        for kind, marker in _MARKERS.items():
            for r in (r for r in mine if r["kind"] == kind):
                ax.plot(100 * r["sparsity"], r[key], color=color, marker=marker, markersize=9,
                        linestyle="none", label=f"{arch} {prec}: {r['model']}")
    ax.set_xlabel("sparsity (% of prunable weights removed)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)


def write_plot(path: Path, rows: Sequence[Row]) -> None:
    """Latency (batch 32) and accuracy against sparsity, fp32 and int8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    speed = [r for r in rows if r["section"] == "speed"]
    acc = [r for r in rows if r["section"] == "accuracy"]
    _panel(axes[0], speed, "latency_b32_ms")
    _panel(axes[1], acc, "latency_b32_ms")
    _panel(axes[2], acc, "acc")
    axes[0].set_yscale("log")
    for ax, title, label in ((axes[0], "CIFAR shapes (3x32x32), random weights", "ms"),
                             (axes[1], "stored runs", "ms"),
                             (axes[2], "stored runs", "test accuracy (ONNX Runtime)")):
        ax.set_title(title)
        ax.set_ylabel(label if label != "ms" else "ORT CPU latency, batch 32 (ms)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())


def machine(threads: int) -> dict[str, Any]:
    """The CPU, its load and the versions that the timings depend on."""
    import onnxruntime
    import torch_pruning

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text()
                .splitlines() if ln.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "ort_threads": threads,
            "load_average_at_start": os.getloadavg(), "python": platform.python_version(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "torch_pruning": torch_pruning.__version__}
