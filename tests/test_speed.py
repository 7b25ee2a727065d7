"""The fast paths keep their promises: masks, fused optimizers and lazy imports."""

from __future__ import annotations

import functools
import subprocess

import pytest
import torch

from lth.pruning import full_mask
from lth.train import LoopOptions, Span, train
from lth.train.masking import Masking
from lth.train.optim import prefer_fused
from tests.conftest import PYTHON, ROOT, TinyMLP, make_blobs

pytestmark = pytest.mark.usefixtures("one_thread")


def half_mask(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {n: torch.rand(m.shape, generator=g) < 0.5 for n, m in full_mask(model).items()}


class PlainSGD(torch.optim.SGD):
    """A subclass: not known to keep zeros, so the loop re-masks its weights after each step."""


FACTORIES = {
    "adam_fused": prefer_fused(functools.partial(torch.optim.Adam, lr=1e-2, weight_decay=1e-3)),
    "sgd_fused": prefer_fused(functools.partial(torch.optim.SGD, lr=0.1, momentum=0.9,
                                                nesterov=True, weight_decay=1e-3)),
    "adamw_fused": prefer_fused(functools.partial(torch.optim.AdamW, lr=1e-2, amsgrad=True)),
    "rmsprop": functools.partial(torch.optim.RMSprop, lr=1e-2, momentum=0.9),
    "sgd_subclass": functools.partial(PlainSGD, lr=0.1, momentum=0.9, weight_decay=1e-2),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_masked_fast_path_keeps_pruned_weights_and_state_at_zero(name: str) -> None:
    torch.manual_seed(0)
    model = TinyMLP()
    mask = half_mask(model)  # the weights are NOT masked beforehand: train() must do it
    optimizer = FACTORIES[name](model.parameters())
    if name.endswith("_fused"):
        assert optimizer.defaults["fused"] is True
    train(model, make_blobs(), optimizer, Span(0, 40, lambda it: 1.0), batch_size=32, seed=0,
          mask=mask, options=LoopOptions(eval_every=20))
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert bool((params[n][~m] == 0).all()), f"{name}: pruned weights of {n} moved"
        for value in optimizer.state[params[n]].values():
            if torch.is_tensor(value) and value.shape == m.shape:
                assert bool((value[~m] == 0).all()), f"{name}: state of pruned {n} is nonzero"


def test_stale_optimizer_state_of_pruned_weights_is_cleared() -> None:
    torch.manual_seed(0)
    model, data = TinyMLP(), make_blobs()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    # dense: every state entry is nonzero now
    train(model, data, optimizer, Span(0, 5, lambda it: 1.0), batch_size=32, seed=0)
    mask = half_mask(model)
    train(model, data, optimizer, Span(5, 30, lambda it: 1.0), batch_size=32, seed=0, mask=mask)
    params = dict(model.named_parameters())
    for n, m in mask.items():
        assert bool((params[n][~m] == 0).all())
        assert bool((optimizer.state[params[n]]["exp_avg_sq"][~m] == 0).all())


def test_dense_mask_costs_no_multiply() -> None:
    model = TinyMLP()
    params = dict(model.named_parameters())
    dense = Masking(params, [full_mask(model)], lambda k, n: {})
    assert (dense.params, dense.floats) == ([], [])
    mask = full_mask(model)
    mask["fc2.weight"] = mask["fc2.weight"].clone()
    mask["fc2.weight"][0, 0] = False
    masked = Masking(params, [mask], lambda k, n: {})
    assert [p is model.fc2.weight for p in masked.params] == [True]


def test_fused_training_matches_unfused_closely() -> None:
    data = make_blobs()

    def run(factory) -> torch.Tensor:
        torch.manual_seed(0)
        model = TinyMLP()
        train(model, data, factory(model.parameters()), Span(0, 30, lambda it: 1.0), batch_size=32,
              seed=0)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    adam = functools.partial(torch.optim.Adam, lr=1e-2)
    plain, fused = run(adam), run(prefer_fused(adam))
    assert torch.allclose(plain, fused, rtol=1e-4, atol=1e-5)


def test_prefer_fused_leaves_other_optimizers_and_explicit_choices_alone() -> None:
    p = [torch.nn.Parameter(torch.zeros(3))]
    assert prefer_fused(functools.partial(torch.optim.RMSprop, lr=1.0))(p).defaults.get(
        "fused") is None
    explicit = functools.partial(torch.optim.Adam, lr=1.0, foreach=True)
    assert prefer_fused(explicit) is explicit


def test_import_lth_does_not_import_wandb_or_matplotlib() -> None:
    code = ("import sys, lth, lth.data, lth.models, lth.pruning, lth.train, lth.lottery, "
            "lth.tracking, lth.analysis, lth.export\n"
            "heavy = [m for m in ('wandb', 'matplotlib', 'torchvision') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
