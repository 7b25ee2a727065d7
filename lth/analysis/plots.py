"""Figures: accuracy and early-stop iteration against weights remaining, per-layer density.

matplotlib is imported inside the functions with the Agg backend, so importing lth.analysis
needs no display and costs nothing.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lth.analysis.report import BAND_TEXT, Summary
from lth.analysis.stats import ALL_LAYERS, TICKET, Point
from lth.files import atomic_write

STYLE = {TICKET: dict(color="C0", marker="o", linestyle="-"),
         "random_reinit": dict(color="C3", marker="s", linestyle="--"),
         "random_prune": dict(color="C2", marker="^", linestyle=":"),
         "invert": dict(color="C4", marker="v", linestyle="-."),
         "oneshot": dict(color="C1", marker="D", linestyle="-.")}


METRIC_LABELS = {"test_acc": "final test accuracy (%)",
                 "early_stop_test_acc": "test accuracy at early stop (%)",
                 "best_test_acc": "best test accuracy, test-selected (%)",
                 "val_acc": "final validation accuracy (%)",
                 "supermask_test_acc": "supermask test accuracy (%)"}


def metric_label(metric: str) -> str:
    """A metric's axis label in words, with its unit."""
    return METRIC_LABELS.get(metric, metric + (" (%)" if metric.endswith("acc") else ""))


def title(label: str, seeds: Sequence[int], band: str) -> str:
    """``<name>: mean ± sample std over 5 seeds`` (a group label is ``<name>-<8 hex>``)."""
    name = label.rsplit("-", 1)[0] if label[-9:-8] == "-" else label
    if len(seeds) == 1:
        return f"{name}: one seed ({seeds[0]})"
    return f"{name}: mean {BAND_TEXT[band]} over {len(seeds)} seeds"


def percent_axis(axis: Any) -> None:
    """Plain numbers (100, 50, 8) on a log axis of percentages, not 10² or 9×10¹."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25"
                                           else ""))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _line(ax: Any, points: Sequence[Point], x: Sequence[float], label: str,
          scale: float = 1.0, **style: Any) -> None:
    ax.plot(x, [scale * p.mean for p in points], label=label, markersize=4, **style)
    ax.fill_between(x, [scale * p.low for p in points], [scale * p.high for p in points],
                    color=style.get("color"), alpha=0.2, linewidth=0)


def _density_axis(ax: Any, densities: Sequence[float]) -> None:
    ax.set_xscale("log")
    ax.set_xlim(max(densities) * 100 * 1.15, min(densities) * 100 / 1.15)  # dense on the left
    ticks = sorted(set(densities), reverse=True)
    ticks = ticks if len(ticks) <= 8 else ticks[::2]
    ax.set_xticks([100 * d for d in ticks])
    ax.set_xticklabels([f"{100 * d:.3g}" for d in ticks], rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("weights remaining (%)")
    ax.grid(True, alpha=0.3)


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:
        # No creation date in the PDF, so regenerated figures are byte-identical.
        meta = {"CreationDate": None} if path.suffix == ".pdf" else None
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:], dpi=150, bbox_inches="tight", metadata=meta)
        atomic_write(path, buffer.getvalue())
    return paths


def accuracy_figure(summary: Summary, out: Path, stem: str = "accuracy") -> list[Path]:
    """Metric and early-stop iteration vs weights remaining (log x), ticket vs controls."""
    plt = _pyplot()
    scale = 100.0 if summary.metric.endswith("acc") else 1.0
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for name, points in summary.series.items():
        style = STYLE.get(name, {})
        _line(left, points, [100 * p.density for p in points], name, scale, **style)
        stops = summary.early_stop[name]
        _line(right, stops, [100 * p.density for p in stops], name, **style)
    dense = summary.dense
    if dense is not None:
        left.axhline(scale * dense.mean, color="grey", linewidth=0.8, linestyle="-.",
                     label="dense")
    densities = [p.density for pts in summary.series.values() for p in pts]
    for ax in (left, right):
        _density_axis(ax, densities)
    left.set_ylabel(metric_label(summary.metric))
    right.set_ylabel("early-stop iteration (iterations)")
    left.legend(fontsize=8)
    fig.suptitle(title(summary.label, summary.seeds, summary.band), fontsize=9)
    fig.tight_layout()
    paths = _save(fig, out, stem)
    plt.close(fig)
    return paths


def layer_density_figure(layers: dict[str, list[Point]], label: str, out: Path,
                         stem: str = "layer_density") -> list[Path]:
    """Density of each layer of the ticket's masks over rounds (log y), mean with band.

    The ``ALL_LAYERS`` entry, if any, is drawn dashed: the density of all prunable weights.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (layer, points) in enumerate(layers.items()):
        style = (dict(color="black", linestyle="--") if layer == ALL_LAYERS else
                 dict(color=f"C{i % 10}", marker="o"))
        _line(ax, points, [p.round for p in points], layer, 100.0, **style)
    ax.set_yscale("log")
    from matplotlib.ticker import MaxNLocator

    percent_axis(ax.yaxis)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("layer density (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{label.rsplit('-', 1)[0]}: per-layer density of the ticket", fontsize=9)
    fig.tight_layout()
    paths = _save(fig, out, stem)
    plt.close(fig)
    return paths
