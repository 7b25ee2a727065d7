"""MACs per sample, against hand counts: dense, sparse (unpruned weights only), every use of
every weight (functional, tied, chunked, attention)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lth.models import MLP1D, LeNet300100, ResNetCIFAR
from lth.models.macs import count_macs, weight_uses
from lth.pruning import full_mask, prune_mask


def test_lenet_300_100_macs_are_its_weight_count() -> None:
    model = LeNet300100((1, 28, 28), 10)
    macs = count_macs(model, torch.zeros(1, 1, 28, 28))
    assert macs.dense == 784 * 300 + 300 * 100 + 100 * 10 == 266_200
    assert macs.sparse == macs.dense  # no mask: every weight counts


def conv(c_in: int, c_out: int, k: int, side: int) -> int:
    """MACs of a k x k conv producing c_out maps of side x side."""
    return c_out * c_in * k * k * side * side


def test_resnet20_macs_equal_the_hand_count() -> None:
    model = ResNetCIFAR((3, 32, 32), 10, depth=20)
    stem = conv(3, 16, 3, 32)
    stage1 = 6 * conv(16, 16, 3, 32)
    stage2 = conv(16, 32, 3, 16) + conv(16, 32, 1, 16) + 5 * conv(32, 32, 3, 16)
    stage3 = conv(32, 64, 3, 8) + conv(32, 64, 1, 8) + 5 * conv(64, 64, 3, 8)
    expected = stem + stage1 + stage2 + stage3 + 64 * 10
    assert expected == 40_813_184
    assert count_macs(model, torch.zeros(2, 3, 32, 32)).dense == expected  # per sample


def test_sparse_macs_count_only_unpruned_weights() -> None:
    torch.manual_seed(0)
    model = ResNetCIFAR((3, 32, 32), 10, depth=20)
    mask = prune_mask(model.state_dict(), full_mask(model), strategy="random_global", seed=0,
                      densities=dict.fromkeys(full_mask(model), 0.3))
    side = {"conv.weight": 32, "fc.weight": 1}
    for name in mask:
        if name.startswith("blocks."):
            block = int(name.split(".")[1])
            side[name] = 32 if block < 3 else 16 if block < 6 else 8
    expected = sum(int(m.sum()) * side[n] ** 2 for n, m in mask.items())
    macs = count_macs(model, torch.zeros(1, 3, 32, 32), mask)
    assert macs.sparse == expected
    assert 0.25 * macs.dense < macs.sparse < 0.35 * macs.dense


def test_a_masked_mlp_costs_its_remaining_weights() -> None:
    model = MLP1D((40,), 10, hidden=[100, 100])
    mask = prune_mask(model.state_dict(), full_mask(model), strategy="magnitude_global", seed=0,
                      densities=dict.fromkeys(full_mask(model), 0.2))
    macs = count_macs(model, torch.zeros(1, 40), mask)
    assert macs.dense == 40 * 100 + 100 * 100 + 100 * 10
    assert macs.sparse == sum(int(m.sum()) for m in mask.values())


# -- weights used functionally: every use of every weight counts ----------------------------
def vit_macs(side: int, patch: int, layers: int, hidden: int, mlp: int, classes: int) -> int:
    """Analytic weight MACs of torchvision's VisionTransformer per sample: the patch conv,
    per layer the packed q/k/v projection, out_proj and the MLP on every token, the head on
    the class token (attention's QKᵀ and AV multiply activations: no weight, not counted)."""
    patches = (side // patch) ** 2
    tokens = patches + 1
    per_layer = tokens * (3 * hidden * hidden + hidden * hidden + 2 * hidden * mlp)
    return hidden * 3 * patch * patch * patches + layers * per_layer + hidden * classes


def test_vit_b_16_counts_its_attention_projections() -> None:
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    model = vit_b_16(weights=None)  # attention weights go to F.multi_head_attention_forward
    macs = count_macs(model, torch.zeros(1, 3, 224, 224))
    assert macs.dense == vit_macs(224, 16, 12, 768, 3072, 1000) == 16_848_500_736
    uses = weight_uses(model, torch.zeros(1, 3, 224, 224))
    attention = "encoder.layers.encoder_layer_0.self_attention"
    assert uses[f"{attention}.in_proj_weight"] == uses[f"{attention}.out_proj.weight"] == 197
    assert uses["conv_proj.weight"] == 196 and uses["heads.head.weight"] == 1


def test_a_small_vit_counts_only_the_unpruned_uses() -> None:
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4,
                              hidden_dim=64, mlp_dim=128, num_classes=10)
    x = torch.zeros(2, 3, 32, 32)
    mask = prune_mask(model.state_dict(), full_mask(model), strategy="random_global", seed=0,
                      densities=dict.fromkeys(full_mask(model), 0.3))
    in_proj = "encoder.layers.encoder_layer_1.self_attention.in_proj_weight"
    mask[in_proj] = torch.rand(192, 64) < 0.5  # not a Linear's weight, but maskable all the same
    macs = count_macs(model, x, mask)
    assert macs.dense == vit_macs(32, 8, 2, 64, 128, 10) == 1_311_360
    uses = weight_uses(model, x)
    params = dict(model.named_parameters())
    expected = sum((int(mask[n].sum()) if n in mask else params[n].numel()) * k
                   for n, k in uses.items())
    assert macs.sparse == expected and macs.sparse < 0.6 * macs.dense


class Functional(nn.Module):
    """Weights used outside their modules' forward, as Swin's attention does: F.linear on a
    Linear's weight, a tied weight used twice, a packed weight used by chunks."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)
        self.proj = nn.Linear(8, 8)
        self.packed = nn.Parameter(torch.randn(16, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 5 tokens, 8]
        q, k, v = F.linear(x, self.qkv.weight, self.qkv.bias).chunk(3, dim=-1)
        x = F.linear(q + k + v, self.proj.weight)
        x = F.linear(x, self.proj.weight)  # the same weight again: its uses add up
        a, b = self.packed.chunk(2)  # half of the packed weight on 5 tokens, half on 1
        return (x @ a.t()).sum(1) + x[:, 0] @ b.t()


def test_functional_tied_and_chunked_weights_each_count() -> None:
    torch.manual_seed(0)
    model = Functional()
    x = torch.zeros(3, 5, 8)
    mask = {"proj.weight": torch.rand(8, 8) < 0.5, "packed": torch.zeros(16, 8, dtype=torch.bool)}
    mask["packed"][:8] = True  # the chunk used on 5 tokens kept, the other pruned
    macs = count_macs(model, x, mask)
    assert macs.dense == 5 * 24 * 8 + 2 * 5 * 8 * 8 + 5 * 8 * 8 + 1 * 8 * 8
    assert macs.sparse == 5 * 24 * 8 + 2 * 5 * int(mask["proj.weight"].sum()) + 5 * 8 * 8
    assert weight_uses(model, x)["proj.weight"] == 10


def test_a_transformer_encoder_layer_is_counted_off_its_fused_fast_path() -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2,
                                  enable_nested_tensor=False)
    macs = count_macs(layer, torch.zeros(1, 7, 32))  # eval + no_grad: the fused path's case
    assert macs.dense == 2 * 7 * (4 * 32 * 32 + 2 * 32 * 64)


def test_transposed_and_grouped_convolutions() -> None:
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=2),
                          nn.ConvTranspose2d(8, 6, 3, stride=2))
    macs = count_macs(model, torch.zeros(1, 4, 5, 5))
    # grouped: 25 output positions x (8 x 2 x 9); transposed: 25 input positions x (8 x 6 x 9)
    assert macs.dense == 25 * 8 * 2 * 9 + 25 * 8 * 6 * 9
