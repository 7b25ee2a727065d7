"""Controls beside a ticket's rounds: the right mask, a different init, stored and resumable."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lth.lottery.span as span_module
from lth.errors import ConfigError
from lth.lottery import derive_seed
from lth.lottery.controls import (
    pending_controls,
    run_control,
    run_with_controls,
    shuffled_mask,
)
from lth.tracking.wandb_sink import control_metrics
from tests.conftest import TinyMLP, make_lottery

BOTH = ["random_reinit", "random_prune"]


@pytest.fixture
def starts(monkeypatch) -> dict:
    """(round, control) -> (start state, mask) as handed to the trainer."""
    seen: dict = {}
    real = span_module.train

    def spy(members, build, data, options):
        for m in members:
            st = m.start
            if st.branch is not None:
                seen[st.k, st.branch.name] = (
                    {n: t.clone() for n, t in st.model.state_dict().items()},
                    {n: t.clone() for n, t in st.mask.items()}, st.span.start)
        return real(members, build, data, options)

    monkeypatch.setattr(span_module, "train", spy)
    return seen


def ticket_run(tmp_path: Path, names=BOTH, **kw):
    lottery = make_lottery(tmp_path, rounds=2, **kw)
    records = run_with_controls(lottery, names)
    return lottery, records


@pytest.mark.parametrize("rewind_iter", [0, 15])
def test_random_prune_has_the_tickets_layer_densities_and_start(tmp_path: Path, starts,
                                                               rewind_iter: int) -> None:
    lottery, _ = ticket_run(tmp_path, ["random_prune"], rewind_iter=rewind_iter)
    store = lottery.store
    rewind = store.load_tensors(store.rewind_path)
    for k in (1, 2):
        ticket = store.load_tensors(store.mask_path(k))
        state, mask, start = starts[k, "random_prune"]
        assert start == rewind_iter  # the ticket's own span
        for n in ticket:
            assert int(mask[n].sum()) == int(ticket[n].sum()), (k, n)
        assert any(not torch.equal(mask[n], ticket[n]) for n in ticket)
        for n, t in rewind.items():  # the same rewind point, pruned by the random mask
            assert torch.equal(state[n], t * mask[n] if n in mask else t), (k, n)
        stored = store.load_tensors(store.mask_path(k, "random_prune"))
        assert all(torch.equal(stored[n], mask[n]) for n in mask)
        final = store.load_tensors(store.final_path(k, "random_prune"))
        assert all(bool((final[n][~mask[n]] == 0).all()) for n in mask)


def test_random_reinit_has_the_tickets_mask_and_a_fresh_init(tmp_path: Path, starts) -> None:
    lottery, _ = ticket_run(tmp_path, ["random_reinit"])
    store = lottery.store
    init = store.load_tensors(store.init_path)
    inits = []
    for k in (1, 2):
        ticket = store.load_tensors(store.mask_path(k))
        state, mask, _ = starts[k, "random_reinit"]
        assert all(torch.equal(mask[n], ticket[n]) for n in ticket)
        for n in init:
            assert not torch.equal(state[n], init[n] * mask[n] if n in mask else init[n]), n
        torch.manual_seed(derive_seed(0, "control", "random_reinit", k))
        fresh = TinyMLP().state_dict()
        for n, t in fresh.items():  # the documented seed, masked by the ticket's mask
            assert torch.equal(state[n], t * mask[n] if n in mask else t), (k, n)
        inits.append(state["fc1.weight"])
    assert not torch.equal(inits[0], inits[1])  # a new init each round


def test_control_records_files_and_wandb_rows(tmp_path: Path) -> None:
    lottery, records = ticket_run(tmp_path)
    rows = lottery.store.read_controls()
    assert [(r["round"], r["control"]) for r in rows] == [
        (1, "random_reinit"), (1, "random_prune"), (2, "random_reinit"), (2, "random_prune")]
    for r in rows:
        ticket = records[r["round"]]
        assert set(r) - set(ticket) == {"control", "control_seed"}
        assert (r["remaining"], r["density"]) == (ticket["remaining"], ticket["density"])
        assert r["iterations"] == ticket["iterations"]
        assert r["control_seed"] == derive_seed(0, "control", r["control"], r["round"])
        assert lottery.store.curve_path(r["round"], r["control"]).exists()
    row = control_metrics(rows[1])
    assert row["round"] == 1 and row["control/random_prune/test/acc"] == rows[1]["test_acc"]
    assert row["control/random_prune/layer_density/fc1.weight"] == rows[1][
        "layer_density"]["fc1.weight"]


def test_adding_controls_later_completes_them_without_retraining(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path, rounds=2)
    full = run_with_controls(lottery, [])
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    assert pending_controls(lottery.store, BOTH) == [(1, "random_reinit"), (1, "random_prune"),
                                               (2, "random_reinit"), (2, "random_prune")]
    ran = []
    shorter = make_lottery(tmp_path, rounds=1)  # prune.rounds says how far to go
    run_with_controls(shorter, ["random_prune"], on_control=ran.append)
    assert [(r["round"], r["control"]) for r in ran] == [(1, "random_prune")]
    again = make_lottery(tmp_path, rounds=2)
    run_with_controls(again, ["random_prune"], on_round=ran.append, on_control=ran.append)
    assert [(r["round"], r["control"]) for r in ran] == [(1, "random_prune"),
                                                         (2, "random_prune")]  # 2 added
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())  # ticket untouched
    assert again.store.read_metrics() == full
    run_with_controls(make_lottery(tmp_path, rounds=2), BOTH)
    assert len(again.store.read_controls()) == 4
    assert pending_controls(again.store, BOTH) == []


def test_a_control_is_reproducible(tmp_path: Path) -> None:
    a, b = make_lottery(tmp_path / "a", rounds=1), make_lottery(tmp_path / "b", rounds=1)
    a.run(), b.run()
    drop = lambda r: {k: v for k, v in r.items() if k != "wall_s"}  # noqa: E731
    for name in BOTH:
        assert drop(run_control(a, 1, name)) == drop(run_control(b, 1, name))


def test_shuffled_mask_is_a_per_layer_permutation() -> None:
    mask = {"a": torch.rand(30, 20) < 0.3, "b": torch.rand(50) < 0.7}
    out = shuffled_mask(mask, seed=3)
    assert {n: int(m.sum()) for n, m in out.items()} == {n: int(m.sum()) for n, m in mask.items()}
    assert all(out[n].shape == mask[n].shape for n in mask)
    assert all(torch.equal(out[n], shuffled_mask(mask, seed=3)[n]) for n in mask)


def test_unknown_control_and_round_are_config_errors(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path, rounds=1)
    with pytest.raises(ConfigError, match="random_prune"):
        run_with_controls(lottery, ["random_pruning"])
    lottery.run()
    with pytest.raises(ConfigError, match="dense"):
        run_control(lottery, 0, "random_prune")
    with pytest.raises(ConfigError, match="not completed"):
        pending_controls(lottery.store, ["random_prune"], rounds=[5])
