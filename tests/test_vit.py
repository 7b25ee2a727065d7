"""The ViT and the sequence transformer: a hand-written reference forward, what is prunable,
masks that hold through training and export, MACs of every projection."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lth.data import Dataset
from lth.errors import ConfigError
from lth.models import SequenceTransformer, ViT
from lth.models.macs import count_macs
from lth.pruning import prunable_names
from tests.conftest import make_blobs, make_lottery


def reference_forward(state: dict[str, torch.Tensor], x: torch.Tensor, *, patch: int,
                      heads: int, depth: int, pool: str) -> torch.Tensor:
    """The ViT written out from its state dict with einsum: no module of lth.models.vit."""
    b = x.shape[0]
    if x.dim() == 4:  # [B, C, H, W] -> rows of p×p patches, channel-major inside a patch
        c, h, w = x.shape[1:]
        p = torch.stack([x[:, :, i:i + patch, j:j + patch].reshape(b, -1)
                         for i in range(0, h, patch) for j in range(0, w, patch)], 1)
    else:
        c, length = x.shape[1:]
        p = torch.stack([x[:, :, i:i + patch].reshape(b, -1)
                         for i in range(0, length, patch)], 1)
    t = torch.einsum("btp,dp->btd", p, state["embed.weight"]) + state["embed.bias"]
    if pool == "cls":
        t = torch.cat([state["cls"].expand(b, 1, -1), t], 1)
    t = t + state["pos"]
    d = t.shape[-1]

    def ln(v: torch.Tensor, name: str) -> torch.Tensor:
        mu, var = v.mean(-1, keepdim=True), v.var(-1, unbiased=False, keepdim=True)
        return (v - mu) / torch.sqrt(var + 1e-5) * state[f"{name}.weight"] + state[f"{name}.bias"]

    def lin(v: torch.Tensor, name: str) -> torch.Tensor:
        return torch.einsum("btd,od->bto", v, state[f"{name}.weight"]) + state[f"{name}.bias"]

    for k in range(depth):
        a, y = f"blocks.{k}.attn", ln(t, f"blocks.{k}.ln1")
        q, kk, v = (lin(y, f"{a}.{n}").view(b, -1, heads, d // heads) for n in "qkv")
        logits = torch.einsum("bqhe,bkhe->bhqk", q, kk) / math.sqrt(d // heads)
        att = torch.exp(logits - logits.amax(-1, keepdim=True))
        att = att / att.sum(-1, keepdim=True)
        t = t + lin(torch.einsum("bhqk,bkhe->bqhe", att, v).reshape(b, -1, d), f"{a}.out")
        y = ln(t, f"blocks.{k}.ln2")
        hidden = lin(y, f"blocks.{k}.fc1")
        hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))  # exact GELU
        t = t + lin(hidden, f"blocks.{k}.fc2")
    t = ln(t, "norm")
    z = t[:, 0] if pool == "cls" else t.mean(1)
    return z @ state["head.weight"].T + state["head.bias"]


CASES = [
    (ViT, (1, 8, 8), dict(patch=2, dim=16, depth=2, heads=4, mlp_dim=24, pool="cls")),
    (ViT, (3, 8, 4), dict(patch=4, dim=12, depth=1, heads=3, mlp_dim=8, pool="mean")),
    (SequenceTransformer, (1, 40), dict(dim=16, depth=2, heads=2, mlp_dim=32)),
    (ViT, (2, 40), dict(patch=5, dim=8, depth=1, heads=2, mlp_dim=16, pool="cls")),
]


@pytest.mark.parametrize(("cls", "shape", "kw"), CASES)
def test_forward_equals_hand_written_reference(cls, shape, kw) -> None:
    torch.manual_seed(0)
    model = cls(shape, 7, **kw).eval()
    with torch.no_grad():  # weights large enough for attention to be far from uniform,
        for p in model.parameters():  # norms and biases away from 1 and 0
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    x = torch.randn(5, *shape)
    full = dict(patch=1, pool="mean") | kw
    want = reference_forward(model.state_dict(), x, patch=full["patch"], heads=full["heads"],
                             depth=full["depth"], pool=full["pool"])
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, rtol=1e-5, atol=1e-5)


def test_the_reference_sees_a_wrong_attention() -> None:
    """The comparison can fail: the same weights read with one head instead of two, or
    without attention's 1/sqrt(d_head) scale, give other logits."""
    torch.manual_seed(0)
    model = ViT((1, 8, 8), 5, patch=2, dim=16, depth=1, heads=2, mlp_dim=8).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(3, 1, 8, 8)
    state = dict(model.state_dict())
    with torch.no_grad():
        got = model(x)
    assert torch.allclose(got, reference_forward(state, x, patch=2, heads=2, depth=1,
                                                 pool="cls"), atol=1e-5)
    assert not torch.allclose(got, reference_forward(state, x, patch=2, heads=1, depth=1,
                                                     pool="cls"), atol=1e-3)
    for n in ("q", "k"):  # q and k scaled by d_head^(1/4): the logits lose their scale
        for part in ("weight", "bias"):
            state[f"blocks.0.attn.{n}.{part}"] = state[f"blocks.0.attn.{n}.{part}"] * 8 ** 0.25
    assert not torch.allclose(got, reference_forward(state, x, patch=2, heads=2, depth=1,
                                                     pool="cls"), atol=1e-3)


def test_prunable_weights_are_projections_mlps_and_head() -> None:
    model = ViT((1, 8, 8), 10, patch=2, dim=16, depth=2, heads=4, mlp_dim=8)
    block = [f"attn.{n}.weight" for n in ("q", "k", "v", "out")] + ["fc1.weight", "fc2.weight"]
    assert prunable_names(model) == [f"blocks.{k}.{n}" for k in range(2) for n in block] + \
        ["head.weight"]
    assert {"embed.weight", "pos", "cls", "norm.weight"} <= set(dict(model.named_parameters()))


@pytest.mark.parametrize(("kw", "match"), [
    (dict(patch=3), "must divide the input"), (dict(dim=10, heads=4), "must divide model.dim"),
    (dict(pool="max"), "pool='max' is unknown")])
def test_bad_hyperparameters_are_config_errors(kw, match) -> None:
    with pytest.raises(ConfigError, match=match):
        ViT((1, 8, 8), 10, **kw)
    with pytest.raises(ConfigError, match="needs a \\(C, L\\) input_shape"):
        SequenceTransformer((1, 8, 8), 10)


def test_macs_count_every_projection_and_its_mask() -> None:
    torch.manual_seed(0)
    model = SequenceTransformer((1, 40), 10, dim=16, depth=1, heads=2, mlp_dim=32)
    x = torch.randn(2, 1, 40)
    macs = count_macs(model, x)
    # per token: embed 1*16, q/k/v/out 4*16*16, fc1+fc2 2*16*32; the head once
    assert macs.dense == 40 * (16 + 4 * 256 + 2 * 512) + 16 * 10
    mask = {"blocks.0.attn.q.weight": torch.zeros(16, 16, dtype=torch.bool)}
    assert count_macs(model, x, mask).sparse == macs.dense - 40 * 256


def _signal_data() -> Dataset:
    """Gaussian blobs as (1, 20) signals."""
    d = make_blobs()
    return Dataset("blobs1d", d.x_train.view(-1, 1, 20), d.y_train, d.x_test.view(-1, 1, 20),
                   d.y_test, d.num_classes)


def test_masked_attention_weights_stay_exactly_zero_through_training(tmp_path: Path) -> None:
    lottery = make_lottery(
        tmp_path, data=_signal_data(), rounds=1, iterations=30, strategy="magnitude_row",
        model=lambda: ViT((1, 20), 4, patch=5, dim=16, depth=1, heads=2, mlp_dim=16),
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.1))
    lottery.run()
    final, mask = (lottery.store.load_tensors(p) for p in
                   (lottery.store.final_path(1), lottery.store.mask_path(1)))
    start = lottery.store.load_tensors(lottery.store.rewind_path)
    for n in ("q", "k", "v", "out"):
        name = f"blocks.0.attn.{n}.weight"
        assert 0 < int((~mask[name]).sum()) < mask[name].numel()
        assert torch.all(final[name][~mask[name]] == 0)
        assert not torch.equal(final[name][mask[name]], start[name][mask[name]])  # it trained


def test_masked_vit_exports_to_onnx_with_its_zeros(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from lth.export.onnx import export_onnx, ort_logits, session

    torch.manual_seed(0)
    model = ViT((1, 8, 8), 10, patch=2, dim=16, depth=1, heads=2, mlp_dim=8).eval()
    q = model.blocks[0].attn.q.weight
    keep = torch.rand(q.shape) > 0.5
    with torch.no_grad():
        q.mul_(keep)
    x = torch.randn(4, 1, 8, 8)
    path = export_onnx(model, x[:1], tmp_path / "vit.onnx")
    arrays = [torch.from_numpy(numpy_helper.to_array(t).copy())
              for t in onnx.load(str(path)).graph.initializer]
    stored = [a for a in arrays if a.shape in (q.shape, q.T.shape) and
              (torch.equal(a, q.detach()) or torch.equal(a, q.detach().T))]
    assert stored, "the masked q projection is not an initializer of the graph"
    assert int((stored[0] == 0).sum()) == int((~keep).sum())
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(ort_logits(session(path), x)), model(x),
                                   rtol=1e-4, atol=1e-4)


def test_gelu_matches_the_exact_form() -> None:
    """The reference's GELU is the exact erf form, as F.gelu's default."""
    v = torch.linspace(-3, 3, 11)
    torch.testing.assert_close(F.gelu(v), 0.5 * v * (1 + torch.erf(v / math.sqrt(2))))
