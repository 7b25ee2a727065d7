"""A small Vision Transformer and a sequence transformer, attention written out by hand.

``ViT(input_shape, num_classes, patch=..., dim=..., depth=..., heads=...)`` cuts an image
(C, H, W) into p×p patches, or a 1-D signal (C, L) into patches of p steps (MNIST-1D), embeds
each patch linearly, adds a learned position embedding (and a class token with
``pool="cls"``), runs ``depth`` pre-norm blocks ``x = x + attn(ln1(x)); x = x + mlp(ln2(x))``
and classifies the final-normed class token (or the token mean, ``pool="mean"``).
``SequenceTransformer`` is the same network over a sequence of single steps (patch 1: the
MNIST-1D signal as 40 tokens).

What is prunable is stated once, by the rule every lth model keeps (``lth.pruning.mask``:
the ``.weight`` of every ``nn.Linear``): attention's q, k, v and output projections, the
MLP's two layers and the classifier head (the output layer, whose rate is
``prune.output_fraction`` as in every model). The patch embedding, position embedding, class
token, norms and biases are not: the patch embedding is a plain parameter used through
``F.linear``, not an ``nn.Linear``. Attention is written with ``nn.Linear`` projections and
two explicit matrix products, so a mask holds at every use of a weight and the MAC counter
(``lth.models.macs``) sees each projection; no fused attention kernel is used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models.base import Classifier

POOLS = ("cls", "mean")


def init_vit(module: nn.Module) -> None:
    """ViT init (timm's): truncated normal std 0.02 for every linear weight, zero biases,
    unit norms. Deterministic under ``torch.manual_seed``."""
    if isinstance(module, (nn.Linear, PatchEmbed)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class PatchEmbed(nn.Module):
    """Patches [B, T, patch_dim] -> tokens [B, T, dim]; deliberately not an nn.Linear, so the
    embedding is not prunable."""

    def __init__(self, patch_dim: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, patch_dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """[B, T, patch_dim] -> [B, T, dim]."""
        return F.linear(patches, self.weight, self.bias)


class Attention(nn.Module):
    """Multi-head self-attention with separate q, k, v, out projections (each prunable)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.out = (nn.Linear(dim, dim) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, T, D]: softmax(q kᵀ / sqrt(D/h)) v per head, then out."""
        b, t, d = x.shape
        h = self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)  # [B, h, T, D/h]

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        return self.out((att @ v).transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln1 x), then x + fc2(gelu(fc1(ln2 x)))."""

    def __init__(self, dim: int, heads: int, mlp_dim: int) -> None:
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), Attention(dim, heads)
        self.ln2, self.fc1, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, mlp_dim), \
            nn.Linear(mlp_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, D] -> [B, T, D]."""
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """[B, C, H, W] -> [B, (H/p)(W/p), C p p] (rows of patches, left to right), or
    [B, C, L] -> [B, L/p, C p]."""
    if x.dim() == 4:
        b, c = x.shape[:2]
        x = x.unfold(2, patch, patch).unfold(3, patch, patch)  # B, C, H/p, W/p, p, p
        return x.permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * patch * patch)
    b, c = x.shape[:2]
    x = x.unfold(2, patch, patch)  # B, C, L/p, p
    return x.permute(0, 2, 1, 3).reshape(b, -1, c * patch)


class ViT(Classifier):
    """A small Vision Transformer for (C, H, W) images or (C, L) signals.

    Args:
        patch: patch side (images) or length (signals); must divide every spatial size.
        dim: token width; heads: attention heads (must divide dim); depth: blocks;
        mlp_dim: hidden width of each block's MLP; pool: "cls" (class token) or "mean".
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, patch: int = 4,
                 dim: int = 64, depth: int = 4, heads: int = 4, mlp_dim: int = 128,
                 pool: str = "cls") -> None:
        super().__init__(input_shape, num_classes)
        c, *spatial = self.input_shape
        if len(spatial) not in (1, 2):
            raise ConfigError(f"ViT needs an input_shape (C, H, W) or (C, L), got "
                              f"{self.input_shape}")
        if patch < 1 or any(s % patch for s in spatial):
            raise ConfigError(f"model.patch={patch} must divide the input's sizes {spatial}")
        if dim < 1 or heads < 1 or dim % heads:
            raise ConfigError(f"model.heads={heads} must divide model.dim={dim}")
        if pool not in POOLS:
            raise ConfigError(f"model.pool={pool!r} is unknown; choose one of {', '.join(POOLS)}")
        self.patch, self.pool = int(patch), pool
        tokens = math.prod(s // patch for s in spatial) + (pool == "cls")
        self.embed = PatchEmbed(c * patch ** len(spatial), dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.ModuleList(Block(dim, heads, mlp_dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, self.num_classes)
        self.apply(init_vit)
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, *input_shape] -> logits [B, num_classes]."""
        tokens = self.embed(patchify(x, self.patch))
        if self.pool == "cls":
            tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.pos
        for block in self.blocks:
            tokens = block(tokens)
        tokens = self.norm(tokens)
        return self.head(tokens[:, 0] if self.pool == "cls" else tokens.mean(1))


class SequenceTransformer(ViT):
    """A transformer over a (C, L) signal as a sequence of L steps (patch 1), e.g. MNIST-1D
    as 40 tokens of one value each; mean pooling by default."""

    def __init__(self, input_shape: Sequence[int], num_classes: int, patch: int = 1,
                 dim: int = 32, depth: int = 2, heads: int = 4, mlp_dim: int = 64,
                 pool: str = "mean") -> None:
        if len(tuple(input_shape)) != 2:
            raise ConfigError(f"SequenceTransformer needs a (C, L) input_shape, got "
                              f"{tuple(input_shape)}; use model=vit for images")
        super().__init__(input_shape, num_classes, patch, dim, depth, heads, mlp_dim, pool)
