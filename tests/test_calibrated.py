"""Wanda, SparseGPT and N:M masks against ports of the reference code, and their errors.

The references are ported into this file from locuslab/wanda (``lib/layerwrapper.py``
``WrappedGPT.add_batch``, ``lib/prune.py`` ``prune_wanda``'s mask of one layer) and
IST-DASLab/sparsegpt (``sparsegpt.py`` ``SparseGPT.add_batch`` and ``fasterprune``), with the
CUDA, quantisation and logging parts left out; lth's code is compared with them on the same
layer and calibration inputs.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lth.errors import ConfigError
from lth.pruning import full_mask
from lth.pruning.calibrated import (
    calibration_set,
    check_nm,
    hessian,
    parse_nm,
    prune_sequential,
)
from lth.pruning.pruner import Pruner, PrunerSettings


# -- the references, ported -------------------------------------------------------------------
class RefWanda:
    """locuslab/wanda WrappedGPT: the running mean of squared input norms per feature."""

    def __init__(self, layer: nn.Linear) -> None:
        self.layer, self.nsamples = layer, 0
        self.scaler_row = torch.zeros(layer.weight.shape[1])

    def add_batch(self, inp: torch.Tensor) -> None:
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        inp = inp.reshape((-1, inp.shape[-1])).t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        self.scaler_row += torch.norm(inp.float(), p=2, dim=1) ** 2 / self.nsamples

    def mask(self, sparsity: float, prune_n: int = 0, prune_m: int = 0) -> torch.Tensor:
        """prune_wanda's W_mask of this layer (True = pruned)."""
        w_metric = torch.abs(self.layer.weight.data) * torch.sqrt(self.scaler_row.reshape(1, -1))
        w_mask = torch.zeros_like(w_metric) == 1
        if prune_n != 0:
            for ii in range(w_metric.shape[1]):
                if ii % prune_m == 0:
                    tmp = w_metric[:, ii:(ii + prune_m)].float()
                    w_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1],
                                    True)
        else:
            sort_res = torch.sort(w_metric, dim=-1, stable=True)
            indices = sort_res[1][:, :int(w_metric.shape[1] * sparsity)]
            w_mask.scatter_(1, indices, True)
        return w_mask


class RefSparseGPT:
    """IST-DASLab/sparsegpt SparseGPT: add_batch and fasterprune of one nn.Linear."""

    def __init__(self, layer: nn.Linear) -> None:
        self.layer = layer
        self.rows, self.columns = layer.weight.shape
        self.H = torch.zeros((self.columns, self.columns))
        self.nsamples = 0

    def add_batch(self, inp: torch.Tensor) -> None:
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def fasterprune(self, sparsity: float, prunen: int = 0, prunem: int = 0,
                    blocksize: int = 128, percdamp: float = .01) -> torch.Tensor:
        """Prunes and updates the layer in place; returns the mask (True = pruned)."""
        W = self.layer.weight.data.clone().float()  # noqa: N806 - the reference's names
        H = self.H  # noqa: N806
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)  # noqa: N806
        H = torch.cholesky_inverse(H)  # noqa: N806
        H = torch.linalg.cholesky(H, upper=True)  # noqa: N806
        Hinv = H  # noqa: N806
        full = torch.zeros_like(W, dtype=torch.bool)
        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()  # noqa: N806
            Q1 = torch.zeros_like(W1)  # noqa: N806
            Err1 = torch.zeros_like(W1)  # noqa: N806
            Hinv1 = Hinv[i1:i2, i1:i2]  # noqa: N806
            if prunen == 0:
                tmp = W1 ** 2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
                thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
                mask1 = tmp <= thresh
            else:
                mask1 = torch.zeros_like(W1) == 1
            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]
                if prunen != 0 and i % prunem == 0:
                    tmp = W1[:, i:(i + prunem)] ** 2 / (
                        torch.diag(Hinv1)[i:(i + prunem)].reshape((1, -1))) ** 2
                    mask1.scatter_(1, i + torch.topk(tmp, prunen, dim=1, largest=False)[1], True)
                q = w.clone()
                q[mask1[:, i]] = 0
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1
            W[:, i1:i2] = Q1
            full[:, i1:i2] = mask1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        self.layer.weight.data = W.reshape(self.layer.weight.shape)
        return full


# -- the problems -----------------------------------------------------------------------------
def _problem(rows: int = 48, cols: int = 256, samples: int = 24, tokens: int = 6,
             seed: int = 0) -> tuple[nn.Sequential, torch.Tensor]:
    """One linear layer and calibration inputs [samples, tokens, cols] whose features have
    unequal scales (so Wanda's and magnitude's masks differ)."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(cols, rows)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(rows, cols, generator=g))
    scale = torch.rand(cols, generator=g) * 3 + 0.1
    x = torch.randn(samples, tokens, cols, generator=g) * scale
    return nn.Sequential(layer), x


def _reference_inputs(ref: RefWanda | RefSparseGPT, x: torch.Tensor, batch: int = 5) -> None:
    for i in range(0, x.shape[0], batch):  # batches of samples, as the reference's loader
        ref.add_batch(x[i:i + batch])


NM_CASES = [(0.5, None), (None, (2, 4)), (None, (4, 8))]


@pytest.mark.parametrize(("density", "nm"), NM_CASES)
def test_wanda_mask_equals_the_reference(density, nm) -> None:
    model, x = _problem()
    ref = RefWanda(model[0])
    _reference_inputs(ref, x)
    want = ~ref.mask(0.5 if nm is None else 0.0, *(nm[1] - nm[0], nm[1]) if nm else (0, 0))
    ref.scaler_row = torch.ones(256)  # |W| alone: another mask, so the test can fail
    magnitude = ~ref.mask(0.5 if nm is None else 0.0, *(nm[1] - nm[0], nm[1]) if nm else (0, 0))
    mask = full_mask(model)
    got = prune_sequential("wanda", model, mask, {"0.weight": density or 0.5}, x, nm)
    assert torch.equal(got.mask["0.weight"], want)
    assert got.weights is None  # Wanda does not change the kept weights
    assert not torch.equal(got.mask["0.weight"], magnitude)


@pytest.mark.parametrize(("density", "nm"), NM_CASES)
def test_sparsegpt_mask_and_weights_equal_the_reference(density, nm) -> None:
    model, x = _problem()
    ref_layer = nn.Linear(256, 48)
    ref_layer.load_state_dict(model[0].state_dict())
    ref = RefSparseGPT(ref_layer)
    _reference_inputs(ref, x)
    pruned = ref.fasterprune(0.5, *(nm[1] - nm[0], nm[1]) if nm else (0, 0))
    got = prune_sequential("sparsegpt", model, full_mask(model), {"0.weight": density or 0.5},
                           x, nm)
    assert torch.equal(got.mask["0.weight"], ~pruned)
    w, want = got.weights["0.weight"], ref_layer.weight.data
    assert float((w - want).norm() / want.norm()) < 1e-5
    assert torch.equal(model[0].weight.data, w)  # the scratch model holds the result
    start = _problem()[0][0].weight.data  # the kept weights were updated:
    assert float((w - start * ~pruned).abs().max()) > 1e-3  # not just the masked original


def test_hessian_equals_the_reference_accumulation() -> None:
    _, x = _problem(cols=64)
    ref = RefSparseGPT(nn.Linear(64, 8))
    _reference_inputs(ref, x)
    got = hessian(x.reshape(-1, 64), x.shape[0])
    assert float((got - ref.H).norm() / ref.H.norm()) < 1e-5


def _nm_groups(mask: torch.Tensor, m: int) -> torch.Tensor:
    return mask.reshape(mask.shape[0], -1, m).sum(-1)


@pytest.mark.parametrize("strategy", ["magnitude_row", "wanda", "sparsegpt"])
@pytest.mark.parametrize("nm", [(2, 4), (4, 8), (1, 4)])
def test_nm_keeps_exactly_n_of_every_m(strategy, nm) -> None:
    torch.manual_seed(0)
    pruner = _pruner(nm=nm)
    model = pruner.make_model()
    mask = full_mask(model)
    densities = {n: 0.5 for n in mask} | {"fc2.weight": 1.0}  # a dense layer stays dense
    got = pruner(model.state_dict(), mask, strategy=strategy, seed=3, densities=densities)
    assert torch.all(_nm_groups(got["fc1.weight"], nm[1]) == nm[0])
    assert bool(got["fc2.weight"].all())


def test_per_row_density_is_exact_for_wanda_and_magnitude_row() -> None:
    torch.manual_seed(0)
    pruner = _pruner()
    model = pruner.make_model()
    for strategy in ("wanda", "magnitude_row"):
        got = pruner(model.state_dict(), full_mask(model), strategy=strategy, seed=0,
                     densities={"fc1.weight": 0.3, "fc2.weight": 0.5})
        assert torch.all(got["fc1.weight"].sum(1) == round(16 * 0.3))
        assert torch.all(got["fc2.weight"].sum(1) == 12)


def test_sequential_calibration_sees_the_pruned_earlier_layers() -> None:
    """Layer 2 is calibrated on layer 1's outputs after layer 1 is pruned (and updated)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 24), nn.ReLU(), nn.Linear(24, 8))
    x = torch.randn(40, 16) * (torch.rand(16) * 3)
    dense = {n: p.detach().clone() for n, p in model.state_dict().items()}
    got = prune_sequential("sparsegpt", model, full_mask(model),
                           {"0.weight": 0.5, "2.weight": 0.5}, x)
    layer1 = nn.Linear(16, 24)
    layer1.load_state_dict({"weight": got.weights["0.weight"], "bias": dense["0.bias"]})
    layer2 = nn.Linear(24, 8)
    layer2.load_state_dict({"weight": dense["2.weight"], "bias": dense["2.bias"]})
    ref = RefSparseGPT(layer2)
    with torch.no_grad():
        ref.add_batch(torch.relu(layer1(x)))
    pruned = ref.fasterprune(0.5)
    assert torch.equal(got.mask["2.weight"], ~pruned)
    unpruned = RefSparseGPT(nn.Linear(24, 8))  # calibrated on the dense layer 1 instead
    unpruned.layer.load_state_dict({"weight": dense["2.weight"], "bias": dense["2.bias"]})
    with torch.no_grad():
        unpruned.add_batch(torch.relu(x @ dense["0.weight"].T + dense["0.bias"]))
    unpruned.fasterprune(0.5)
    assert not torch.allclose(unpruned.layer.weight, got.weights["2.weight"], atol=1e-4)


# -- calibration ------------------------------------------------------------------------------
class TwoLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(16, 24), nn.Linear(24, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def _pruner(n: int = 64, **settings) -> Pruner:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(n, 16, generator=g), torch.randint(0, 4, (n,), generator=g)
    return Pruner(TwoLayer, x, y, 8, PrunerSettings(calibration_samples=32, **settings))


def test_calibration_samples_are_seeded_training_samples() -> None:
    x = torch.arange(100.0)[:, None]
    a, b, c = (calibration_set(x, 10, s) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len(set(a.flatten().tolist())) == 10  # without replacement, all from x
    pruner = _pruner()
    model = pruner.make_model()
    masks = [pruner(model.state_dict(), full_mask(model), strategy="wanda", seed=s,
                    densities={"fc1.weight": 0.5, "fc2.weight": 0.5}) for s in (0, 0, 5)]
    assert torch.equal(masks[0]["fc1.weight"], masks[1]["fc1.weight"])


# -- bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "match"), [("4:4", "N must be in 1..M-1"),
                                             ("6:4", "N must be in 1..M-1"),
                                             ("2-4", "is not N:M")])
def test_bad_nm_is_a_config_error(text, match) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_nm(text)
    assert parse_nm("2:4") == (2, 4) and parse_nm("") is None


def test_m_must_divide_the_input_dimension() -> None:
    with pytest.raises(ConfigError, match="24 inputs per output, not a multiple of M=16"):
        check_nm((8, 16), {"fc1.weight": torch.Size([24, 16]),
                           "fc2.weight": torch.Size([4, 24])})
    with pytest.raises(ConfigError, match="prune_bias=false"):
        check_nm((2, 4), {"fc1.bias": torch.Size([24])})


def test_calibration_larger_than_the_training_set_is_an_error() -> None:
    pruner = Pruner(TwoLayer, torch.randn(20, 16), torch.zeros(20, dtype=torch.long), 8,
                    PrunerSettings(calibration_samples=21))
    with pytest.raises(ConfigError, match="calibration_samples=21 must be in 1..20"):
        pruner.check("sparsegpt")
    pruner.check("magnitude_row")  # a data-free strategy does not calibrate


def test_sparsegpt_on_a_conv_layer_is_an_error() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 36, 3))
    with pytest.raises(ConfigError, match="nn.Linear weights only, and 0.weight is a Conv2d"):
        prune_sequential("sparsegpt", model, full_mask(model), {"0.weight": 0.5,
                                                                 "2.weight": 0.5},
                         torch.randn(4, 1, 8, 8), strategy="sparsegpt")
