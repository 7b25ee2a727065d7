"""Pruning at initialisation and mask criteria: each score against its formula, computed by
hand; SynFlow's data independence, layer-collapse avoidance and exact, nested schedule; the
inversion control's complement; determinism."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.pruning import density, full_mask, kept_count, prune_mask
from lth.pruning.init_scores import (
    GRASP_TEMPERATURE,
    grasp_scores,
    snip_scores,
    synflow,
    synflow_scores,
)
from lth.pruning.prune import invert_mask, mask_from_scores
from lth.pruning.pruner import Pruner, PrunerSettings, iterative_mask
from lth.pruning.scores import ScoreInputs, compute_scores
from tests.conftest import TinyMLP, make_blobs


class TwoLinear(nn.Module):
    """f(x) = W2 W1 x: closed forms for every score."""

    def __init__(self, d: int = 5, h: int = 4, c: int = 3) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, h, bias=False)
        self.fc2 = nn.Linear(h, c, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(x))


def two_linear(seed: int = 0) -> TwoLinear:
    torch.manual_seed(seed)
    return TwoLinear().double()


def test_synflow_equals_its_closed_form() -> None:
    # R = 1' |W2| |W1| 1, so dR/dW1[i, j] = sum_k |W2[k, i]| and dR/dW2[k, i] = sum_j |W1[i, j]|.
    model = two_linear()
    w1, w2 = model.fc1.weight.detach().clone(), model.fc2.weight.detach().clone()
    scores = synflow_scores(model, ["fc1.weight", "fc2.weight"], (5,))
    a1, a2 = w1.abs().tolist(), w2.abs().tolist()
    for i in range(4):
        for j in range(5):
            col = sum(a2[k][i] for k in range(3))
            assert scores["fc1.weight"][i, j].item() == pytest.approx(a1[i][j] * col, rel=1e-6)
        for k in range(3):
            row = sum(a1[i])
            assert scores["fc2.weight"][k, i].item() == pytest.approx(a2[k][i] * row, rel=1e-6)


def test_snip_equals_gradient_times_weight_on_a_fixed_batch() -> None:
    model = two_linear()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 5, generator=gen, dtype=torch.float64), torch.randint(0, 3, (8,))
    w1, w2 = model.fc1.weight.detach().clone(), model.fc2.weight.detach().clone()
    scores = snip_scores(model, ["fc1.weight", "fc2.weight"], [(x, y)])
    # By hand: dL/dz = (softmax(z) - onehot) / B; h = x W1'; z = h W2'.
    h = x @ w1.T
    z = h @ w2.T
    delta = (torch.exp(z) / torch.exp(z).sum(1, keepdim=True) - F.one_hot(y, 3)) / 8
    g2, g1 = delta.T @ h, (delta @ w2).T @ x
    torch.testing.assert_close(scores["fc2.weight"], (g2 * w2).abs().float())
    torch.testing.assert_close(scores["fc1.weight"], (g1 * w1).abs().float())


def test_grasp_hessian_gradient_product_matches_a_finite_difference() -> None:
    # H g over the scored tensors only: g of fc1.weight and out.weight, the step along it,
    # the change of their gradients (fc1.bias, fc2 do not enter g).
    model = TinyMLP(dim=6, hidden=5, classes=3).double()
    torch.manual_seed(2)
    x, y = torch.randn(16, 6, dtype=torch.float64), torch.randint(0, 3, (16,))
    names = ["fc1.weight", "out.weight"]
    params = [model.get_parameter(n) for n in names]

    def grad() -> list[torch.Tensor]:
        loss = F.cross_entropy(model(x) / GRASP_TEMPERATURE, y)
        return [t.detach() for t in torch.autograd.grad(loss, params)]

    g, eps = grad(), 1e-3
    with torch.no_grad():
        for p, d in zip(params, g):
            p.add_(eps * d)
    plus = grad()
    with torch.no_grad():
        for p, d in zip(params, g):
            p.sub_(2 * eps * d)
    minus = grad()
    with torch.no_grad():
        for p, d in zip(params, g):
            p.add_(eps * d)
    weights = {n: p.detach().clone() for n, p in zip(names, params)}
    scores = grasp_scores(model, names, [(x, y)])
    for i, n in enumerate(names):
        hg = (plus[i] - minus[i]) / (2 * eps)
        torch.testing.assert_close(scores[n], (weights[n] * hg).float(), rtol=1e-4, atol=1e-12)


def test_zhou_criteria_are_their_formulas() -> None:
    wi = {"w": torch.tensor([1.0, -2.0, 0.5, 3.0])}
    wf = {"w": torch.tensor([-1.5, 1.0, 2.0, 3.0])}
    expect = {
        "magnitude": [1.5, 1.0, 2.0, 3.0], "small_final": [-1.5, -1.0, -2.0, -3.0],
        "large_init": [1.0, 2.0, 0.5, 3.0], "large_init_large_final": [1.0, 1.0, 0.5, 3.0],
        "magnitude_increase": [0.5, -1.0, 1.5, 0.0], "movement": [2.5, 3.0, 1.5, 0.0],
    }
    for kind, values in expect.items():
        assert compute_scores(kind, wf, 0, wi)["w"].tolist() == values, kind
    with pytest.raises(ValueError, match="initial weights"):
        compute_scores("movement", wf, 0)


class DeepNarrow(nn.Module):
    """A wide first layer (small init weights) and a stack of narrow ones. No biases: SynFlow's
    conservation argument is for bias-free networks (with biases, abs'ed biases carry flow
    past an emptied layer and this network's first layer collapses under SynFlow too)."""

    def __init__(self, input_shape: tuple[int, ...] = (400,), num_classes: int = 4,
                 bias: bool = False) -> None:
        super().__init__()
        widths = [input_shape[0], 16, 16, 16, 16, 16, 16]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=bias)
                                    for a, b in zip(widths, widths[1:]))
        self.out = nn.Linear(16, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.out(x)


def pruner_for(make, data, **kw) -> Pruner:
    return Pruner(make, data.x_train, data.y_train, 32, PrunerSettings(**kw))


def synflow_mask(model: nn.Module, mask, dens, scope: str, iterations: int, on_step=None,
                 pool_bias: bool = False):
    """Iterative SynFlow on ``model`` (in place: a copy), as the pruner runs it."""
    inputs = ScoreInputs({}, mask, 0, model=model, input_shape=(20,))
    return iterative_mask(synflow, inputs, dens, scope, iterations, pool_bias, on_step)


def test_synflow_avoids_layer_collapse_where_magnitude_at_init_does_not(one_thread) -> None:
    torch.manual_seed(0)
    model = DeepNarrow()
    state = model.state_dict()
    mask = full_mask(model)
    dens = {n: 0.003 for n in mask}  # 23 of 7744 weights
    data = make_blobs(n_train=64, dim=400)
    magnitude = prune_mask(state, mask, strategy="magnitude_init", seed=0, densities=dens,
                           initial=state)
    synflow = pruner_for(DeepNarrow, data)(state, mask, strategy="synflow", seed=0,
                                           densities=dens)
    assert min(int(m.sum()) for m in magnitude.values()) == 0, "magnitude kept every layer"
    assert min(int(m.sum()) for m in synflow.values()) > 0, "synflow emptied a layer"
    assert sum(int(m.sum()) for m in synflow.values()) == kept_count(7744, 0.003)


def test_iterative_synflow_is_exact_and_nested(one_thread) -> None:
    torch.manual_seed(0)
    model = TinyMLP()
    mask = full_mask(model)
    dens = {n: 0.05 for n in mask}
    seen: list = []
    copy = TinyMLP()
    copy.load_state_dict(model.state_dict())
    final = synflow_mask(copy, mask, dens, "global", 10, seen.append)
    size = sum(m.numel() for m in mask.values())
    assert len(seen) == 10
    assert sum(int(m.sum()) for m in final.values()) == kept_count(size, 0.05)
    for before, after in zip([mask, *seen], seen):
        kept = [int(m.sum()) for m in after.values()]
        assert sum(kept) < sum(int(m.sum()) for m in before.values())
        assert all(bool((after[n] <= before[n]).all()) for n in mask), "not nested"


def test_layerwise_synflow_with_bias_pooling_prunes_each_layers_parameters_together(
        one_thread) -> None:
    torch.manual_seed(0)
    model = TinyMLP()
    mask = full_mask(model, include_bias=True)
    dens = {n: 0.2 for n in mask}
    copy = TinyMLP()
    copy.load_state_dict(model.state_dict())
    final = synflow_mask(copy, mask, dens, "layerwise", 5, pool_bias=True)
    layers = {n.rsplit(".", 1)[0] for n in mask}
    for layer in layers:
        names = [n for n in mask if n.startswith(layer + ".")]
        assert len(names) == 2  # weight and bias ranked as one vector
        size = sum(mask[n].numel() for n in names)
        assert sum(int(final[n].sum()) for n in names) == kept_count(size, 0.2), layer
    # pooled, a bias competes with its weights instead of keeping its own 20%
    assert any(int(final[n].sum()) != kept_count(mask[n].numel(), 0.2)
               for n in mask if n.endswith(".bias"))


def test_synflow_is_data_independent(one_thread) -> None:
    torch.manual_seed(0)
    state = TinyMLP().state_dict()
    mask = full_mask(TinyMLP())
    dens = {n: 0.1 for n in mask}
    masks = [Pruner(TinyMLP, d.x_train, d.y_train, b)(state, mask, strategy="synflow",
                                                       seed=s, densities=dens)
             for d, b, s in ((make_blobs(seed=0), 16, 0), (make_blobs(seed=5), 64, 9))]
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in mask)


@pytest.mark.parametrize("strategy", ["snip", "grasp", "synflow", "magnitude_init",
                                      "snip_layerwise", "random"])
def test_each_strategy_is_exact_and_deterministic_for_a_seed(strategy, one_thread) -> None:
    torch.manual_seed(0)
    state = TinyMLP().state_dict()
    mask = full_mask(TinyMLP())
    dens = {n: 0.2 for n in mask}
    pruner = pruner_for(TinyMLP, make_blobs(), score_iterations=5)
    a, b = (pruner(state, mask, strategy=strategy, seed=3, densities=dens, initial=state)
            for _ in range(2))
    assert all(torch.equal(a[n], b[n]) for n in mask)
    if strategy.endswith("_layerwise") or strategy == "random":
        assert all(int(a[n].sum()) == kept_count(a[n].numel(), 0.2) for n in mask)
    else:
        assert sum(int(m.sum()) for m in a.values()) == kept_count(
            sum(m.numel() for m in mask.values()), 0.2)


def test_invert_keeps_the_complement_ranking_at_the_same_layer_counts() -> None:
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(10, 10, generator=gen), "b": torch.rand(50, generator=gen)}
    mask = {n: torch.ones_like(s, dtype=torch.bool) for n, s in scores.items()}
    ticket = mask_from_scores(scores, mask, "global", {"a": 0.3, "b": 0.3})
    inverted = invert_mask(scores, mask, ticket)
    for n, s in scores.items():
        k = int(ticket[n].sum())
        assert int(inverted[n].sum()) == k
        lowest = torch.zeros(s.numel(), dtype=torch.bool)
        lowest[s.flatten().argsort()[:k]] = True
        assert torch.equal(inverted[n].flatten(), lowest)
        assert not (inverted[n] & ticket[n]).any()


def test_pruner_rejects_bad_settings_and_missing_training_data() -> None:
    data = make_blobs()
    with pytest.raises(ConfigError, match="score_batches=0 must be at least 1"):
        pruner_for(TinyMLP, data, score_batches=0)
    with pytest.raises(ConfigError, match="score_iterations=0 must be at least 1"):
        pruner_for(TinyMLP, data, score_iterations=0)
    with pytest.raises(ConfigError, match="score_mode='test' is unknown; choose one of train"):
        pruner_for(TinyMLP, data, score_mode="test")
    empty = Pruner(TinyMLP, data.x_train[:0], data.y_train[:0], 32)
    with pytest.raises(ConfigError, match="has 0 training samples: use a data-free"):
        empty.check("grasp")
    empty.check("synflow")
    assert density(full_mask(TinyMLP())) == 1.0


def test_constant_supermask_sets_kept_weights_to_sign_times_layer_std() -> None:
    from lth.measure.supermask import constant_magnitude, supermask_test_acc

    torch.manual_seed(0)
    model = TinyMLP()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = {n: torch.rand(before[n].shape) < 0.3 for n in ("fc1.weight", "out.weight")}
    constant_magnitude(model, mask)
    for n in mask:
        expect = torch.sign(before[n]) * before[n].std()
        torch.testing.assert_close(model.get_parameter(n).detach(), expect)
    torch.testing.assert_close(model.fc1.bias.detach(), before["fc1.bias"])  # not in the mask
    acc = supermask_test_acc(model, mask, make_blobs())
    assert 0.0 <= acc <= 1.0
    assert int((model.fc1.weight != 0).sum()) == int(mask["fc1.weight"].sum())
