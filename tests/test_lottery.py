"""The IMP driver, without Hydra: rewinding, retraining modes, determinism and resuming."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.errors import CheckpointError, ConfigError
from lth.lottery import Lottery
from lth.pruning import PruneRates, kept_count
from lth.store import RunStore
from tests.conftest import make_lottery


def states_at_round_start(monkeypatch: pytest.MonkeyPatch) -> dict[int, tuple[dict, dict]]:
    """Round k -> (start state, mask) as each begun round hands them to the trainer."""
    seen: dict[int, tuple[dict, dict]] = {}
    begin = Lottery.begin_round

    def spy(self: Lottery, k: int):
        start = begin(self, k)
        seen[k] = ({n: t.clone() for n, t in start.model.state_dict().items()},
                   {n: m.clone() for n, m in start.mask.items()})
        return start

    monkeypatch.setattr(Lottery, "begin_round", spy)
    return seen


@pytest.mark.parametrize("rewind_iter", [0, 15])
def test_weight_rewind_restores_saved_weights_exactly(tmp_path: Path, monkeypatch,
                                                      rewind_iter: int) -> None:
    lottery = make_lottery(tmp_path, rewind_iter=rewind_iter)
    seen = states_at_round_start(monkeypatch)
    lottery.run()
    rewind = lottery.store.load_tensors(lottery.store.rewind_path)
    for k in (1, 2, 3):
        state, mask = seen[k]
        for name, tensor in rewind.items():
            expected = tensor * mask[name] if name in mask else tensor
            assert torch.equal(state[name], expected), (k, name)


def test_rewind_point_is_the_state_after_rewind_iter(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path / "a", rewind_iter=15, rounds=0)
    lottery.run()
    # An independent 15-iteration run from the same init gives the same weights.
    short = make_lottery(tmp_path / "b", rewind_iter=15, iterations=15, rounds=0)
    short.run()
    saved = lottery.store.load_tensors(lottery.store.rewind_path)
    final15 = short.store.load_tensors(short.store.final_path(0))
    assert all(torch.equal(saved[n], final15[n]) for n in saved)
    init = lottery.store.load_tensors(lottery.store.init_path)
    assert not torch.equal(saved["fc1.weight"], init["fc1.weight"])


def test_rewind_to_zero_is_the_original_init(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path)
    lottery.run()
    init = lottery.store.load_tensors(lottery.store.init_path)
    rewind = lottery.store.load_tensors(lottery.store.rewind_path)
    assert all(torch.equal(init[n], rewind[n]) for n in init)


def test_densities_masks_and_records(tmp_path: Path) -> None:
    lottery = make_lottery(tmp_path, rates=PruneRates(0.3, output=0.15))
    records = lottery.run()
    assert [r["round"] for r in records] == [0, 1, 2, 3]
    store = lottery.store
    prev = None
    for r in records:
        mask = store.load_tensors(store.mask_path(r["round"]))
        hidden = mask["fc1.weight"].numel() + mask["fc2.weight"].numel()
        kept = int(mask["fc1.weight"].sum()) + int(mask["fc2.weight"].sum())
        assert kept == kept_count(hidden, (1 - 0.3) ** r["round"])
        out = mask["out.weight"]
        assert int(out.sum()) == kept_count(out.numel(), (1 - 0.15) ** r["round"])
        assert r["density"] == pytest.approx(r["remaining"] / r["total"])
        assert r["sparsity"] == pytest.approx(1 - r["density"])
        final = store.load_tensors(store.final_path(r["round"]))
        for n, m in mask.items():
            assert bool((final[n][~m] == 0).all()), "pruned weights must be zero after training"
            if prev is not None:
                assert not bool((m & ~prev[n]).any()), "masks only shrink"
        prev = mask
        for key in ("test_acc", "best_test_acc", "best_iter", "train_loss", "wall_s",
                    "layer_density", "early_stop_iter"):
            assert key in r


def test_same_seed_same_masks_and_metrics(tmp_path: Path) -> None:
    a, b = make_lottery(tmp_path / "a"), make_lottery(tmp_path / "b")
    ra, rb = a.run(), b.run()
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in ra]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in rb]
    for k in range(4):
        ma, mb = a.store.load_tensors(a.store.mask_path(k)), b.store.load_tensors(
            b.store.mask_path(k))
        assert all(torch.equal(ma[n], mb[n]) for n in ma)
    c = make_lottery(tmp_path / "c", seed=1)
    rc = c.run()
    assert rc[0]["test_loss"] != ra[0]["test_loss"]


def test_resume_skips_completed_rounds_and_matches(tmp_path: Path) -> None:
    full = make_lottery(tmp_path / "full").run()
    partial = make_lottery(tmp_path / "part", rounds=1)
    partial.run()
    resumed = make_lottery(tmp_path / "part", rounds=3)
    ran = []
    resumed.run(on_round=lambda r: ran.append(r["round"]))
    assert ran == [2, 3]
    again = make_lottery(tmp_path / "part", rounds=3)
    assert again.pending_rounds() == []
    records = again.store.read_metrics()
    drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    assert drop(records) == drop(full)


def learning_rates(lottery: Lottery) -> dict[int, list[float]]:
    """Round -> the learning rate of each optimizer step, read off the optimizer."""
    seen: dict[int, list[float]] = {}
    make = lottery.make_optimizer

    def spy(params):
        optimizer = make(params)
        rates = seen.setdefault(len(seen), [])
        step = optimizer.step

        def recorded(*args, **kwargs):
            rates.append(optimizer.param_groups[0]["lr"])
            return step(*args, **kwargs)

        optimizer.step = recorded
        return optimizer

    lottery.make_optimizer = spy
    return seen


def test_lr_rewind_keeps_trained_weights_and_restarts_the_schedule(tmp_path: Path,
                                                                   monkeypatch) -> None:
    lottery = make_lottery(tmp_path, retrain="lr_rewind", rewind_iter=10, rounds=1)
    seen = states_at_round_start(monkeypatch)
    lrs = learning_rates(lottery)
    records = lottery.run()
    final0 = lottery.store.load_tensors(lottery.store.final_path(0))
    state, mask = seen[1]
    for n, t in final0.items():  # every tensor is the trained one, pruned; nothing rewound
        assert torch.equal(state[n], t * mask[n] if n in mask else t), n
    assert records[1]["iterations"] == 30  # the schedule is replayed from iteration 10
    curve = lottery.store.curve_path(1).read_text()
    assert '"iter": 10' in curve and '"iter": 0,' not in curve
    # Round 0 ends at the decayed rate (milestone 30); round 1 restarts at the full rate at
    # iteration 10 and decays again at 30: 20 steps at 0.05, then 10 at 0.005.
    assert lrs[0][-1] == pytest.approx(0.005)
    assert lrs[1] == pytest.approx([0.05] * 20 + [0.005] * 10)


def test_finetune_never_resets_weights(tmp_path: Path, monkeypatch) -> None:
    lottery = make_lottery(tmp_path, retrain="finetune", finetune_iters=10, rounds=2)
    seen = states_at_round_start(monkeypatch)
    lrs = learning_rates(lottery)
    records = lottery.run()
    init = lottery.store.load_tensors(lottery.store.init_path)
    for k in (1, 2):
        prev = lottery.store.load_tensors(lottery.store.final_path(k - 1))
        state, mask = seen[k]
        for n, t in prev.items():  # the last round's trained weights, pruned: never reset
            assert torch.equal(state[n], t * mask[n] if n in mask else t), (k, n)
        assert not torch.equal(state["fc1.bias"], init["fc1.bias"])
        assert records[k]["iterations"] == 10
        # At the final learning rate of the schedule (after the milestone at 30).
        assert lrs[k] == pytest.approx([0.005] * 10)


@pytest.mark.parametrize("kw,match", [
    (dict(rewind_iter=50), "later than train.duration"),
    (dict(retrain="rewind"), "prune.retrain"),
    (dict(strategy="smallest"), "prune.strategy"),
    (dict(retrain="finetune", finetune_iters=-1), "finetune_duration is negative"),
])
def test_bad_settings_are_config_errors(tmp_path: Path, kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_lottery(tmp_path, **kw)


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    make_lottery(tmp_path, rounds=0).run()
    store = RunStore(tmp_path)
    data = store.final_path(0).read_bytes()
    store.final_path(0).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"final.pt is corrupt or truncated.*delete it"):
        make_lottery(tmp_path, rounds=1).run()
    assert len(store.read_metrics()) == 1
