"""The mask as training state: an update that changes it inside a span, stored, checkpointed and
resumed exactly, alone and in a replica group."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lth.lottery.span as span_module
from lth.data import BatchIterator
from lth.lottery import Lottery, ReplicaLottery
from lth.pruning import PruneRates
from lth.store import RunStore
from lth.train import Span
from lth.train.loop import SingleStepper
from lth.train.masking import MaskChange, Masking, UpdateContext
from lth.train.replicas import ReplicaStepper
from tests.conftest import TinyMLP, make_blobs, make_lottery

LAYER = "fc2.weight"


class Regrow:
    """A toy mask update: at each iteration of ``at``, ``count`` pruned entries of ``LAYER``
    chosen at random (its own generator, its state checkpointed) are regrown at zero."""

    def __init__(self, count: int, at: tuple[int, ...], seed: int) -> None:
        self.count, self.at = count, set(at)
        self.gen = torch.Generator().manual_seed(seed)
        self.seen: list[int] = []

    def due(self, it: int) -> bool:
        return it in self.at

    def update(self, ctx: UpdateContext) -> MaskChange:
        self.seen.append(ctx.it)
        mask = ctx.mask[LAYER].cpu().flatten().clone()
        dead = (~mask).nonzero().flatten()
        mask[dead[torch.randperm(len(dead), generator=self.gen)[:self.count]]] = True
        return MaskChange({**ctx.mask, LAYER: mask.view(ctx.mask[LAYER].shape)},
                          stats={"regrown": float(self.count)})

    def state_dict(self) -> dict:
        return {"generator": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["generator"])


class Stop(Exception):
    pass


DATA = make_blobs()


def lottery(root: Path, seed: int = 0, at: tuple[int, ...] = (10, 50)) -> Lottery:
    """Round 1 of a tiny IMP run gets the toy update (round 0 stays dense and constant)."""
    update = lambda st: Regrow(7, at, 100 + seed) if st.k == 1 else None  # noqa: E731
    return make_lottery(root, data=DATA, optimizer=lambda p: torch.optim.Adam(p, lr=1e-2),
                        milestones=[40], lottery={"mask_update": update}, seed=seed,
                        rounds=1, iterations=60, rates=PruneRates(0.5), checkpoint_every=20)


def stop_at(monkeypatch, it: int, k: int = 1) -> None:
    """Raise Stop right after the checkpoint of iteration ``it`` of round ``k`` is written."""
    save = span_module.save_checkpoints

    def save_then_stop(members, stepper, states) -> None:
        save(members, stepper, states)
        if states[0].it == it and members[0].start.k == k:
            raise Stop

    monkeypatch.setattr(span_module, "save_checkpoints", save_then_stop)


def stored(store: RunStore) -> tuple[list[dict], dict, dict]:
    metrics = [{k: v for k, v in r.items() if k != "wall_s"} for r in store.read_metrics()]
    return metrics, store.load_tensors(store.mask_path(1)), store.load_tensors(
        store.final_path(1))


def same(a: tuple, b: tuple) -> bool:
    (ma, ka, wa), (mb, kb, wb) = a, b
    return ma == mb and all(torch.equal(ka[n], kb[n]) for n in ka) and all(
        torch.equal(wa[n], wb[n]) for n in wa)


def test_the_stored_final_mask_shows_the_regrown_weights(tmp_path: Path) -> None:
    lot = lottery(tmp_path)
    lot.run()
    store = lot.store
    start, final = (store.load_tensors(store.start_mask_path(1)),
                    store.load_tensors(store.mask_path(1)))
    assert int(final[LAYER].sum()) == int(start[LAYER].sum()) + 14  # 7 at 10, 7 at 50
    assert bool((final[LAYER] | ~start[LAYER]).all()), "masks only grow here"
    assert all(torch.equal(final[n], start[n]) for n in final if n != LAYER)
    weights = store.load_tensors(store.final_path(1))
    for n, m in final.items():
        assert bool((weights[n][~m] == 0).all()), n
    record = store.read_metrics()[1]
    assert record["remaining"] == sum(int(m.sum()) for m in final.values())
    # IMP's rounds store no start mask: it equals the final one
    assert not store.start_mask_path(0).exists()


def test_a_run_killed_after_the_change_resumes_bit_identically(tmp_path: Path,
                                                               monkeypatch) -> None:
    whole = lottery(tmp_path / "whole")
    whole.run()
    stop_at(monkeypatch, 40)  # after the regrowth at 10, before the one at 50
    with pytest.raises(Stop):
        lottery(tmp_path / "run").run()
    monkeypatch.undo()
    resumed = lottery(tmp_path / "run")
    ckpt = resumed.store.load(resumed.store.checkpoint_path(1), "")
    start = whole.store.load_tensors(whole.store.start_mask_path(1))
    assert int(ckpt["train"]["mask"][LAYER].sum()) == int(start[LAYER].sum()) + 7
    resumed.run()
    assert same(stored(whole.store), stored(resumed.store))


def test_resuming_without_the_updates_saved_state_differs(tmp_path: Path, monkeypatch) -> None:
    """The test above can fail: a fresh generator regrows other weights at 50."""
    whole = lottery(tmp_path / "whole")
    whole.run()
    stop_at(monkeypatch, 40)
    with pytest.raises(Stop):
        lottery(tmp_path / "run").run()
    monkeypatch.undo()
    monkeypatch.setattr(Regrow, "load_state_dict", lambda self, state: None)
    resumed = lottery(tmp_path / "run")
    resumed.run()
    assert not same(stored(whole.store), stored(resumed.store))


def test_replica_groups_regrow_per_seed_and_resume_bit_identically(tmp_path: Path,
                                                                   monkeypatch) -> None:
    def group(root: Path) -> ReplicaLottery:
        return ReplicaLottery([lottery(root / f"s{s}", seed=s) for s in (0, 1)])

    whole = group(tmp_path / "whole")
    whole.run()
    masks = [lot.store.load_tensors(lot.store.mask_path(1))[LAYER] for lot in whole.lotteries]
    assert not torch.equal(masks[0], masks[1]), "each seed draws its own regrowth"
    stop_at(monkeypatch, 40)
    with pytest.raises(Stop):
        group(tmp_path / "run").run()
    monkeypatch.undo()
    resumed = group(tmp_path / "run")
    resumed.run()
    for a, b in zip(whole.lotteries, resumed.lotteries):
        assert same(stored(a.store), stored(b.store))


def test_a_group_member_regrows_what_its_single_run_regrows(tmp_path: Path) -> None:
    single = lottery(tmp_path / "single", seed=1)
    single.run()
    grouped = ReplicaLottery([lottery(tmp_path / f"g{s}", seed=s) for s in (0, 1)])
    grouped.run()
    a = single.store.load_tensors(single.store.mask_path(1))
    b = grouped.lotteries[1].store.load_tensors(grouped.lotteries[1].store.mask_path(1))
    assert all(torch.equal(a[n], b[n]) for n in a)


# -- the parts -----------------------------------------------------------------------------
def test_setting_a_mask_zeroes_dropped_weights_and_their_state_and_sets_regrown_values(
        ) -> None:
    model = TinyMLP()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 20)).sum().backward()
    opt.step()  # every state entry nonzero
    params = dict(model.named_parameters())
    keep = torch.ones_like(params[LAYER], dtype=torch.bool)
    masking = Masking(params, [{LAYER: keep}], lambda k, n: opt.state[params[n]])
    drop = keep.clone()
    drop[0] = False
    masking.set([{LAYER: drop}])
    assert bool((params[LAYER][0] == 0).all())
    assert bool((opt.state[params[LAYER]]["exp_avg"][0] == 0).all())
    assert bool((params[LAYER][1] != 0).all())
    regrow = drop.clone()
    regrow[0, :3] = True
    masking.set([{LAYER: regrow}], [{LAYER: torch.full_like(params[LAYER], 0.5)}])
    assert params[LAYER][0, :3].tolist() == [0.5] * 3 and bool((params[LAYER][0, 3:] == 0).all())
    assert bool((params[LAYER][1] != 0.5).all()), "only regrown entries take the values"


def bn_net() -> nn.Module:
    return nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))


@pytest.mark.parametrize("replicas", [1, 2])
def test_dense_gradients_are_batch_its_unmasked_gradients_and_leave_statistics(
        replicas: int) -> None:
    data = make_blobs()
    models = [bn_net() for _ in range(replicas)]
    masks = [{"0.weight": torch.rand(16, 20) > 0.5, "3.weight": torch.ones(4, 16, dtype=bool)}
             for _ in models]
    for m, mask in zip(models, masks):
        with torch.no_grad():
            m[0].weight.mul_(mask["0.weight"])
    expect = []
    for j, model in enumerate(models):
        x, y = BatchIterator(data.x_train, data.y_train, 32, j).batch(7)
        probe = bn_net()
        probe.load_state_dict(model.state_dict())
        F.cross_entropy(probe(x), y).backward()
        expect.append(probe[0].weight.grad)
    before = [{n: b.clone() for n, b in m.named_buffers()} for m in models]
    if replicas == 1:
        batches = BatchIterator(data.x_train, data.y_train, 32, 0)
        stepper = SingleStepper(models[0], torch.optim.SGD(models[0].parameters(), lr=0.1),
                                batches, masks[0])
    else:
        stepper = ReplicaStepper(models, data, lambda p: torch.optim.SGD(p, lr=0.1),
                                 batch_size=32, seeds=list(range(replicas)), masks=masks)
    grads = stepper.dense_grads(7)
    for j, model in enumerate(stepper.models()):
        torch.testing.assert_close(grads[j]["0.weight"], expect[j], rtol=1e-4, atol=1e-6)
        assert bool((grads[j]["0.weight"][~masks[j]["0.weight"]] != 0).any()), "not masked"
        assert all(torch.equal(b, before[j][n]) for n, b in model.named_buffers())


def test_a_constant_mask_is_never_asked_for_an_update(tmp_path: Path, monkeypatch) -> None:
    """IMP's rounds: the loop never calls the stepper's mask machinery."""
    calls: list = []
    monkeypatch.setattr(SingleStepper, "set_masks", lambda self, *a: calls.append(a))
    monkeypatch.setattr(SingleStepper, "dense_grads", lambda self, it: calls.append(it))
    make_lottery(tmp_path, rounds=1, iterations=30, rates=PruneRates(0.5)).run()
    assert calls == []
    assert Span(0, 1, lambda it: 1.0).iterations == 1
