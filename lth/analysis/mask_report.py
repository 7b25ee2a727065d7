"""Mask agreement over seeds and against one-shot pruning, as a table (from stored masks).

For each round k of a group of seeds: the Jaccard overlap and normalized Hamming distance of
every pair of seeds' masks (how seed-specific is a ticket?), and of each seed's iterative mask
with the mask one-shot pruning of its round-0 weights gives at the same targets (how much does
iteration change the ticket?), each beside chance: random masks with the same layer densities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from lth.analysis.overlap import OVERALL, Overlap, compare_masks
from lth.analysis.stats import band
from lth.pruning import Mask

SEEDS = "seed vs seed"
ONESHOT = "iterative vs one-shot"


@dataclass(frozen=True)
class OverlapRow:
    """One comparison of one layer in one round over its pairs: means and (low, high)."""

    round: int
    density: float
    comparison: str
    layer: str
    pairs: int
    jaccard: tuple[float, float, float]
    hamming: tuple[float, float, float]
    chance_jaccard: float
    chance_hamming: float


def _rows(k: int, density: float, comparison: str, found: Sequence[dict[str, Overlap]],
          band_kind: str) -> list[OverlapRow]:
    rows = []
    for layer in [OVERALL, *sorted(n for n in found[0] if n != OVERALL)]:
        items = [f[layer] for f in found]
        rows.append(OverlapRow(
            k, density, comparison, layer, len(items),
            band([o.jaccard for o in items], band_kind),
            band([o.hamming for o in items], band_kind),
            sum(o.chance_jaccard for o in items) / len(items),
            sum(o.chance_hamming for o in items) / len(items)))
    return rows


def overlap_rows(k: int, density: float, masks: Mapping[int, Mask],
                 oneshot: Mapping[int, Mask] | None = None,
                 band_kind: str = "std") -> list[OverlapRow]:
    """Round ``k``'s rows from each seed's mask (``masks``) and one-shot mask (``oneshot``)."""
    rows = []
    pairs = [compare_masks(masks[a], masks[b]) for a, b in combinations(sorted(masks), 2)]
    if pairs:
        rows += _rows(k, density, SEEDS, pairs, band_kind)
    if oneshot:
        rows += _rows(k, density, ONESHOT, [compare_masks(masks[s], oneshot[s])
                                            for s in sorted(oneshot)], band_kind)
    return rows


def markdown(rows: Sequence[OverlapRow], label: str, band_text: str,
             layers: bool = False) -> str:
    """The table (the ``overall`` rows, or every layer with ``layers``)."""
    lines = [f"# {label}: mask overlap (mean {band_text} over pairs; chance = random masks "
             "with the same layer densities)", "",
             "| round | weights remaining | comparison | layer | pairs | Jaccard | chance "
             "Jaccard | Hamming | chance Hamming |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.layer != OVERALL and not layers:
            continue
        lines.append(
            f"| {r.round} | {100 * r.density:.1f}% | {r.comparison} | {r.layer} | {r.pairs} | "
            f"{r.jaccard[0]:.3f} ± {(r.jaccard[2] - r.jaccard[1]) / 2:.3f} | "
            f"{r.chance_jaccard:.3f} | {r.hamming[0]:.3f} ± "
            f"{(r.hamming[2] - r.hamming[1]) / 2:.3f} | {r.chance_hamming:.3f} |")
    return "\n".join(lines) + "\n"


def figure(rows: Sequence[OverlapRow], label: str, out: Path) -> list[Path]:
    """Overall Jaccard overlap against weights remaining: each comparison (mean and band)
    beside its chance level."""
    from lth.analysis.plots import _pyplot, _save, percent_axis

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for j, comparison in enumerate((SEEDS, ONESHOT)):
        sel = sorted((r for r in rows if r.layer == OVERALL and r.comparison == comparison),
                     key=lambda r: -r.density)
        if not sel:
            continue
        x = [100 * r.density for r in sel]
        ax.plot(x, [r.jaccard[0] for r in sel], marker="o", color=f"C{j}", label=comparison)
        ax.fill_between(x, [r.jaccard[1] for r in sel], [r.jaccard[2] for r in sel],
                        color=f"C{j}", alpha=0.2, linewidth=0)
        # drawn over the data (black, dashed), so a comparison at chance does not hide it
        ax.plot(x, [r.chance_jaccard for r in sel], color="black", linestyle=(0, (4, 3)),
                linewidth=1.2, zorder=5, marker="x" if j else None, markersize=5,
                label=f"chance for {comparison} (random masks, same layer densities)")
    ax.set_xscale("log")
    ax.invert_xaxis()
    percent_axis(ax.xaxis)
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("Jaccard overlap of kept weights (0-1)")
    ax.set_title(f"{label.rsplit('-', 1)[0]}: mask overlap", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    paths = _save(fig, out, "masks")
    plt.close(fig)
    return paths
