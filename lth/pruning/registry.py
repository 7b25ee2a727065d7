"""The registry of pruning scores and scopes, and the strategies named after them.

A *score* says how much each weight (or channel) is worth keeping: higher survives. Each entry
declares what it reads (``needs``: the weights being pruned, the round's initial weights, a
scratch model holding the weights, training batches), its granularity (weights or whole
channels) and the scopes it supports. A *scope* says which entries compete for the survivors.
A *strategy* (``prune.strategy``) is a weight score and a scope, named ``<score>`` (global),
``<score>_layerwise`` and ``<score>_row`` unless the entry names its own.

Adding a criterion is one ``register(Score(...))``: ``STRATEGIES``, the checks of
``prune.strategy``, the ``--help`` list and the table of docs/pruning.md (a test compares it
with ``markdown_table()``) all follow from the entry. This module imports no torch, so that
``--help`` can list the strategies quickly: functions are given as ``"module:name"`` and
imported on first use (a callable works too).
"""

from __future__ import annotations

import importlib
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lth.errors import ConfigError

Ref = Callable[..., Any] | str  # a function, or "module:name" imported on first use
GRANULARITIES = ("weight", "channel")
# what a score may read -> how the docs name it
NEEDS = {"weights": "weights", "initial": "initial weights", "model": "model",
         "batches": "training batches"}


def resolve(ref: Ref) -> Callable[..., Any]:
    """The function ``ref`` names."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Scope:
    """Which entries compete: ``keep(scores, mask, names, density) -> Mask`` over one group.

    ``by_layer``: a group is one tensor (with ``prune.pool_bias`` a layer's weight and bias);
    otherwise the tensors that share a target density form one group.
    """

    name: str
    keep: Ref
    by_layer: bool
    summary: str


@dataclass(frozen=True)
class Score:
    """One criterion. ``compute``: ``(ScoreInputs) -> {name: scores of the tensor's shape}``
    for weight granularity, ``(ScoreInputs, ChannelGroup, torch.Generator) -> [group size]``
    for channel granularity (``lth.pruning.scores.ScoreInputs``)."""

    name: str
    compute: Ref
    summary: str  # one line for the docs table
    needs: tuple[str, ...] = ("weights",)
    granularity: str = "weight"
    scopes: tuple[str, ...] = ("global", "layerwise", "row")
    names: Mapping[str, str] = field(default_factory=dict)  # scope -> its own strategy name
    aliases: tuple[str, ...] = ()  # other names, with the default strategy names
    iterative: bool = False  # re-scored on the masked model at each of score_iterations steps
    relative: bool = False  # channel scores, global scope: each group relative to its mean
    # a calibrated method that prunes layer by layer itself (lth.pruning.calibrated), maybe
    # updating the kept weights; ``compute`` then gives no per-weight scores
    sequential: str | None = None

    def strategies(self) -> dict[str, str]:
        """Strategy name -> scope (weight scores; channel scores stand in for them)."""
        if self.granularity != "weight":
            return {}
        out = {self.names.get(s, _default_name(self.name, s)): s for s in self.scopes}
        for alias in self.aliases:
            out.update({_default_name(alias, s): s for s in self.scopes})
        return out

    @property
    def fn(self) -> Callable[..., Any]:
        """The function that computes the scores."""
        return resolve(self.compute)


def _default_name(prefix: str, scope: str) -> str:
    return prefix if scope == "global" else f"{prefix}_{scope}"


SCOPES: dict[str, Scope] = {s.name: s for s in (
    Scope("global", "lth.pruning.scopes:keep_group", False,
          "the tensors that share a rate (a target density) rank their entries together"),
    Scope("layerwise", "lth.pruning.scopes:keep_group", True,
          "each tensor keeps its own share; with `prune.pool_bias=true` a layer's weight and "
          "bias are ranked as one vector"),
    Scope("row", "lth.pruning.scopes:keep_rows", True,
          "every output row of a weight keeps round(row size × density) of its highest "
          "scores (what Wanda-style criteria compare); a 1-D tensor such as a bias is one "
          "row; with `prune.pool_bias=true` bias entry r is ranked within row r"),
)}
SCORES: dict[str, dict[str, Score]] = {g: {} for g in GRANULARITIES}
STRATEGIES: dict[str, tuple[str, str]] = {}  # strategy name -> (weight score, scope)


def _choices(names: Iterable[object]) -> str:
    return ", ".join(str(n) for n in names)


def get_scope(name: str) -> Scope:
    """The scope ``name``; ConfigError naming the choices if unknown."""
    if name not in SCOPES:
        raise ConfigError(f"scope {name!r} is unknown; choose one of {_choices(SCOPES)}")
    return SCOPES[name]


def get_score(name: str, granularity: str = "weight", key: str = "score") -> Score:
    """The score ``name`` of ``granularity``; ConfigError naming ``key`` and the choices."""
    check_granularity(granularity)
    if name not in SCORES[granularity]:
        raise ConfigError(f"{key}={name!r} is unknown; choose one of "
                          f"{_choices(SCORES[granularity])}")
    return SCORES[granularity][name]


def check_granularity(granularity: str) -> None:
    """ConfigError naming the choices unless ``granularity`` is known."""
    if granularity not in GRANULARITIES:
        raise ConfigError(f"prune.granularity={granularity!r} is unknown; choose one of "
                          f"{_choices(GRANULARITIES)}")


def check_strategy(strategy: str) -> tuple[str, str]:
    """(score, scope) of ``strategy``; ConfigError naming the choices if unknown."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"prune.strategy={strategy!r} is unknown; choose one of "
                          f"{_choices(STRATEGIES)}")
    return STRATEGIES[strategy]


def channel_version(kind: str, channel_score: str) -> Score | None:
    """The channel score standing in for weight score ``kind``: ``prune.channel_score`` for
    magnitude, else the channel score of the same name (None if there is none)."""
    return SCORES["channel"].get(channel_score if kind == "magnitude" else kind)


def channel_strategy(strategy: str, channel_score: str) -> tuple[Score, str]:
    """(channel score, scope) of ``strategy`` under ``prune.granularity=channel``."""
    get_score(channel_score, "channel", "prune.channel_score")
    kind, scope = check_strategy(strategy)
    score = channel_version(kind, channel_score)
    if score is None or scope not in score.scopes:
        usable = [s for s, (k, sc) in STRATEGIES.items()
                  if (c := channel_version(k, channel_score)) and sc in c.scopes]
        raise ConfigError(f"prune.strategy={strategy} has no channel version; with "
                          f"prune.granularity=channel use one of {_choices(usable)}")
    return score, scope


def register(score: Score) -> Score:
    """Add ``score`` and its strategies; ConfigError naming the choices for an unknown
    granularity or scope, ValueError for an unknown need or a name taken already."""
    check_granularity(score.granularity)
    for scope in score.scopes:
        get_scope(scope)
    unknown = set(score.needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"score {score.name!r} needs {sorted(unknown)}; choose from "
                         f"{_choices(NEEDS)}")
    if score.name in SCORES[score.granularity]:
        raise ValueError(f"a {score.granularity} score {score.name!r} is registered already")
    taken = sorted(set(score.strategies()) & set(STRATEGIES))
    if taken:
        raise ValueError(f"strategy names {taken} are taken already")
    SCORES[score.granularity][score.name] = score
    STRATEGIES.update({s: (score.name, scope) for s, scope in score.strategies().items()})
    return score


def unregister(name: str, granularity: str = "weight") -> None:
    """Remove the score ``name`` and its strategies (tests register toy scores)."""
    score = SCORES[granularity].pop(name)
    for strategy in score.strategies():
        STRATEGIES.pop(strategy, None)


def strategy_list(indent: int = 0, width: int = 96) -> str:
    """Every strategy name, comma-separated, wrapped at ``width`` with ``indent`` spaces
    before each line but the first (the ``--help`` text)."""
    return textwrap.fill(", ".join(STRATEGIES), width, initial_indent=" " * indent,
                         subsequent_indent=" " * indent, break_on_hyphens=False).lstrip()


def _cell_strategies(score: Score) -> str:
    if score.granularity == "weight":
        return ", ".join(f"`{s}` ({scope})" for s, scope in score.strategies().items())
    uses = [f"`prune.channel_score={score.name}` (magnitude strategies)"]
    uses += [f"`{s}` ({scope})" for s, (k, scope) in STRATEGIES.items()
             if k == score.name and scope in score.scopes]
    return ", ".join(uses)


def markdown_table() -> str:
    """The docs' tables: every scope (who competes), then every score (its strategies and
    scopes, granularity, what it reads)."""
    rows = ["| scope | strategy names | who competes |", "| --- | --- | --- |"]
    for scope in SCOPES.values():
        named = "`<score>`" if scope.name == "global" else f"`<score>_{scope.name}`"
        rows.append(f"| `{scope.name}` | {named} | {scope.summary} |")
    rows += ["", "| score | granularity | strategies (scope) | reads | what survives |",
             "| --- | --- | --- | --- | --- |"]
    for granularity in GRANULARITIES:
        for s in SCORES[granularity].values():
            reads = ", ".join(NEEDS[n] for n in s.needs) or "the seed only"
            rows.append(f"| `{s.name}` | {granularity} | {_cell_strategies(s)} | {reads} | "
                        f"{s.summary} |")
    return "\n".join(rows)


_PAIR = ("weights", "initial")
for _score in (
    Score("magnitude", "lth.pruning.scores:magnitude", "the largest \\|w_f\\| (Han et al. "
          "2015; Frankle & Carbin 2019; Zhou et al.'s `large_final`)",
          names={"global": "magnitude_global", "layerwise": "magnitude_layerwise",
                 "row": "magnitude_row"}, aliases=("large_final",)),
    Score("random", "lth.pruning.scores:random_uniform", "uniform random scores (a control)",
          needs=(), scopes=("layerwise", "global", "row"),
          names={"layerwise": "random", "global": "random_global", "row": "random_row"}),
    Score("snip", "lth.pruning.init_scores:snip", "the largest \\|∂L/∂w ⊙ w\\| (Lee et al. "
          "2019), L summed over `prune.score_batches` batches",
          needs=("weights", "model", "batches")),
    Score("grasp", "lth.pruning.init_scores:grasp", "the largest w ⊙ (H g) over the pruned "
          "weights (Wang et al. 2020; GraSP removes the largest −w ⊙ H g), logits / 200",
          needs=("weights", "model", "batches")),
    Score("synflow", "lth.pruning.init_scores:synflow", "the largest \\|∂R/∂w ⊙ w\\| of the "
          "all-ones input's summed output, \\|parameters\\|, float64, re-scored over "
          "`prune.score_iterations` steps (Tanaka et al. 2020)",
          needs=("weights", "model"), iterative=True),
    Score("small_final", "lth.pruning.scores:small_final", "the smallest \\|w_f\\| (Zhou et "
          "al. 2019)"),
    Score("large_init", "lth.pruning.scores:large_init", "the largest \\|w_i\\| (Zhou et al. "
          "2019; `magnitude_init` at initialisation)", needs=("initial",),
          aliases=("magnitude_init",)),
    Score("large_init_large_final", "lth.pruning.scores:large_init_large_final",
          "the largest min(\\|w_i\\|, \\|w_f\\|) (Zhou et al. 2019)", needs=_PAIR),
    Score("magnitude_increase", "lth.pruning.scores:magnitude_increase",
          "the largest \\|w_f\\| − \\|w_i\\| (Zhou et al. 2019)", needs=_PAIR),
    Score("movement", "lth.pruning.scores:movement", "the largest \\|w_f − w_i\\| (Zhou et "
          "al. 2019)", needs=_PAIR),
    Score("wanda", "lth.pruning.calibrated:no_scores", "the largest \\|W_ij\\|·‖X_j‖₂ "
          "within each output row, X over `prune.calibration_samples` training samples, layer "
          "by layer (Sun et al. 2024)", needs=("weights", "model", "batches"),
          scopes=("row",), names={"row": "wanda"}, sequential="wanda"),
    Score("sparsegpt", "lth.pruning.calibrated:no_scores", "SparseGPT's layer-wise "
          "reconstruction from the calibration inputs' Hessian, kept weights updated, layer by "
          "layer (Frantar & Alistarh 2023)", needs=("weights", "model", "batches"),
          scopes=("layerwise",), names={"layerwise": "sparsegpt"}, sequential="sparsegpt"),
    Score("l1", "lth.pruning.structured:l1", "the largest mean \\|w\\| of the channel's "
          "producer rows (Li et al. 2017)", granularity="channel",
          scopes=("global", "layerwise"), relative=True),
    Score("l2", "lth.pruning.structured:l2", "the largest root-mean-square of the channel's "
          "producer rows", granularity="channel", scopes=("global", "layerwise"),
          relative=True),
    Score("bn", "lth.pruning.structured:bn", "the largest \\|γ\\| of the channel's BatchNorm "
          "scales (Liu et al. 2017)", granularity="channel", scopes=("global", "layerwise")),
    Score("random", "lth.pruning.structured:random_channels", "uniform random scores (a control)",
          needs=(), granularity="channel", scopes=("global", "layerwise")),
):
    register(_score)
