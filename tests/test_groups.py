"""Replica groups train what a single run trains: controls as members, instability copies,
early-bird detection, bf16, channel-pruned rounds; they equal the same trainings run one at a
time within the replica tolerances, and resume mid-round."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import lth.lottery.span as span_module
from lth.data import BatchIterator
from lth.lottery import Lottery, ReplicaLottery, run_with_controls
from lth.lottery.instability import InstabilityOptions, pending_instability, run_instability
from lth.models import MLP
from lth.pruning import PruneRates, full_mask
from lth.train import Span
from lth.train.accel import Accel
from lth.train.core import run_loop
from lth.train.loop import SingleStepper
from lth.train.replicas import ReplicaStepper
from tests.conftest import make_blobs, make_lottery

DATA = make_blobs(n_train=256, n_test=128, dim=20, val=64)
CONTROLS = ("random_reinit", "random_prune")


def lottery(root: Path, seed: int, rounds: int = 2, fields: dict | None = None,
            **kw) -> Lottery:
    return make_lottery(root / f"s{seed}", data=DATA, model=lambda: MLP((20,), 4, hidden=(48, 24)),
                        optimizer=functools.partial(torch.optim.Adam, lr=5e-3, fused=True),
                        milestones=[40], lottery=fields, seed=seed, rounds=rounds,
                        iterations=60, rewind_iter=10, rates=PruneRates(0.5),
                        checkpoint_every=20, **kw)


def close(single: dict, grouped: dict) -> None:
    """The replica tolerances (tests/test_replicas.py): the schedule exactly, accuracy to two
    test samples, the validation loss to 1%."""
    assert grouped["density"] == single["density"]
    assert grouped["remaining"] == single["remaining"]
    assert grouped["test_acc"] == pytest.approx(single["test_acc"], abs=2 / 128)
    assert grouped["val_loss"] == pytest.approx(single["val_loss"], rel=1e-2)


@pytest.mark.parametrize("seeds", [(3,), (3, 4)])
def test_a_group_with_controls_equals_the_trainings_one_at_a_time(tmp_path: Path,
                                                                  seeds) -> None:
    singles = [lottery(tmp_path / "single", s) for s in seeds]
    for lot in singles:
        run_with_controls(lot, CONTROLS)
    group = ReplicaLottery([lottery(tmp_path / "group", s) for s in seeds], CONTROLS)
    seen: list = []
    group.run(on_round=lambda i, r: seen.append((i, r["round"], r.get("control"))))
    per_round = 1 + len(CONTROLS)  # the ticket first, then its controls, every seed
    assert [(r, c) for _, r, c in seen if r == 1][:len(seeds)] == [(1, None)] * len(seeds)
    assert len(seen) == len(seeds) * (1 + 2 * per_round)
    for single, lot in zip(singles, group.lotteries):
        a, b = single.store, lot.store
        for x, y in zip(a.read_metrics(), b.read_metrics()):
            close(x, y)
        cx = {(r["round"], r["control"]): r for r in a.read_controls()}
        cy = {(r["round"], r["control"]): r for r in b.read_controls()}
        assert sorted(cx) == sorted(cy) == [(k, c) for k in (1, 2) for c in sorted(CONTROLS)]
        for key in cx:
            assert cx[key]["control_seed"] == cy[key]["control_seed"]
            close(cx[key], cy[key])
        names = sorted(str(p.relative_to(a.root)) for p in a.root.rglob("*.pt"))
        assert names == sorted(str(p.relative_to(b.root)) for p in b.root.rglob("*.pt"))


def test_a_group_with_controls_resumes_mid_round_bit_identically(tmp_path: Path,
                                                                 monkeypatch) -> None:
    def group(root: Path) -> ReplicaLottery:
        return ReplicaLottery([lottery(root, s) for s in (3, 4)], CONTROLS)

    whole = group(tmp_path / "whole")
    whole.run()

    class Crash(BaseException):
        pass

    def crash(name: str) -> None:
        if name == "checkpoint:2:40:controls:random_prune":
            raise Crash(name)

    monkeypatch.setattr(span_module, "kill_point", crash)
    with pytest.raises(Crash):
        group(tmp_path / "run").run()
    monkeypatch.undo()
    resumed = group(tmp_path / "run")
    assert all(lot.store.checkpoint_path(2, "random_prune").exists()
               for lot in resumed.lotteries)
    resumed.run()
    drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    for a, b in zip(whole.lotteries, resumed.lotteries):
        assert drop(a.store.read_metrics()) == drop(b.store.read_metrics())
        assert drop(a.store.read_controls()) == drop(b.store.read_controls())
        for name in ("random_prune", "random_reinit"):
            x = a.store.load_tensors(a.store.final_path(2, name))
            y = b.store.load_tensors(b.store.final_path(2, name))
            assert all(torch.equal(x[n], y[n]) for n in x)
    assert not list(tmp_path.rglob("checkpoint.pt"))


def test_a_group_runs_the_instability_copies_and_analysis(tmp_path: Path) -> None:
    options = InstabilityOptions(alpha_points=5, train_samples=64)
    single = lottery(tmp_path / "single", 3, rounds=1)
    single.run()
    for k in pending_instability(single.store):
        run_instability(single, k, options)
    group = ReplicaLottery([lottery(tmp_path / "group", s, rounds=1) for s in (3, 4)],
                           instability=options)
    seen: list = []
    group.run(on_instability=lambda i, r: seen.append((i, r["round"])))
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    a, b = single.store.read_instability(), group.lotteries[0].store.read_instability()
    for x, y in zip(a, b):
        assert x["instability_seeds"] == y["instability_seeds"]
        assert y["barrier_test"] == pytest.approx(x["barrier_test"], abs=3 * 100 / 128)


def test_a_group_detects_early_birds_per_seed(tmp_path: Path) -> None:
    kw = dict(rounds=0, early_bird_every=5, early_bird_threshold=0.3)
    single = lottery(tmp_path / "single", 4, **kw)
    single.run()
    group = ReplicaLottery([lottery(tmp_path / "group", s, **kw) for s in (3, 4)])
    group.run()
    (a,), (b,) = single.store.read_metrics(), group.lotteries[1].store.read_metrics()
    assert b["early_bird_iter"] is not None
    assert abs(a["early_bird_iter"] - b["early_bird_iter"]) <= 5  # one draw apart at most
    assert (group.lotteries[0].store.round_dir(0) / "early_bird.json").exists()


def test_bf16_replicas_equal_bf16_single_runs_within_tolerance() -> None:
    make = functools.partial(torch.optim.Adam, lr=5e-3)
    models = [MLP((20,), 4, hidden=(48, 24)) for _ in range(2)]
    singles = [MLP((20,), 4, hidden=(48, 24)) for _ in range(2)]
    for s, m in zip(singles, models):
        s.load_state_dict(m.state_dict())
    masks = [full_mask(m) for m in models]
    bf16, span = Accel("bf16"), Span(0, 40, lambda it: 1.0)
    group = ReplicaStepper(models, DATA, make, batch_size=32, seeds=[0, 1], masks=masks,
                           accel=bf16)
    grouped = run_loop(group, DATA, span)
    for j, model in enumerate(singles):
        batches = BatchIterator(DATA.x_train, DATA.y_train, 32, j)
        (single,) = run_loop(SingleStepper(model, make(model.parameters()), batches,
                                           masks[j], bf16), DATA, span)
        assert grouped[j].test_acc == pytest.approx(single.test_acc, abs=3 / 128)
        assert grouped[j].train_loss == pytest.approx(single.train_loss, rel=5e-2)
        for (n, p), q in zip(group.models()[j].named_parameters(), model.parameters()):
            # bf16 rounds at ~3 significant digits; the batched kernels round elsewhere
            torch.testing.assert_close(p, q, rtol=0.05, atol=2e-2, msg=n)


def test_channel_pruned_rounds_train_in_a_group(tmp_path: Path) -> None:
    from lth.pruning.structured import ChannelPruner

    def make(root: Path, seed: int) -> Lottery:
        pruner = ChannelPruner(lambda: MLP((20,), 4, hidden=(48, 24)), DATA.x_train,
                               DATA.y_train, 32)
        return lottery(root, seed, rounds=1, fields={"pruner": pruner})

    single = make(tmp_path / "single", 3)
    single.run()
    group = ReplicaLottery([make(tmp_path / "group", s) for s in (3, 4)])
    group.run()
    close(single.store.read_metrics()[1], group.lotteries[0].store.read_metrics()[1])
    assert "macs_structured" in group.lotteries[0].store.read_metrics()[1]


@pytest.mark.slow  # torch.compile takes ~10 s per graph on a CPU
def test_compiled_replicas_equal_uncompiled_replicas() -> None:
    make = functools.partial(torch.optim.Adam, lr=5e-3)
    results = []
    for compile_ in (False, True):
        torch.manual_seed(0)
        models = [MLP((20,), 4, hidden=(48, 24)) for _ in range(2)]
        stepper = ReplicaStepper(models, DATA, make, batch_size=32, seeds=[0, 1],
                                 accel=Accel(compile=compile_))
        results.append((run_loop(stepper, DATA, Span(0, 30, lambda it: 1.0)),
                        [dict(m.named_parameters()) for m in stepper.models()]))
    (plain, wp), (compiled, wc) = results
    for a, b in zip(plain, compiled):
        assert b.test_acc == pytest.approx(a.test_acc, abs=2 / 128)
    for a, b in zip(wp, wc):
        for n in a:
            torch.testing.assert_close(a[n], b[n], rtol=1e-3, atol=1e-4)
