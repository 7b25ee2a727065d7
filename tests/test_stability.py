"""Stability analyses without Hydra: interpolation and barriers, BatchNorm resets, mask
overlaps, early-bird detection, and the instability branches of a stored round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import lth.lottery.span as span_module
from lth.analysis.overlap import OVERALL, compare_masks, hamming, jaccard, oneshot_mask, overlap
from lth.errors import ConfigError
from lth.lottery.driver import Branch
from lth.lottery.instability import (
    InstabilityOptions,
    copy_seed,
    copy_start,
    pending_instability,
    run_instability,
)
from lth.lottery.settings import LotterySettings
from lth.measure.early_bird import EarlyBird, mask_distance
from lth.measure.interpolate import (
    alpha_grid,
    barrier,
    error_curve,
    error_of,
    interpolate,
    reset_bn_stats,
)
from lth.pruning import PruneRates, apply_mask, prune_mask
from tests.conftest import TinyMLP, make_blobs, make_lottery


# -- interpolation and the barrier ------------------------------------------------------------
def test_alpha_grid_has_both_ends_and_needs_two_points() -> None:
    assert alpha_grid(2) == [0.0, 1.0]
    assert alpha_grid(5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ConfigError, match="alpha_points=1"):
        alpha_grid(1)


def swapped_pair() -> tuple[nn.Module, dict, dict, tuple]:
    """Two minima of a 2-2-2 ReLU network that differ by swapping the hidden units: both
    classify perfectly, and at α = 0.5 both hidden units are equal, so the two logits tie
    (argmax picks class 0) and the class-1 sample is misclassified."""
    model = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    eye, swap = torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    w1, w2 = {"0.weight": eye, "2.weight": eye}, {"0.weight": swap, "2.weight": swap}
    split = (torch.eye(2), torch.tensor([0, 1]))
    return model, w1, w2, split


def test_barrier_of_a_known_bump_matches_the_hand_computation() -> None:
    model, w1, w2, split = swapped_pair()
    curve = error_curve(model, w1, w2, alpha_grid(5), test=split, train=split)
    # By hand: logits (α² + (1−α)², 2α(1−α)) for x = e1, the reverse for e2: right except at
    # α = 0.5, where one of the two samples is wrong: E = [0, 0, 50, 0, 0] percent.
    assert curve.test_err == [0.0, 0.0, 50.0, 0.0, 0.0]
    assert curve.barrier_test == 50.0 and curve.barrier_train == 50.0
    assert barrier([10.0, 30.0, 20.0]) == 15.0  # 30 − (10 + 20) / 2


def test_a_network_interpolated_with_itself_has_zero_barrier() -> None:
    model, w1, _, split = swapped_pair()
    curve = error_curve(model, w1, w1, alpha_grid(7), test=split, train=split)
    assert curve.barrier_test == 0.0 and set(curve.test_err) == {0.0}


class WatchedMLP(TinyMLP):
    """Records, at each forward pass, whether the masked weights are exactly zero."""

    mask: dict[str, torch.Tensor] = {}
    seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        params = dict(self.named_parameters())
        self.seen.append(all(bool((params[n][~m] == 0).all()) for n, m in self.mask.items()))
        return super().forward(x)


def test_masked_weights_stay_zero_at_every_alpha() -> None:
    torch.manual_seed(0)
    a, b = TinyMLP(), TinyMLP()
    mask = prune_mask(dict(a.named_parameters()), {"fc1.weight": torch.ones(32, 20, dtype=bool),
                                                   "fc2.weight": torch.ones(32, 32, dtype=bool)},
                      strategy="random", seed=1, densities={"fc1.weight": 0.3,
                                                            "fc2.weight": 0.3})
    apply_mask(a, mask)
    apply_mask(b, mask)
    data = make_blobs()
    model = WatchedMLP()
    WatchedMLP.mask, WatchedMLP.seen = mask, []
    error_curve(model, a.state_dict(), b.state_dict(), alpha_grid(6),
                test=(data.x_test, data.y_test), train=(data.x_train, data.y_train), mask=mask)
    assert len(WatchedMLP.seen) == 12 and all(WatchedMLP.seen)
    assert not all(bool((interpolate(a.state_dict(), TinyMLP().state_dict(), 0.5)[n][~m] == 0)
                        .all()) for n, m in mask.items())  # an unmasked partner would not be


class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.bn, self.out = nn.Linear(20, 32), nn.BatchNorm1d(32), nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.relu(self.bn(self.fc(x))))


def trained_bn(seed: int, data) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = BNNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for i in range(30):
        x, y = data.x_train[i * 8 % 200:][:32], data.y_train[i * 8 % 200:][:32]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x * (1 + seed)), y).backward()
        opt.step()
    return model.state_dict()


def test_batchnorm_reset_matters_and_equals_a_freshly_reset_copy() -> None:
    data = make_blobs()
    w1, w2 = trained_bn(0, data), trained_bn(1, data)
    w2["bn.running_mean"] = w2["bn.running_mean"] + 5  # statistics that do not fit the weights
    test, train = (data.x_test, data.y_test), (data.x_train, data.y_train)
    batches = list(data.x_train.split(64))
    alphas = [0.0, 0.5, 1.0]
    reset = error_curve(BNNet(), w1, w2, alphas, test=test, train=train, bn_batches=batches)
    kept = error_curve(BNNet(), w1, w2, alphas, test=test, train=train)
    assert reset.bn_reset and not kept.bn_reset
    assert reset.test_err != kept.test_err
    fresh = BNNet()
    fresh.load_state_dict(interpolate(w1, w2, 0.5))
    reset_bn_stats(fresh, batches)
    assert error_of(fresh, test) == reset.test_err[1]


# -- mask overlap -----------------------------------------------------------------------------
def test_overlap_with_itself_is_one_and_with_its_complement_zero() -> None:
    m = torch.rand(50, 40, generator=torch.Generator().manual_seed(0)) < 0.3
    assert jaccard(m, m) == 1.0 and hamming(m, m) == 0.0
    assert jaccard(m, ~m) == 0.0 and hamming(m, ~m) == 1.0


def test_jaccard_hamming_and_chance_by_hand() -> None:
    a, b = torch.tensor([1, 1, 0, 0], dtype=bool), torch.tensor([1, 0, 1, 0], dtype=bool)
    o = overlap(a, b)
    assert o.jaccard == pytest.approx(1 / 3) and o.hamming == 0.5
    # Random masks of density 1/2: E|∩| = n/4, E|∪| = 3n/4, Hamming 1/2.
    assert o.chance_jaccard == pytest.approx(1 / 3) and o.chance_hamming == pytest.approx(0.5)
    c = torch.tensor([1, 0, 0, 0, 0, 0], dtype=bool)
    both = compare_masks({"x": a, "y": c}, {"x": b, "y": c})
    assert both["y"].jaccard == 1.0
    assert both[OVERALL].jaccard == pytest.approx(2 / 4)  # |∩| = 2 of |∪| = 4 over 10 entries
    assert both[OVERALL].hamming == pytest.approx(2 / 10)


def test_random_masks_overlap_as_chance_predicts() -> None:
    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(200_000, generator=g) < 0.2, torch.rand(200_000, generator=g) < 0.4
    o = overlap(a, b)
    assert o.jaccard == pytest.approx(o.chance_jaccard, abs=0.005)
    assert o.hamming == pytest.approx(o.chance_hamming, abs=0.005)


def test_oneshot_mask_prunes_the_given_weights_at_the_given_density() -> None:
    w = {"a": torch.arange(10.0).view(2, 5)}
    mask = oneshot_mask(w, {"a": torch.ones(2, 5, dtype=bool)}, strategy="magnitude_global",
                        densities={"a": 0.3})
    assert mask["a"].flatten().tolist() == [False] * 7 + [True] * 3


# -- early bird -------------------------------------------------------------------------------
def test_early_bird_fires_when_the_window_of_five_settles_and_not_before() -> None:
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.rand(1000, generator=g) < 0.5}
    noise = [{"w": torch.rand(1000, generator=g) < 0.5} for _ in range(4)]
    masks = noise + [base] * 6  # masks 4.. are equal: the window 4..8 is the first settled
    bird = EarlyBird(threshold=0.1)
    fired = [bird.add(10 * i, m) for i, m in enumerate(masks)]
    assert fired.index(True) == 8 and fired.count(True) == 1 and bird.found_iter == 80
    assert mask_distance(noise[0], noise[0]) == 0.0


class ReferenceEarlyBird:
    """The core of GATECH-EIC/Early-Bird-Tickets' ``EarlyBird`` (main.py): a queue of
    ``epoch_keep`` flat masks, the newest one's distances to the others, emerged when none is
    above 0.1 (ported for the comparison; the mask drawing itself is lth's)."""

    def __init__(self, epoch_keep: int = 5) -> None:
        self.epoch_keep, self.masks = epoch_keep, []
        self.dists = [1 for _ in range(1, epoch_keep)]

    def put(self, mask: torch.Tensor) -> None:
        if len(self.masks) < self.epoch_keep:
            self.masks.append(mask)
        else:
            self.masks.pop(0)
            self.masks.append(mask)

    def cal_dist(self) -> bool:
        if len(self.masks) == self.epoch_keep:
            for i in range(len(self.masks) - 1):
                mask_i, mask_j = self.masks[-1], self.masks[i]
                self.dists[i] = 1 - float(torch.sum(mask_i == mask_j)) / mask_j.size(0)
            return True
        return False

    def early_bird_emerge(self, mask: torch.Tensor) -> bool:
        self.put(mask)
        if self.cal_dist():
            return all(d <= 0.1 for d in self.dists)
        return False


@pytest.mark.parametrize("seed", range(6))
def test_early_bird_finds_the_point_the_reference_code_finds(seed: int) -> None:
    """Masks that drift by 0-3 of 20 entries a step, so distances of exactly 0.1 occur."""
    g = torch.Generator().manual_seed(seed)
    mask, masks = torch.rand(20, generator=g) < 0.5, []
    for _ in range(40):
        flip = torch.randperm(20, generator=g)[:int(torch.randint(0, 4, (1,), generator=g))]
        mask = mask.clone()
        mask[flip] = ~mask[flip]
        masks.append(mask)
    reference = ReferenceEarlyBird()
    expected = next((i for i, m in enumerate(masks) if reference.early_bird_emerge(m)), None)
    bird = EarlyBird(threshold=0.1)
    for i, m in enumerate(masks):
        bird.add(i, {"w": m})
    assert bird.found_iter == expected


def test_early_bird_distance_of_exactly_the_threshold_passes() -> None:
    a = {"w": torch.zeros(10, dtype=bool)}
    b = {"w": torch.tensor([True] + [False] * 9)}  # distance exactly 0.1 from a
    bird = EarlyBird(threshold=0.1)
    assert [bird.add(i, m) for i, m in enumerate([a, a, a, a, b])] == [False] * 4 + [True]


def test_early_bird_draws_the_initial_mask_first(tmp_path: Path) -> None:
    """As the reference draws a mask before each epoch's training, the first mask is the
    initial weights' (iteration 0), and none is drawn after the last step."""
    lottery = make_lottery(tmp_path, rounds=0, iterations=60, early_bird_every=20)
    lottery.run()
    points = json.loads((lottery.store.round_dir(0) / "early_bird.json").read_text())["points"]
    assert [p["iter"] for p in points] == [0, 20, 40]


def test_early_bird_round_zero_records_the_point_and_draws_the_ticket(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path, rounds=1, iterations=60, early_bird_every=5,
                           early_bird_threshold=0.3, early_bird_ticket=True)
    lottery.run()
    first, second = lottery.store.read_metrics()
    # draws at 0, 5, ..., 55: the first full window of five ends at 20
    assert first["early_bird_iter"] is not None and 20 <= first["early_bird_iter"] < 60
    early = lottery.store.load_tensors(lottery.store.early_bird_mask_path)
    ticket = lottery.store.load_tensors(lottery.store.mask_path(1))
    assert all(torch.equal(early[n], ticket[n]) for n in ticket) and second["early_bird_ticket"]


def test_early_bird_detection_works_with_criteria_that_read_the_initial_weights(
        tmp_path: Path) -> None:
    # magnitude_increase compares round 0's start (init.pt) with the current weights: the
    # detector's masks must be drawn the way round 1 draws its own.
    lottery = make_lottery(tmp_path, rounds=1, iterations=60, early_bird_every=5,
                           early_bird_threshold=0.3, early_bird_ticket=True,
                           strategy="magnitude_increase")
    lottery.run()
    first, second = lottery.store.read_metrics()
    assert first["early_bird_iter"] is not None and second["early_bird_ticket"]


def test_an_early_bird_ticket_cannot_be_pruning_at_init() -> None:
    with pytest.raises(ConfigError, match="choose one"):
        LotterySettings(seed=0, rounds=1, iterations=60, batch_size=32, rewind_iter=0,
                        strategy="snip", rates=PruneRates(0.3), early_bird_every=5,
                        early_bird_ticket=True, at_init=True)


# -- instability branches ----------------------------------------------------------------------
@pytest.fixture
def stored(tmp_path: Path):
    lottery = make_lottery(tmp_path, rounds=1, rewind_iter=10)
    lottery.run()
    return lottery


def test_copies_start_at_the_rewind_point_with_the_mask_and_own_seeds(stored) -> None:
    rewind = stored.store.load_tensors(stored.store.rewind_path)
    mask = stored.store.load_tensors(stored.store.mask_path(1))
    starts = [copy_start(stored, 1, c) for c in (0, 1)]
    for c, start in enumerate(starts):
        assert start.span.start == 10 and all(torch.equal(start.mask[n], mask[n]) for n in mask)
        assert start.branch.kind == "instability"
        assert start.branch.data_seed == copy_seed(0, 1, c)
        for n, t in start.model.state_dict().items():
            assert torch.equal(t, rewind[n] * mask[n] if n in mask else rewind[n])
    assert starts[0].branch.data_seed != starts[1].branch.data_seed


def test_endpoints_are_the_copies_own_test_errors(stored) -> None:
    record = run_instability(stored, 1, InstabilityOptions(alpha_points=4, train_samples=100))
    copies = sorted(stored.store.read_branches("instability"), key=lambda r: r["copy"])
    assert [100 * (1 - r["test_acc"]) for r in copies] == record["copy_test_err"]
    assert record["round"] == 1 and record["spawn_iter"] == 10
    assert record["barrier_test"] >= 0 and pending_instability(stored.store) == [0]
    ticket = stored.store.read_metrics()[1]
    assert {k: record[k] for k in ticket} == ticket


def test_copies_with_the_same_seed_are_bit_identical_with_zero_barrier(stored) -> None:
    finals = []
    for _ in range(2):
        start = copy_start(stored, 1, 0)
        stored.train_round(start)
        finals.append({n: t.clone() for n, t in start.model.state_dict().items()})
    assert all(torch.equal(finals[0][n], finals[1][n]) for n in finals[0])
    data = stored.data
    curve = error_curve(TinyMLP(), *finals, alpha_grid(5), test=(data.x_test, data.y_test),
                        train=(data.x_train, data.y_train))
    assert curve.barrier_test == 0.0 and curve.barrier_train == 0.0
    other = copy_start(stored, 1, 1)
    stored.train_round(other)  # the other seed differs: the test above can fail
    assert not all(torch.equal(finals[0][n], t) for n, t in other.model.state_dict().items())


def test_branch_defaults_are_the_controls_kind() -> None:
    assert Branch("x", {}).kind == "controls" and Branch("x", {}).data_seed is None


class Stop(Exception):
    pass


def test_early_bird_window_survives_a_resume_exactly(tmp_path: Path, monkeypatch) -> None:
    kw = dict(rounds=0, iterations=60, early_bird_every=5, early_bird_threshold=0.3,
              checkpoint_every=20)
    whole = make_lottery(tmp_path / "whole", **kw)
    whole.run()
    broken = make_lottery(tmp_path / "broken", **kw)
    save = span_module.save_checkpoints

    def save_then_stop(members, stepper, states) -> None:
        save(members, stepper, states)
        if states[0].it == 40:
            raise Stop  # as if killed right after the checkpoint of iteration 40

    monkeypatch.setattr(span_module, "save_checkpoints", save_then_stop)
    with pytest.raises(Stop):
        broken.run()
    monkeypatch.undo()
    resumed = make_lottery(tmp_path / "broken", **kw)
    resumed.run()
    (a,), (b,) = whole.store.read_metrics(), resumed.store.read_metrics()
    assert a["early_bird_iter"] == b["early_bird_iter"] is not None
    name = "round_0/early_bird.json"
    assert (whole.store.root / name).read_text() == (resumed.store.root / name).read_text()


def test_overlap_rows_average_seed_pairs_beside_chance() -> None:
    from lth.analysis.mask_report import ONESHOT, SEEDS, overlap_rows

    g = torch.Generator().manual_seed(1)
    masks = {s: {"w": torch.rand(400, generator=g) < 0.5} for s in range(3)}
    rows = overlap_rows(2, 0.5, masks, {s: masks[s] for s in masks})
    seeds = next(r for r in rows if r.comparison == SEEDS and r.layer == OVERALL)
    assert seeds.pairs == 3 and abs(seeds.jaccard[0] - seeds.chance_jaccard) < 0.1
    same = next(r for r in rows if r.comparison == ONESHOT and r.layer == OVERALL)
    assert same.jaccard == (1.0, 1.0, 1.0) and same.pairs == 3
