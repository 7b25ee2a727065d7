"""Barriers between seeds and transported masks on stored tiny runs (lth.lottery.seed_barrier,
lth.lottery.transport): endpoints are the networks' own errors, alignment removes the
barrier of a known permutation, a transported mask keeps every layer's density and comes
back unchanged, keys change with the source run and the round."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from lth.lottery.pairs import MatchOptions, OtherRun, both_completed, mask_overlap
from lth.lottery.seed_barrier import BarrierOptions, barrier_key, run_barrier
from lth.lottery.transport import (
    MATCHED_ROUND,
    VARIANTS,
    pending_transport,
    run_transport,
    transport_key,
    transport_perm,
    transported,
)
from lth.measure.interpolate import error_of
from lth.models import MLP
from lth.permute import apply_perm, inverse, perm_spec, random_perm
from lth.permute.barrier import aligned_barrier
from lth.pruning import layer_density
from lth.store import RunStore
from tests.conftest import make_blobs, make_lottery


def model() -> MLP:
    return MLP((20,), 4, (32, 32))


def lottery(root: Path, seed: int):
    return make_lottery(root, model=model, seed=seed, rounds=2,
                        strategy="magnitude_layerwise")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Two seeds of a 2-round tiny IMP run, stored."""
    tmp = tmp_path_factory.mktemp("pair")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for seed in (0, 1):
            lottery(tmp / f"s{seed}", seed).run()
    finally:
        torch.set_num_threads(threads)
    return {"a": tmp / "s0", "b": tmp / "s1"}


def other(path: Path) -> OtherRun:
    return OtherRun(RunStore(path), f"tiny/{path.name}")


def copied(runs: dict, tmp: Path, which: str = "b") -> Path:
    shutil.copytree(runs[which], tmp / which)
    return tmp / which


def test_barrier_endpoints_are_the_networks_own_errors(runs, tmp_path, one_thread) -> None:
    b = lottery(copied(runs, tmp_path), 1)
    a = other(runs["a"])
    record = run_barrier(b, a, 0, BarrierOptions(alpha_points=5, train_samples=64))
    data = make_blobs()
    for run, err in ((runs["a"], record["test_err_a"]), (runs["b"], record["test_err_b"])):
        net = model()
        net.load_state_dict(RunStore(run).load_tensors(RunStore(run).final_path(0)))
        assert err == pytest.approx(error_of(net, (data.x_test, data.y_test)))
        acc = RunStore(run).read_metrics()[0]["test_acc"]
        assert err == pytest.approx(100 * (1 - acc))
    curves = json.loads(b.store.barrier_curve_path(0, record["key"]).read_text())
    assert curves["test_err_before"][-1] == curves["test_err_after"][-1] == record["test_err_a"]
    assert curves["test_err_before"][0] == curves["test_err_after"][0]  # B, permuted or not
    assert b.store.read_barriers() == [record]
    assert b.store.perm_path(0, "barrier", record["key"]).is_file()


def test_alignment_removes_the_barrier_of_a_known_permutation(runs, tmp_path,
                                                             one_thread) -> None:
    """B is A with its hidden units shuffled: the same function, far away in weight space."""
    net = model()
    spec = perm_spec(net)
    store_a = RunStore(runs["a"])
    w_a = store_a.load_tensors(store_a.final_path(0))
    secret = random_perm(spec, seed=5)
    w_b = apply_perm(spec, secret, w_a)
    data = make_blobs()
    split = (data.x_test, data.y_test)
    paths = aligned_barrier(net, w_a, w_b, [i / 10 for i in range(11)], test=split, train=split)
    assert paths.after.barrier_test == pytest.approx(0.0, abs=1e-9)
    assert paths.after.barrier_test <= paths.before.barrier_test
    assert paths.before.barrier_test > 1.0  # the unaligned path does cross a barrier
    assert all(torch.equal(paths.perm[p], inverse(secret)[p]) for p in secret)
    # through the store: B's run directory holding the permuted network
    b_root = copied(runs, tmp_path, "a")
    RunStore(b_root).save_tensors(RunStore(b_root).final_path(0), w_b)
    record = run_barrier(lottery(b_root, 0), other(runs["a"]), 0,
                         BarrierOptions(alpha_points=11, train_samples=64))
    assert record["barrier_test_after"] == pytest.approx(0.0, abs=1e-9)
    assert record["barrier_test_before"] == pytest.approx(paths.before.barrier_test)


def test_a_transported_mask_keeps_every_layer_density_and_comes_back(runs, tmp_path) -> None:
    b = lottery(copied(runs, tmp_path), 1)
    a = other(runs["a"])
    match = MatchOptions()
    mask_a = a.store.load_tensors(a.store.mask_path(2))
    moved = transported(b, a, 2, match)
    assert layer_density(moved) == layer_density(mask_a)
    assert any(not torch.equal(moved[n], mask_a[n]) for n in mask_a)
    spec = perm_spec(model())
    back = apply_perm(spec, inverse(transport_perm(b, a, match)), moved)
    assert all(torch.equal(back[n], mask_a[n]) for n in mask_a)


def test_transport_branches_train_beside_b_and_are_skipped_when_stored(runs, tmp_path,
                                                                       one_thread) -> None:
    b = lottery(copied(runs, tmp_path), 1)
    a = other(runs["a"])
    match = MatchOptions()
    pairs = pending_transport(b.store, a, [1], VARIANTS, match)
    assert pairs == [(1, v) for v in VARIANTS]
    records = {v: run_transport(b, a, 1, v, match) for _, v in pairs}
    assert pending_transport(b.store, a, [1], VARIANTS, match) == []
    ticket = b.store.read_metrics()[1]
    own = b.store.load_tensors(b.store.mask_path(1))
    for v, r in records.items():
        assert r["transport"] == v and r["ticket_test_acc"] == ticket["test_acc"]
        assert r["density"] == pytest.approx(ticket["density"])  # layer-wise: same counts
        stored = b.store.load_tensors(b.store.mask_path(1, f"{v}-{r['transport_key']}",
                                                        "transport"))
        assert layer_density(stored) == layer_density(own)
    assert records["unpermuted"]["jaccard_ticket"] != records["permuted"]["jaccard_ticket"]
    assert b.store.perm_path(MATCHED_ROUND, "transport", "x").parent.is_dir()
    assert [r["transport"] for r in b.store.read_branches("transport")] == list(VARIANTS)


def test_keys_change_with_the_source_run_the_round_and_the_method(runs, tmp_path) -> None:
    b = lottery(copied(runs, tmp_path), 1)
    a, c = other(runs["a"]), OtherRun(RunStore(tmp_path / "elsewhere" / "0123456789ab"), "x/y")
    m = MatchOptions()
    keys = {transport_key(a, b.store, 1, m), transport_key(a, b.store, 2, m),
            transport_key(c, b.store, 1, m), transport_key(a, b.store, 1, MatchOptions(max_iter=3)),
            transport_key(a, b.store, 1, m)}
    assert len(keys) == 4
    opts = BarrierOptions()
    assert len({barrier_key(a, b.store, 0, opts), barrier_key(a, b.store, 1, opts),
                barrier_key(c, b.store, 0, opts)}) == 3


def test_both_completed_names_the_run_lacking_a_round(runs) -> None:
    from lth.errors import ConfigError

    a = other(runs["a"])
    assert both_completed(a, RunStore(runs["b"]), None) == [0, 1, 2]
    with pytest.raises(ConfigError, match=r"rounds \[7\] are not completed rounds of run_a="):
        both_completed(a, RunStore(runs["b"]), [7])


def test_mask_overlap_and_its_chance_level() -> None:
    a = {"w": torch.tensor([True, True, False, False])}
    b = {"w": torch.tensor([True, False, True, False])}
    assert mask_overlap(a, b) == (pytest.approx(1 / 3), pytest.approx(0.25 / 0.75))
    assert mask_overlap(a, a)[0] == 1.0
