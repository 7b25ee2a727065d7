"""The training loop: masks held, schedules exact, evaluation and errors."""

from __future__ import annotations

import math

import pytest
import torch

from lth.data import Dataset
from lth.errors import ConfigError, TrainingError
from lth.pruning import full_mask
from lth.train import LoopOptions, Span, parse_duration, step_schedule, train
from tests.conftest import TinyMLP, make_blobs


def half_mask(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {n: torch.rand(m.shape, generator=g) < 0.5 for n, m in full_mask(model).items()}


OPTIMIZERS = {
    "sgd_momentum_wd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-3),
    "sgd_nesterov": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True,
                                              weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2, weight_decay=1e-3),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_pruned_weights_stay_exactly_zero(opt: str) -> None:
    torch.manual_seed(0)
    data = make_blobs()
    model = TinyMLP()
    mask = half_mask(model)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in mask:
                p.mul_(mask[n])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = OPTIMIZERS[opt](model.parameters())
    train(model, data, optimizer, Span(0, 60, lambda it: 1.0), batch_size=32, seed=0, mask=mask,
          options=LoopOptions(eval_every=20))
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert bool((params[n][~m] == 0).all()), f"{opt}: pruned weights of {n} moved"
        assert not torch.equal(params[n][m], before[n][m]), "kept weights should train"
        # Optimizer state never builds up for pruned weights either.
        for value in optimizer.state[params[n]].values():
            if torch.is_tensor(value) and value.shape == m.shape:
                assert bool((value[~m] == 0).all()), f"{opt}: state of pruned {n} is nonzero"


def test_training_learns_and_reports(blobs) -> None:
    torch.manual_seed(0)
    model = TinyMLP()
    result = train(model, blobs, torch.optim.Adam(model.parameters(), 1e-2),
                   Span(0, 100, lambda it: 1.0), batch_size=32, seed=0,
                   options=LoopOptions(eval_every=25))
    assert [int(p["iter"]) for p in result.evals] == [0, 25, 50, 75, 100]
    assert result.test_acc > 0.8
    assert result.best_test_acc == max(p["test/acc"] for p in result.evals)
    assert result.best_iter in {0, 25, 50, 75, 100}
    assert result.early_stop_iter == min(result.evals, key=lambda p: p["test/loss"])["iter"]


def test_early_stop_uses_validation_loss_when_held_out() -> None:
    """The early-stop iteration is the validation loss's minimum, not the test loss's: the
    validation labels here are shifted by one class, so the better the network gets on the
    test set the worse its validation loss, and the two minima are far apart."""
    d = make_blobs(val=64)
    data = Dataset(d.name, d.x_train, d.y_train, d.x_test, d.y_test, d.num_classes,
                   x_val=d.x_test[:64], y_val=(d.y_test[:64] + 1) % d.num_classes)
    torch.manual_seed(0)
    model = TinyMLP()
    result = train(model, data, torch.optim.Adam(model.parameters(), 1e-2),
                   Span(0, 60, lambda it: 1.0), batch_size=32, seed=0,
                   options=LoopOptions(eval_every=20))
    by_val = min(result.evals, key=lambda p: p["val/loss"])
    by_test = min(result.evals, key=lambda p: p["test/loss"])
    assert by_val["iter"] != by_test["iter"], "the data must make the two choices differ"
    assert result.val_acc is not None
    assert result.early_stop_iter == by_val["iter"]
    assert result.early_stop_test_acc == by_val["test/acc"]


def test_same_seed_same_result(blobs) -> None:
    def run() -> tuple[dict, list]:
        torch.manual_seed(1)
        model = TinyMLP()
        res = train(model, blobs, torch.optim.SGD(model.parameters(), 0.1, momentum=0.9),
                    Span(0, 50, lambda it: 1.0), batch_size=16, seed=5,
                    options=LoopOptions(eval_every=10))
        return model.state_dict(), res.evals

    (s1, e1), (s2, e2) = run(), run()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert e1 == e2


def test_hooks_run_at_their_iteration(blobs) -> None:
    seen = []
    model = TinyMLP()
    train(model, blobs, torch.optim.SGD(model.parameters(), 0.1), Span(0, 10, lambda it: 1.0),
          batch_size=16, seed=0, hooks={0: lambda m: seen.append(0), 7: lambda m: seen.append(7),
                 10: lambda m: seen.append(10)})
    assert seen == [0, 7, 10]


def test_learning_rate_follows_schedule(blobs) -> None:
    model = TinyMLP()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    lrs = []
    factor = step_schedule([5, 8], gamma=0.1, warmup=2)
    train(model, blobs, opt, Span(3, 10, factor), batch_size=16, seed=0,
          hooks={i: (lambda m: lrs.append(opt.param_groups[0]["lr"]))
                                   for i in range(4, 11)})
    assert lrs == pytest.approx([0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005])
    assert step_schedule([], warmup=4)(0) == pytest.approx(0.25)


def test_nan_loss_stops_with_clear_error(blobs) -> None:
    model = TinyMLP()
    opt = torch.optim.SGD(model.parameters(), lr=1e6)
    with pytest.raises(TrainingError, match="lower optimizer.lr"):
        train(model, blobs, opt, Span(0, 200, lambda it: 1.0), batch_size=16, seed=0,
              options=LoopOptions(eval_every=10))


@pytest.mark.parametrize("value,expected", [("500it", 500), ("3ep", 30), (" 0it", 0),
                                            (7, None)])
def test_parse_duration(value, expected) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="train.duration"):
            parse_duration(value, 10, "train.duration")
    else:
        assert parse_duration(value, 10, "train.duration") == expected


@pytest.mark.parametrize("bad", ["-5it", "5", "ep", "1.5ep", "10 iterations"])
def test_malformed_durations_name_the_key(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"prune.rewind=.*'<N>it'"):
        parse_duration(bad, 10, "prune.rewind")
    assert math.isfinite(1.0)
