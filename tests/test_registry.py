"""The registry of scores and scopes: every existing strategy gives the masks it gave when they
were pinned (tests/fixtures/strategy_masks.json, on the fixed cases of tests/pinned_masks.py;
the data-dependent ones within the near-ties another CPU's kernels may swap);
the strategies, --help and the docs table derive from the registry; the row scope; bad names
give one ConfigError naming the choices."""

from __future__ import annotations

import json
import re

import pytest
import torch

from lth.errors import ConfigError
from lth.pruning import STRATEGIES, kept_count, prune_mask
from lth.pruning import registry as reg
from lth.pruning.pruner import Pruner, PrunerSettings
from lth.pruning.registry import Score
from lth.pruning.scopes import keep_rows, mask_from_scores
from tests.conftest import ROOT
from tests.pinned_masks import (
    BATCH_SIZE,
    DATA_MASKS,
    SCORE_BATCHES,
    SCORE_ITERATIONS,
    case,
    digest,
    run_case,
    unpack,
)

PINNED = json.loads((ROOT / "tests" / "fixtures" / "strategy_masks.json").read_text())
DATA_PINNED = torch.load(DATA_MASKS, weights_only=True)


def pruner_of(c, **settings) -> Pruner:
    return Pruner(c.make_model, c.x, c.y, BATCH_SIZE,
                  PrunerSettings(SCORE_BATCHES, SCORE_ITERATIONS, pool_bias=c.pool_bias,
                                 **settings))


def data_dependent(strategy: str) -> bool:
    return bool({"model", "batches"} & set(reg.get_score(STRATEGIES[strategy][0]).needs))


@pytest.mark.parametrize("key", sorted(k for k in PINNED["weight"]
                                       if not data_dependent(k.split("/")[2])))
def test_every_strategy_gives_its_pinned_masks(key: str, one_thread) -> None:
    """Scores of the weights alone are comparisons of fixed numbers: the same bits anywhere."""
    model, bias, strategy = key.split("/")
    c = case(model, bias)
    got = [digest(m) for m in run_case(c, pruner_of(c), strategy)]
    assert got == PINNED["weight"][key]
    plain = run_case(c, lambda *a, **k: prune_mask(*a, pool_bias=c.pool_bias, **k), strategy)
    assert [digest(m) for m in plain] == got, "prune_mask and the Pruner differ"


# A bias that feeds a BatchNorm has a gradient of exactly zero in exact arithmetic (the norm
# subtracts it again), so its SNIP/GraSP score is rounding noise and which of its entries a
# score keeps differs between CPUs: only its count is checked.
BEFORE_BATCHNORM = {"conv": frozenset({"conv1.bias", "conv2.bias", "fc.bias"})}  # PinConv's


@pytest.mark.parametrize("key", sorted(DATA_PINNED))
def test_data_dependent_strategies_give_their_stored_masks(key: str, one_thread) -> None:
    """SNIP, GraSP and SynFlow score through a model's forward and backward, whose last bits
    depend on the CPU's kernels, so a weight whose score ties another's near the threshold
    may swap with it on another machine: the exact density always holds (the same count per
    tensor), and at most 2% of a tensor's kept weights (at least one pair) may differ from
    the masks stored by ``python -m tests.pinned_masks`` (BEFORE_BATCHNORM: the count only)."""
    model, bias, strategy = key.split("/")
    c = case(model, bias)
    got = run_case(c, pruner_of(c), strategy)
    for step, (mask, packed) in enumerate(zip(got, DATA_PINNED[key])):
        want = unpack(packed, mask)
        for n in mask:
            kept = int(want[n].sum())
            assert int(mask[n].sum()) == kept, (step, n)
            if n in BEFORE_BATCHNORM.get(model, ()):
                continue  # its gradient is zero but for rounding: which ones it keeps is noise
            differ = int((mask[n] != want[n]).sum()) // 2
            assert differ <= max(1, kept // 50), (step, n, differ, kept)


def test_the_pin_can_fail(one_thread) -> None:
    c = case("mlp", "weights")
    a, b = run_case(c, pruner_of(c), "magnitude_global")
    assert digest(b) == PINNED["weight"]["mlp/weights/magnitude_global"][1]
    b["fc1.weight"][0, b["fc1.weight"][0].nonzero()[0]] = False  # one weight less
    assert digest(b) != PINNED["weight"]["mlp/weights/magnitude_global"][1]


@pytest.mark.parametrize("key", sorted(PINNED["channel"]))
def test_every_channel_strategy_gives_its_pinned_masks(key: str, one_thread) -> None:
    pytest.importorskip("torch_pruning")
    from lth.pruning.structured import ChannelPruner

    model, bias, score, strategy = key.split("/")
    c = case(model, bias)
    pruner = ChannelPruner(c.make_model, c.x, c.y, BATCH_SIZE,
                           PrunerSettings(channel_score=score))
    assert [digest(m) for m in run_case(c, pruner, strategy)] == PINNED["channel"][key]


def test_every_pinned_name_keeps_its_score_and_scope() -> None:
    old = {"magnitude_global": ("magnitude", "global"), "random": ("random", "layerwise"),
           "random_global": ("random", "global"), "large_final": ("magnitude", "global"),
           "magnitude_init": ("large_init", "global"), "snip": ("snip", "global"),
           "magnitude_layerwise": ("magnitude", "layerwise"),
           "magnitude_init_layerwise": ("large_init", "layerwise"),
           "movement_layerwise": ("movement", "layerwise")}
    assert {n: STRATEGIES[n] for n in old} == old
    assert {k.split("/")[-1] for k in PINNED["weight"]} <= set(STRATEGIES)


def test_strategies_are_every_weight_score_at_every_scope() -> None:
    expect = {s: (score.name, scope) for score in reg.SCORES["weight"].values()
              for s, scope in score.strategies().items()}
    assert STRATEGIES == expect
    assert {"magnitude_row", "random_row", "snip_row", "movement_row"} <= set(STRATEGIES)
    assert len(set(STRATEGIES)) == sum(len(s.strategies()) for s in reg.SCORES["weight"].values())


def test_the_docs_table_is_the_registrys() -> None:
    text = (ROOT / "docs" / "pruning.md").read_text()
    found = re.search(r"<!-- scores -->\n(.*?)\n<!-- /scores -->", text, re.S)
    assert found, "docs/pruning.md lost its scores table"
    assert found.group(1) == reg.markdown_table(), (
        "the table in docs/pruning.md differs from lth.pruning.registry.markdown_table(); "
        "paste its output between the markers")


def test_row_scope_keeps_the_top_of_every_output_row() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = {"w": torch.rand(6, 10, generator=gen), "b": torch.rand(6, generator=gen)}
    mask = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    mask["w"][0, :8] = False  # row 0 has two survivors left: it keeps both, no more
    new = mask_from_scores(scores, mask, "row", {"w": 0.3, "b": 0.5})
    assert new["w"].sum(1).tolist() == [2, 3, 3, 3, 3, 3]
    for r in range(1, 6):
        kept = scores["w"][r][new["w"][r]]
        assert kept.min() > scores["w"][r][~new["w"][r]].max()
    assert bool(new["w"][0, 8:].all()) and not bool((new["w"] & ~mask["w"]).any())
    assert int(new["b"].sum()) == 3 and scores["b"][new["b"]].min() > scores["b"][~new["b"]].max()
    pooled = keep_rows(scores, mask, ["w", "b"], 0.5)  # bias entry r joins row r
    assert (pooled["w"].sum(1) + pooled["b"].long()).tolist()[1:] == [kept_count(11, 0.5)] * 5


def test_row_strategies_prune_every_row_through_the_pruner(one_thread) -> None:
    c = case("conv", "pooled")
    for strategy in ("magnitude_row", "random_row", "snip_row", "synflow_row"):
        mask, _ = run_case(c, pruner_of(c), strategy)
        for n, m in mask.items():
            if n.endswith(".weight"):  # a row: the weight's row and its bias entry
                d = c.densities(0)[n]
                rows = m.reshape(m.shape[0], -1).sum(1) + mask[n[:-6] + "bias"].long()
                assert rows.tolist() == [kept_count(m[0].numel() + 1, d)] * m.shape[0]


def test_unknown_names_are_one_line_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"prune.strategy='magnitude_rows' is unknown; "
                                          r"choose one of magnitude_global, .*magnitude_row"):
        reg.check_strategy("magnitude_rows")
    with pytest.raises(ConfigError, match=r"scope 'rows' is unknown; choose one of global, "
                                          r"layerwise, row$"):
        reg.get_scope("rows")
    with pytest.raises(ConfigError, match=r"prune.channel_score='l3' is unknown; choose one "
                                          r"of l1, l2, bn, random$"):
        reg.channel_strategy("magnitude_global", "l3")
    with pytest.raises(ConfigError, match=r"prune.strategy=snip has no channel version; .* "
                                          r"use one of magnitude_global, magnitude_layerwise"):
        reg.channel_strategy("snip", "l1")
    with pytest.raises(ConfigError, match="has no channel version"):
        reg.channel_strategy("magnitude_row", "l1")  # channels have no rows
    with pytest.raises(ConfigError, match=r"prune.granularity='filter' is unknown; choose "
                                          r"one of weight, channel$"):
        reg.check_granularity("filter")


def test_registering_checks_what_an_entry_declares() -> None:
    with pytest.raises(ValueError, match="taken already"):
        reg.register(Score("magnitude2", "x:y", "s", names={"global": "magnitude_global"}))
    with pytest.raises(ValueError, match="registered already"):
        reg.register(Score("movement", "x:y", "s"))
    with pytest.raises(ConfigError, match="scope 'diagonal' is unknown"):
        reg.register(Score("toy", "x:y", "s", scopes=("diagonal",)))
    with pytest.raises(ValueError, match="needs"):
        reg.register(Score("toy", "x:y", "s", needs=("gradients",)))
    assert "toy" not in reg.SCORES["weight"] and "toy" not in STRATEGIES
