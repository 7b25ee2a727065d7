"""GraSP against the reference implementations, and ``prune.score_mode``.

The reference (Synaptic-Flow's ``Pruners/pruners.py`` class ``GraSP``, after the official
alecwangcq/GraSP code) masks each prunable tensor in the forward pass (w * m) and takes g and
H g with respect to those tensors only, over the batches of a loader walked twice (g without,
then with a graph); the score is H g * w (divided by |sum|), and the global mask keeps the
entries above the k-th smallest score. Re-implemented below on a network with biases and
BatchNorm (the masks hold the conv/linear weights only, as the reference's do), it must give
lth's scores and mask on the same batches, in both BatchNorm modes, dense and half pruned.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from lth.data.batches import BatchIterator
from lth.pruning import full_mask
from lth.pruning.pruner import Pruner, PrunerSettings
from tests.conftest import TinyMLP
from tests.pinned_masks import PinConv

BATCH, BATCHES, SEED = 16, 2, 5


class _Masked(nn.Module):
    """The reference's masked layer: the forward pass sees weight * mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def reference_grasp(model: nn.Module, mask: dict[str, torch.Tensor], batches: list,
                    temperature: float = 200.0) -> dict[str, torch.Tensor]:
    """GraSP's scores H g * w as the reference computes them (``model`` in place, in the
    mode it is in)."""
    params = {}
    for name, m in mask.items():
        module = model.get_submodule(name.rpartition(".")[0])
        with torch.no_grad():
            module.weight.mul_(m)  # the reference's apply_mask
        parametrize.register_parametrization(module, "weight", _Masked(m.to(torch.float64)))
        params[name] = module.parametrizations.weight.original
    flat = list(params.values())

    def gradient(x: torch.Tensor, y: torch.Tensor, graph: bool) -> torch.Tensor:
        loss = F.cross_entropy(model(x) / temperature, y)
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, flat,
                                                                      create_graph=graph)])

    stopped = sum(gradient(x, y, False) for x, y in batches)
    for x, y in batches:
        (stopped * gradient(x, y, True)).sum().backward()
    # The reference then divides by |sum| + 1e-10: one positive factor, no ranking changes.
    return {n: (p.grad * p.data).detach() for n, p in params.items()}


def reference_mask(scores: dict[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    """The reference's global mask: scores above the k-th smallest, k = (1 - density) * N."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    threshold = torch.kthvalue(flat, int((1.0 - density) * flat.numel())).values
    return {n: s > threshold for n, s in scores.items()}


def setup(half_pruned: bool):
    torch.manual_seed(0)
    make = lambda: PinConv().double()  # noqa: E731 - float64: the two sums agree closely
    net = make()
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():  # BatchNorm with non-trivial scales and shifts
        if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            m.weight.data.uniform_(0.5, 1.5, generator=gen)
            m.bias.data.normal_(0, 0.2, generator=gen)
    state = net.state_dict()
    mask = full_mask(net)  # conv and linear weights; biases and BatchNorm outside it
    if half_pruned:
        mask = {n: torch.rand(m.shape, generator=gen) < 0.5 for n, m in mask.items()}
    x = torch.randn(64, 1, 8, 8, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (64,), generator=gen)
    return make, state, mask, x, y


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("half_pruned", [False, True])
def test_grasp_equals_the_reference_on_a_network_with_biases_and_batchnorm(
        mode: str, half_pruned: bool, one_thread) -> None:
    make, state, mask, x, y = setup(half_pruned)
    pruner = Pruner(make, x, y, BATCH, PrunerSettings(BATCHES, score_mode=mode))
    ours = pruner.scores(state, mask, strategy="grasp", seed=SEED)
    it = BatchIterator(x, y, BATCH, SEED)
    reference = make()
    reference.load_state_dict(state)
    reference.train(mode == "train")
    theirs = reference_grasp(reference, mask, [it.batch(i) for i in range(BATCHES)])
    scale = max(float(t.abs().max()) for t in theirs.values())
    for n in mask:  # ours are float32
        torch.testing.assert_close(ours[n].double(), theirs[n], rtol=1e-5, atol=1e-7 * scale)
    if not half_pruned:  # the reference's thresholding may revive pruned weights
        density = 0.25
        got = pruner(state, mask, strategy="grasp", seed=SEED,
                     densities=dict.fromkeys(mask, density))
        assert all(torch.equal(got[n], m) for n, m in reference_mask(theirs, density).items())


def test_grasp_over_every_parameter_is_not_the_reference(one_thread) -> None:
    """The test can fail: with g and H g over every parameter (biases and BatchNorm too) the
    scores are not the reference's."""
    make, state, mask, x, y = setup(False)
    it = BatchIterator(x, y, BATCH, SEED)
    batches = [it.batch(i) for i in range(BATCHES)]
    model = make()
    model.load_state_dict(state)
    params = list(model.parameters())
    stopped = [sum(g) for g in zip(*(torch.autograd.grad(
        F.cross_entropy(model(bx) / 200.0, by), params) for bx, by in batches))]
    for bx, by in batches:
        grads = torch.autograd.grad(F.cross_entropy(model(bx) / 200.0, by), params,
                                    create_graph=True)
        sum((s * g).sum() for s, g in zip(stopped, grads)).backward()
    every = {n: model.get_parameter(n).grad * model.get_parameter(n).detach() for n in mask}
    reference = make()
    reference.load_state_dict(state)
    theirs = reference_grasp(reference, mask, batches)
    assert not all(torch.allclose(every[n], theirs[n], rtol=1e-3) for n in mask)


def snip_of(make, mode: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    net = make()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, *((1, 8, 8) if isinstance(net, PinConv) else (20,)), generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    pruner = Pruner(make, x, y, BATCH, PrunerSettings(BATCHES, score_mode=mode))
    return pruner.scores(net.state_dict(), full_mask(net), strategy="snip", seed=SEED)


def test_score_mode_changes_snip_on_batchnorm_and_not_on_an_mlp(one_thread) -> None:
    bn = [snip_of(PinConv, mode) for mode in ("train", "eval")]
    assert not all(torch.allclose(bn[0][n], bn[1][n]) for n in bn[0])
    mlp = [snip_of(TinyMLP, mode) for mode in ("train", "eval")]
    assert all(torch.equal(mlp[0][n], mlp[1][n]) for n in mlp[0])


def test_dropout_is_off_in_both_modes(one_thread) -> None:
    class Dropped(TinyMLP):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.5)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(self.drop(x))

    for mode in ("train", "eval"):
        a, b = snip_of(Dropped, mode), snip_of(TinyMLP, mode)
        assert all(torch.equal(a[n], b[n]) for n in b), mode  # dropout never fired
