"""Sparse training: layer densities, the drop/grow core against google-research/rigl's, the
schedules, the mask updates' invariants, and the cost accounting against hand counts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lth.data import BatchIterator
from lth.errors import ConfigError
from lth.lottery.cost import ForwardCost, training_macs
from lth.lottery.sparse import SparseTraining
from lth.pruning import PruneRates
from lth.pruning.densities import layer_densities
from lth.pruning.dst import cosine_fraction, drop_grow, gmp_sparsity, random_mask
from lth.pruning.scopes import kept_count
from lth.train import Callbacks, Span, run_loop
from lth.train.loop import SingleStepper
from lth.train.masking import UpdateContext
from lth.train.schedule import constant_schedule
from lth.train.updates import METHODS, build_update, sparse_settings
from lth.train.updates.dropgrow import DropGrow
from tests.conftest import TinyMLP, make_blobs, make_lottery


# -- the reference, ported (google-research/rigl, numpy for TF; noise left out) -----------
def reference_erdos_renyi(shapes: dict[str, tuple[int, ...]], sparsity: float,
                          include_kernel: bool) -> dict[str, float]:
    """``sparse_utils.get_sparsities_erdos_renyi`` (no custom map, power scale 1)."""
    dense: set[str] = set()
    while True:
        divisor = rhs = 0.0
        raw = {}
        for n, shape in shapes.items():
            n_param = np.prod(shape)
            n_zeros = int(np.floor(sparsity * n_param))
            if n in dense:
                rhs -= n_zeros
            else:
                rhs += n_param - n_zeros
                if include_kernel:
                    raw[n] = np.sum(shape) / np.prod(shape)
                else:  # TF kernels are [..., n_in, n_out]; torch weights [n_out, n_in, ...]
                    n_out, n_in = shape[:2]
                    raw[n] = (n_in + n_out) / (n_in * n_out)
                divisor += raw[n] * n_param
        eps = rhs / divisor
        max_prob = np.max(list(raw.values()))
        if max_prob * eps > 1:
            dense |= {n for n, p in raw.items() if p == max_prob}
        else:
            break
    return {n: 0.0 if n in dense else 1.0 - eps * raw[n] for n in shapes}


def reference_update(score_drop: np.ndarray, score_grow: np.ndarray, mask: np.ndarray,
                     drop_fraction: float) -> np.ndarray:
    """``SparseSETOptimizer._get_update_op``'s new mask (top_k over the whole tensor)."""
    n_total = score_drop.size
    n_ones = int(mask.sum())
    n_prune = int(n_ones * drop_fraction)
    n_keep = n_ones - n_prune
    order = np.argsort(-score_drop.reshape(-1), kind="stable")
    mask1 = np.zeros(n_total)
    mask1[order[:n_keep]] = 1
    grow = score_grow.reshape(-1).astype(float)
    lifted = np.where(mask1 == 1, grow.min() - 1, grow)
    order = np.argsort(-lifted, kind="stable")
    mask2 = np.zeros(n_total)
    mask2[order[:n_prune]] = 1
    assert (mask1 * mask2).sum() == 0
    return (mask1 + mask2).reshape(mask.shape).astype(bool)


# -- densities ----------------------------------------------------------------------------
def test_erk_equals_the_formula_with_a_layer_capped_at_one() -> None:
    # raw sum/prod: a 11/10 (capped), b 20/100, c 30/200; first eps = 155/61 makes a 2.8 dense;
    # then eps = (150 - 5) / (20 + 30) = 2.9: b 0.58, c 0.435; kept 10 + 58 + 87 = 155 of 310
    shapes = {"a": (10, 1), "b": (10, 10), "c": (20, 10)}
    d = layer_densities(shapes, 0.5, "erk")
    assert d["a"] == 1.0
    assert d["b"] == pytest.approx(0.58) and d["c"] == pytest.approx(0.435)
    kept = sum(kept_count(math.prod(s), d[n]) for n, s in shapes.items())
    assert kept == 155


@pytest.mark.parametrize("distribution", ["er", "erk"])
@pytest.mark.parametrize("density", [0.5, 0.2, 0.05, 0.01])
def test_er_and_erk_equal_the_reference(distribution: str, density: float) -> None:
    shapes = {"conv1": (16, 3, 3, 3), "conv2": (32, 16, 3, 3), "fc": (100, 512),
              "out": (10, 100), "bias": (10,)}
    if distribution == "er":
        del shapes["bias"]
    ours = layer_densities(shapes, density, distribution)
    ref = reference_erdos_renyi(shapes, 1 - density, distribution == "erk")
    assert ours == pytest.approx({n: 1 - s for n, s in ref.items()}, abs=1e-12)
    assert layer_densities(shapes, density, "uniform") == {n: density for n in shapes}


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_a_density_outside_0_1_is_an_error(bad: float) -> None:
    with pytest.raises(ConfigError, match=r"sparse.density=.*outside \(0, 1\]"):
        layer_densities({"a": (3, 3)}, bad)
    with pytest.raises(ConfigError, match="sparse.distribution='gauss' is unknown"):
        layer_densities({"a": (3, 3)}, 0.5, "gauss")


def test_random_mask_keeps_exactly_the_target_count() -> None:
    like = {"a": torch.ones(7, 9, dtype=torch.bool), "b": torch.ones(40, dtype=torch.bool)}
    m = random_mask(like, {"a": 0.3, "b": 0.55}, torch.Generator().manual_seed(0))
    assert int(m["a"].sum()) == kept_count(63, 0.3) and int(m["b"].sum()) == 22
    again = random_mask(like, {"a": 0.3, "b": 0.55}, torch.Generator().manual_seed(0))
    assert all(torch.equal(m[n], again[n]) for n in m)


# -- drop and grow against the reference ------------------------------------------------------
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5])
def test_drop_grow_equals_the_reference(seed: int, fraction: float) -> None:
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(12, 9, generator=g)
    mask = torch.rand(12, 9, generator=g) < 0.4
    grad = torch.randn(12, 9, generator=g)
    n = int(int(mask.sum()) * fraction)
    ours = drop_grow(w, mask, grad.abs(), n)
    ref = reference_update((mask * w).abs().numpy(), grad.abs().numpy(), mask.numpy(), fraction)
    assert np.array_equal(ours.numpy(), ref)
    assert int(ours.sum()) == int(mask.sum())


class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 2, bias=False)
        self.fc2 = nn.Linear(2, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def test_rigl_drops_the_smallest_and_grows_the_largest_gradients_by_hand() -> None:
    model = TwoLayer()
    with torch.no_grad():
        model.fc1.weight.copy_(torch.tensor([[0.5, -0.1, 0.0], [0.0, 2.0, -0.3]]))
        model.fc2.weight.copy_(torch.tensor([[0.0, -1.0], [0.2, 0.0]]))
    mask = {"fc1.weight": torch.tensor([[True, True, False], [False, True, True]]),
            "fc2.weight": torch.tensor([[False, True], [True, False]])}
    grads = {"fc1.weight": torch.tensor([[9.0, 9.0, 0.4], [-0.7, 9.0, 9.0]]),
             "fc2.weight": torch.tensor([[-3.0, 9.0], [9.0, 1.0]])}
    s = sparse_settings("rigl", 0.5, "uniform", 100, update_every=10, drop_fraction=0.5,
                        drop_schedule="constant")
    update = build_update(s, mask, 0)
    ctx = UpdateContext(10, 0, mask, model, lambda n: {}, lambda: grads)
    change = update.update(ctx)
    # fc1: 4 active, drop int(4 * 0.5) = 2 smallest |w| (-0.1, -0.3); grow the 2 largest
    # |grad| among the rest: the dropped ones (9, 9) beat the inactive (0.4, 0.7), as in the
    # reference's grow set. fc2: 2 active, drop 1 (0.2), grow |-3| over 1 and the dropped 9.
    assert torch.equal(change.mask["fc1.weight"], mask["fc1.weight"])
    assert change.mask["fc2.weight"].tolist() == [[False, True], [True, False]]
    grads["fc1.weight"] = torch.tensor([[9.0, 0.1, 0.4], [-0.7, 9.0, 0.2]])
    grads["fc2.weight"] = torch.tensor([[-3.0, 9.0], [0.5, 1.0]])
    change = update.update(ctx)
    assert change.mask["fc1.weight"].tolist() == [[True, False, True], [True, True, False]]
    assert change.mask["fc2.weight"].tolist() == [[True, True], [False, False]]
    assert change.stats["sparse/regrown"] == pytest.approx(3 / 6)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_regrown_weights_and_their_optimizer_state_are_zero(optimizer: str) -> None:
    data = make_blobs()
    torch.manual_seed(0)
    model = TinyMLP()
    mask = random_mask({n: torch.ones_like(p, dtype=torch.bool)
                        for n, p in model.named_parameters() if n.endswith("weight")},
                       {n: 0.3 for n, _ in model.named_parameters()},
                       torch.Generator().manual_seed(1))
    opt = (torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
           if optimizer == "sgd" else torch.optim.Adam(model.parameters(), lr=0.01))
    stepper = SingleStepper(model, opt, BatchIterator(data.x_train, data.y_train, 32, 0), mask)
    s = sparse_settings("rigl", 0.3, "uniform", 40, update_every=10, end=0.5)
    update = DropGrow(s, "gradient", 0)
    changes = []
    run_loop(stepper, data, Span(0, 10, constant_schedule(1.0)), updates=[update],
             callbacks=Callbacks(on_change=lambda j, it, c: changes.append(c)))
    assert len(changes) == 1  # the update at the span's end (10), no step after it
    params = dict(model.named_parameters())
    for n, old in mask.items():
        grown = changes[0].mask[n] & ~old
        assert grown.any()
        assert torch.all(params[n][grown] == 0)
        state = opt.state[params[n]]
        tensors = [v for v in state.values() if torch.is_tensor(v) and v.shape == old.shape]
        assert tensors
        assert all(torch.all(t[grown] == 0) for t in tensors)
        assert torch.all(params[n][~changes[0].mask[n]] == 0)


# -- schedules ----------------------------------------------------------------------------
def test_the_cosine_drop_fraction_and_gmps_cubic_equal_their_formulas() -> None:
    assert cosine_fraction(0, 0.3, 750) == pytest.approx(0.3)
    assert cosine_fraction(375, 0.3, 750) == pytest.approx(0.15)
    assert cosine_fraction(250, 0.3, 750) == pytest.approx(0.15 * (1 + math.cos(math.pi / 3)))
    assert cosine_fraction(750, 0.3, 750) == pytest.approx(0.0, abs=1e-15)
    assert cosine_fraction(900, 0.3, 750) == pytest.approx(0.0, abs=1e-15)
    assert gmp_sparsity(100, 0.9, 250, 750) == 0.0
    assert gmp_sparsity(250, 0.9, 250, 750) == 0.0
    assert gmp_sparsity(500, 0.9, 250, 750) == pytest.approx(0.9 - 0.9 * 0.5 ** 3)
    assert gmp_sparsity(375, 0.9, 250, 750) == pytest.approx(0.9 - 0.9 * 0.75 ** 3)
    assert gmp_sparsity(750, 0.9, 250, 750) == 0.9
    assert gmp_sparsity(800, 0.9, 250, 750, initial=0.5) == 0.9


def test_rigl_updates_follow_the_cosine_from_begin_to_end() -> None:
    s = sparse_settings("rigl", 0.1, "erk", 1000)
    assert (s.update_every, s.drop_fraction, s.end) == (100, 0.3, 750)
    u = build_update(s, {}, 0)
    assert [it for it in range(1001) if u.due(it)] == [100, 200, 300, 400, 500, 600, 700]
    assert u.fraction(300) == pytest.approx(0.15 * (1 + math.cos(math.pi * 300 / 750)))
    gmp = build_update(sparse_settings("gmp", 0.1, "uniform", 1000),
                       {"a": torch.ones(4, 4, dtype=torch.bool)}, 0)
    assert [it for it in range(1001) if gmp.due(it)] == [250, 350, 450, 550, 650, 750]


@pytest.mark.parametrize("kw,match", [
    (dict(update_every=0), r"sparse.update_every=0it must be in 1..100"),
    (dict(update_every=101), r"sparse.update_every=101it must be in 1..100"),
    (dict(drop_fraction=1.0), r"sparse.drop_fraction=1.0 is outside \[0, 1\)"),
    (dict(drop_fraction=-0.1), r"sparse.drop_fraction=-0.1 is outside \[0, 1\)"),
    (dict(drop_schedule="linear"), "sparse.drop_schedule='linear' is unknown"),
    (dict(end=1.5), r"sparse.end=1.5 is outside \[0, 1\]"),
    (dict(begin=0.8, end=0.5), "must satisfy 0 <= begin < end"),
])
def test_bad_settings_are_config_errors(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        sparse_settings("rigl", 0.1, "erk", 100, **kw)


def test_an_unknown_method_is_an_error() -> None:
    with pytest.raises(ConfigError, match="sparse.method='snfs' is unknown; choose one of "
                                          "static, set, rigl, gmp"):
        sparse_settings("snfs", 0.1, "erk", 100)
    assert set(METHODS) == {"static", "set", "rigl", "gmp"}


# -- in a training: exact densities, cost -----------------------------------------------------
class Recorder:
    """A sink that keeps what a run logs."""

    def __init__(self) -> None:
        self.curves: list[tuple[int, int, dict]] = []
        self.rounds: list[dict] = []

    def log_round(self, record: dict) -> None:
        self.rounds.append(record)

    def log_curve(self, round: int, it: int, values: dict) -> None:
        self.curves.append((round, it, values))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("method", ["set", "rigl", "gmp"])
def test_every_update_leaves_each_layer_at_its_target_exactly(tmp_path: Path, method: str,
                                                              one_thread) -> None:
    s = sparse_settings(method, 0.2, "erk", 40, update_every=5)
    sink = Recorder()
    lottery = make_lottery(tmp_path, rounds=0, lottery={"sparse": SparseTraining(s)})
    lottery.sink = sink
    (record,) = lottery.run()
    shapes = {n: tuple(p.shape) for n, p in TinyMLP().named_parameters() if n.endswith("weight")}
    target = layer_densities(shapes, 0.2, "erk")
    exact = {n: kept_count(math.prod(sh), target[n]) / math.prod(sh) for n, sh in shapes.items()}
    changes = [v for _, _, v in sink.curves if "sparse/density" in v]
    expected = {"set": 5, "rigl": 5, "gmp": 5}[method]  # SET/RigL 5..25 (< end 30); GMP 10..30
    assert len(changes) == expected
    for values in changes if method != "gmp" else changes[-1:]:
        assert {n: values[f"sparse/density/{n}"] for n in shapes} == exact
    if method != "gmp":
        assert any(v["sparse/regrown"] > 0 for v in changes)
    assert record["layer_density"] == exact
    gmp_path = [v["sparse/density"] for v in changes]
    assert gmp_path == sorted(gmp_path, reverse=True)  # masks only shrink (GMP), constant else


def test_cost_of_imp_rigl_static_and_gmp_equals_a_hand_count(tmp_path: Path, one_thread) -> None:
    """Linear(20, 8) -> Linear(8, 4): f_D = 160 + 32 = 192 MACs per sample, batch 32, 40 its."""

    def two_layer() -> nn.Module:
        return nn.Sequential(nn.Linear(20, 8), nn.ReLU(), nn.Linear(8, 4))

    imp = make_lottery(tmp_path / "imp", model=two_layer, rounds=3,
                       strategy="magnitude_layerwise", rates=PruneRates(0.5))
    records = imp.run()
    # round k: each layer at 0.5^k exactly (80/40/20 of 160, 16/8/4 of 32): f_S = 192 * 0.5^k
    assert [r["train_cost"] for r in records] == [1.0, 0.5, 0.25, 0.125]
    assert [r["search_cost"] for r in records] == [1.0, 1.5, 1.75, 1.875]
    assert records[0]["train_macs"] == 3 * 192 * 32 * 40

    def one(method: str, **kw) -> dict:
        s = sparse_settings(method, 0.5, "uniform", 40, update_every=10, **kw)
        lot = make_lottery(tmp_path / method, model=two_layer, rounds=0,
                           lottery={"sparse": SparseTraining(s)})
        (record,) = lot.run()
        return record

    assert one("static")["train_cost"] == 0.5
    # RigL: updates at 10 and 20 (< end 30), each a dense gradient 2 * 96 + 192 on top
    rigl = one("rigl")
    assert rigl["train_macs"] == 32 * (3 * 96 * 40 + 2 * (2 * 96 + 192))
    assert rigl["train_cost"] == pytest.approx(0.5 + 2 * 384 / (3 * 192 * 40))
    # GMP: dense until 20 (the cut at 10 keeps all), then 0.5625 (90/160, 18/32) until 30,
    # then 0.5: (192 * 20 + 108 * 10 + 96 * 10) / (192 * 40)
    assert one("gmp")["train_cost"] == pytest.approx(5880 / 7680)
    assert one("set")["train_cost"] == 0.5


def test_training_macs_by_hand() -> None:
    cost = ForwardCost({"a": 12, "b": 8}, fixed=5)  # f_D = 25
    assert cost.at({"a": 0.5, "b": 0.25}) == 5 + 6 + 2
    macs = training_macs(cost, {"a": 1.0, "b": 1.0}, [(4, {"a": 0.5, "b": 0.5})], (0, 10), 1, 2)
    assert macs == 2 * (3 * 25 * 4 + 3 * 15 * 6 + (2 * 25 + 25))


def test_random_pruning_at_init_takes_erk_densities(tmp_path: Path, one_thread) -> None:
    lottery = make_lottery(tmp_path, rounds=2, strategy="random", at_init=True,
                           distribution="erk", rates=PruneRates(0.5))
    records = lottery.run()
    shapes = {n: tuple(p.shape) for n, p in TinyMLP().named_parameters() if n.endswith("weight")}
    for k in (1, 2):
        target = layer_densities(shapes, 0.5 ** k, "erk")
        assert records[k]["layer_density"] == {
            n: kept_count(math.prod(s), target[n]) / math.prod(s) for n, s in shapes.items()}
    assert records[2]["layer_density"]["out.weight"] > records[2]["layer_density"]["fc2.weight"]


def test_a_distribution_needs_a_layerwise_strategy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="prune.distribution=erk sets each layer's density, "
                                          "but prune.strategy=magnitude_global"):
        make_lottery(tmp_path, distribution="erk")
    with pytest.raises(ConfigError, match="prune.distribution='erx' is unknown"):
        make_lottery(tmp_path, strategy="magnitude_layerwise", distribution="erx")


def test_wrn22_2_has_the_published_shape() -> None:
    from lth.models import WideResNet

    model = WideResNet((3, 32, 32), 10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 3 * 3 * 2 + 3  # stem, 3 stages of 3 blocks, 3 1x1 shortcuts
    assert [c.out_channels for c in convs if c.kernel_size == (1, 1)] == [32, 64, 128]
    assert sum(p.numel() for p in model.parameters()) == 1_079_642
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ConfigError, match=r"6n\+4"):
        WideResNet((3, 32, 32), 10, depth=20)
