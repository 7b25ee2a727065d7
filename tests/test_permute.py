"""Permutation specs, applying a permutation and weight matching (lth.permute).

A permuted network computes what the original computes; weight matching finds a random
permutation back exactly; and on two unrelated networks it finds what a port of the
reference's core (samuela/git-re-basin, ``src/weight_matching.py``) finds, on the same inputs
with the same visiting order.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from lth.errors import ConfigError
from lth.models import CNN1D, MLP, VGG, Conv2, LeNet5, LeNet300100, ResNetCIFAR
from lth.permute import (
    apply_perm,
    compose,
    inverse,
    is_identity,
    perm_spec,
    random_perm,
    weight_matching,
)

MODELS = {
    "mlp": (lambda: MLP((1, 40), 10, (24, 16)), (1, 40)),
    "mlp_residual": (lambda: MLP((1, 40), 10, (32, 32, 32), residual=True, init="pytorch"),
                     (1, 40)),
    "lenet_300_100": (lambda: LeNet300100((1, 8, 8), 10, (30, 10)), (1, 8, 8)),
    "lenet5": (lambda: LeNet5((1, 16, 16), 10), (1, 16, 16)),
    "conv2": (lambda: Conv2((3, 8, 8), 10), (3, 8, 8)),
    "cnn1d": (lambda: CNN1D((1, 40), 10, (6, 5, 4)), (1, 40)),
    "vgg11_bn": (lambda: VGG((3, 16, 16), 10, depth=11), (3, 16, 16)),
    "resnet20": (lambda: ResNetCIFAR((3, 8, 8), 10, depth=20, width=4), (3, 8, 8)),
}


def built(name: str, seed: int = 0) -> nn.Module:
    """Model ``name`` at a seeded init, BatchNorm's statistics and affines made non-trivial."""
    torch.manual_seed(seed)
    model = MODELS[name][0]().double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
    return model.eval()


@pytest.mark.parametrize("name", list(MODELS))
def test_a_permuted_network_computes_the_same_outputs(name: str, one_thread) -> None:
    model = built(name)
    x = torch.randn(5, *MODELS[name][1], dtype=torch.float64)
    spec = perm_spec(model)
    perm = random_perm(spec, seed=1)
    assert not is_identity(perm)
    before = model(x)
    state = model.state_dict()
    permuted = apply_perm(spec, perm, state)
    assert any(not torch.equal(permuted[n], state[n]) for n in state)
    model.load_state_dict(permuted)
    torch.testing.assert_close(model(x), before, rtol=1e-10, atol=1e-10)


def test_a_wrong_spec_changes_the_outputs(one_thread) -> None:
    """The property above can fail: permuting a residual layer's output apart from its
    input stream changes the function."""
    model = built("mlp_residual")
    x = torch.randn(5, 1, 40, dtype=torch.float64)
    before = model(x)
    with torch.no_grad():
        p = torch.randperm(32)
        model.fc2.weight.copy_(model.fc2.weight[p])  # rows only: the stream is not moved
        model.fc2.bias.copy_(model.fc2.bias[p])
        model.fc3.weight.copy_(model.fc3.weight[:, p])
    assert not torch.allclose(model(x), before)


def test_resnet_streams_share_one_permutation_per_stage() -> None:
    spec = perm_spec(ResNetCIFAR((3, 8, 8), 10, depth=20, width=4))
    streams = sorted(p for p in spec.sizes if p.startswith("P_stage"))
    assert streams == ["P_stage0", "P_stage1", "P_stage2"]
    assert len(spec.sizes) == 3 + 9  # one inner permutation per block
    assert spec.axes["blocks.1.conv2.weight"].perms[0] == "P_stage0"
    assert spec.axes["blocks.3.shortcut.0.weight"].perms[:2] == ("P_stage1", "P_stage0")
    assert spec.axes["fc.weight"].perms == (None, "P_stage2")
    assert spec.axes["blocks.3.bn2.running_mean"].perms == ("P_stage1",)
    assert not spec.axes["blocks.3.bn2.running_mean"].match


@pytest.mark.parametrize("name", ["mlp", "mlp_residual", "vgg11_bn", "resnet20", "lenet5"])
def test_weight_matching_recovers_a_random_permutation_exactly(name: str, one_thread) -> None:
    model = built(name)
    spec = perm_spec(model)
    a = model.state_dict()
    secret = random_perm(spec, seed=3)
    b = apply_perm(spec, secret, a)
    found = weight_matching(spec, a, b)
    assert is_identity(compose(secret, found))  # B aligned by found is A again
    aligned = apply_perm(spec, found, b)
    assert all(torch.equal(aligned[n], a[n]) for n in a)
    assert {p: torch.equal(found[p], inverse(secret)[p]) for p in found} == \
        {p: True for p in found}


def test_a_network_matched_to_itself_is_left_as_it_is(one_thread) -> None:
    model = built("resnet20")
    spec = perm_spec(model)
    assert is_identity(weight_matching(spec, model.state_dict(), model.state_dict()))


# -- the reference's core, ported (samuela/git-re-basin src/weight_matching.py) ------------------

def ref_spec(axes_to_perm: dict) -> dict:
    """``permutation_spec_from_axes_to_perm``: perm -> [(tensor, axis)]."""
    perm_to_axes = defaultdict(list)
    for wk, axis_perms in axes_to_perm.items():
        for axis, perm in enumerate(axis_perms):
            if perm is not None:
                perm_to_axes[perm].append((wk, axis))
    return dict(perm_to_axes)


def ref_get_permuted_param(axes_to_perm, perm, k, params, except_axis=None):
    w = params[k]
    for axis, p in enumerate(axes_to_perm[k]):
        if axis == except_axis:
            continue
        if p is not None:
            w = np.take(w, perm[p], axis=axis)
    return w


def ref_weight_matching(order, axes_to_perm, params_a, params_b, max_iter=100):
    """The reference's loop, its JAX PRNG order replaced by ``order(sweep) -> names``."""
    perm_to_axes = ref_spec(axes_to_perm)
    perm_sizes = {p: params_a[axes[0][0]].shape[axes[0][1]] for p, axes in perm_to_axes.items()}
    perm = {p: np.arange(n) for p, n in perm_sizes.items()}
    for iteration in range(max_iter):
        progress = False
        for p in order(iteration):
            n = perm_sizes[p]
            A = np.zeros((n, n))
            for wk, axis in perm_to_axes[p]:
                w_a = params_a[wk]
                w_b = ref_get_permuted_param(axes_to_perm, perm, wk, params_b, except_axis=axis)
                w_a = np.moveaxis(w_a, axis, 0).reshape((n, -1))
                w_b = np.moveaxis(w_b, axis, 0).reshape((n, -1))
                A += w_a @ w_b.T
            ri, ci = linear_sum_assignment(A, maximize=True)
            assert (ri == np.arange(len(ri))).all()
            oldL = np.vdot(A, np.eye(n)[perm[p]])
            newL = np.vdot(A, np.eye(n)[ci, :])
            progress = progress or newL > oldL + 1e-12
            perm[p] = np.array(ci)
        if not progress:
            break
    return perm


def ref_mlp_axes(layers: int) -> dict:
    """``mlp_permutation_spec`` in PyTorch's names and [out, in] layout."""
    out = {}
    for i in range(1, layers + 1):
        p_out = f"P_fc{i}" if i < layers else None
        p_in = f"P_fc{i - 1}" if i > 1 else None
        out[f"fc{i}.weight"], out[f"fc{i}.bias"] = (p_out, p_in), (p_out,)
    return out


def ref_resnet20_axes() -> dict:
    """``resnet20_permutation_spec`` in lth's names, [out, in, kh, kw] kernels, BatchNorm's
    affines for the reference's LayerNorm scale and bias."""
    conv = lambda n, p_in, p_out: {f"{n}.weight": (p_out, p_in, None, None)}
    norm = lambda n, p: {f"{n}.weight": (p,), f"{n}.bias": (p,)}
    out = {**conv("conv", None, "P_stage0"), **norm("bn", "P_stage0")}
    for i in range(9):
        stage, inner = i // 3, f"P_blocks.{i}.inner"
        p_in, p_out = f"P_stage{max(stage - (i % 3 == 0), 0)}", f"P_stage{stage}"
        out |= {**conv(f"blocks.{i}.conv1", p_in, inner), **norm(f"blocks.{i}.bn1", inner),
                **conv(f"blocks.{i}.conv2", inner, p_out), **norm(f"blocks.{i}.bn2", p_out)}
        if i in (3, 6):
            out |= {**conv(f"blocks.{i}.shortcut.0", p_in, p_out),
                    **norm(f"blocks.{i}.shortcut.1", p_out)}
    return out | {"fc.weight": (None, "P_stage2"), "fc.bias": (None,)}


@pytest.mark.parametrize("name,axes", [("mlp", ref_mlp_axes(3)),
                                       ("resnet20", ref_resnet20_axes())])
def test_weight_matching_finds_what_the_reference_finds(name: str, axes: dict,
                                                        one_thread) -> None:
    """Two unrelated inits (nothing to recover exactly: many local optima), the same order."""
    a, b = built(name, seed=0).state_dict(), built(name, seed=1).state_dict()
    spec = perm_spec(built(name))
    assert set(spec.sizes) == set(ref_spec(axes))
    rng = random.Random(0)
    orders = [rng.sample(sorted(spec.sizes), len(spec.sizes)) for _ in range(100)]
    names = list(spec.sizes)
    ours = weight_matching(spec, a, b, order=lambda s, n: [names.index(p) for p in orders[s]])
    ref = ref_weight_matching(lambda s: orders[s], axes, {k: a[k].numpy() for k in axes},
                              {k: b[k].numpy() for k in axes})
    assert {p: ours[p].tolist() for p in ours} == {p: ref[p].tolist() for p in ref}
    assert not is_identity(ours)


def test_unsupported_model_is_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="has no permutation spec: weight matching supports"):
        perm_spec(nn.Sequential(nn.Linear(3, 4)))


def test_missing_scipy_names_the_install_command(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "scipy.optimize", None)  # import fails as if absent
    model = built("mlp")
    spec = perm_spec(model)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[match\]"'):
        weight_matching(spec, model.state_dict(), model.state_dict())


def sweeps_to_converge(spec, a, b) -> int:
    from lth.permute.matching import seeded_order

    count, order = [0], seeded_order(0)

    def counted(sweep: int, n: int) -> list[int]:
        count[0] = sweep + 1
        return order(sweep, n)

    weight_matching(spec, a, b, order=counted, max_iter=30)
    return count[0]


def test_the_residual_stream_converges_instead_of_cycling(monkeypatch, one_thread) -> None:
    """A residual layer's stream permutation acts on both axes of its weight: the linearised
    step is taken only when it raises the true objective. Without that check (patched out
    here) the descent cycles until max_iter."""
    import lth.permute.matching as matching

    torch.manual_seed(0)
    a = MLP((1, 40), 10, (200, 200), residual=True, init="pytorch").state_dict()
    torch.manual_seed(1)
    model = MLP((1, 40), 10, (200, 200), residual=True, init="pytorch")
    spec = perm_spec(model)
    assert matching.doubled(spec) == {"P_fc1"}
    assert sweeps_to_converge(spec, a, model.state_dict()) < 30
    monkeypatch.setattr(matching, "doubled", lambda spec: set())
    assert sweeps_to_converge(spec, a, model.state_dict()) == 30
