"""Seeded mini-batches over tensors already in (device) memory.

`BatchIterator.batch(it)` is a pure function of (seed, it): the sample order and the
augmentation of epoch e come from a generator seeded by (seed, e) alone. A run resumed at
iteration k therefore sees exactly the batches an uninterrupted run would have seen, which
is what makes resuming bit-identical. There is no DataLoader: with the data in memory,
one index_select per batch is the whole cost (airbench-style).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lth.errors import ConfigError, DataError

PAD = 4  # pixels of zero padding before the random crop (the CIFAR recipe)
_MASK64 = (1 << 64) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for (seed, epoch) by a splitmix64 mix.

    A plain formula rather than Python's hash() so it is the same in every process and
    version; the mix keeps nearby (seed, epoch) pairs from giving related streams.
    """
    z = (seed * 0x9E3779B97F4A7C15 + (epoch + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) >> 1  # torch.Generator.manual_seed wants a non-negative int


def flip_crop(
    x: torch.Tensor,
    flip: torch.Tensor,
    dy: torch.Tensor,
    dx: torch.Tensor,
    pad: int = PAD,
) -> torch.Tensor:
    """Random-crop-after-zero-padding and horizontal flip of a whole batch, as two gathers.

    x [B, C, H, W]; flip bool [B]; dy, dx int64 [B] in [0, 2*pad] are the crop's top-left
    corner in the padded image. Returns [B, C, H, W]: out[b, c, i, j] =
    padded[b, c, dy + i, dx + j], with j mirrored (W-1-j) where flip[b].
    Two gathers (rows, then columns) measured 2x faster on CPU than one 4-index advanced
    indexing and than looping over the 81 offsets.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = dy[:, None] + torch.arange(h, device=x.device)  # [B, H]
    x_rows = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * pad))
    ar_w = torch.arange(w, device=x.device)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # [B, W]
    return x_rows.gather(3, cols[:, None, None, :].expand(b, c, h, w))


@dataclass(frozen=True)
class EpochDraws:
    """One epoch's random draws for all N samples: the order, and with augment the flips and
    crop corners. ``perm`` int64 [N]; ``flip`` bool [N], ``dy``, ``dx`` int64 [N] in
    [0, 2 * PAD] (None without augment). Indexed by sample id, except ``perm``."""

    perm: torch.Tensor
    flip: torch.Tensor | None = None
    dy: torch.Tensor | None = None
    dx: torch.Tensor | None = None


class BatchIterator:
    """Seeded batches over in-memory tensors; batch(it) is a pure function of (seed, it).

    x [N, ...], y [N]. Each epoch is a fresh permutation of the N samples cut into
    N // batch_size batches (the last partial batch is dropped, so every batch has the
    same size). With augment, x must be images [N, C, H, W]; each sample gets a random
    horizontal flip and a random crop after 4-px zero padding, drawn once per epoch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        augment: bool = False,
    ) -> None:
        n = x.shape[0]
        if y.shape[0] != n:
            raise ValueError(f"x has {n} samples but y has {y.shape[0]}")
        if not 1 <= batch_size <= n:
            raise ConfigError(
                f"train.batch_size={batch_size} must be between 1 and the {n} training "
                "samples: lower train.batch_size"
            )
        if augment and x.dim() != 4:
            raise DataError(
                f"augmentation needs images [N, C, H, W], got shape {tuple(x.shape)}: "
                "set dataset.augment=false"
            )
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.iters_per_epoch = n // batch_size
        self._epoch = -1  # the epoch whose draws are cached
        self._draws = EpochDraws(torch.empty(0, dtype=torch.int64))

    def epoch_draws(self, epoch: int) -> EpochDraws:
        """Epoch ``epoch``'s order and augmentation for all N samples, on x's device: a pure
        function of (seed, epoch)."""
        n, device = self.x.shape[0], self.x.device
        gen = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
        # The permutation is drawn first, so it does not depend on `augment`.
        perm = torch.randperm(n, generator=gen).to(device)
        if not self.augment:
            return EpochDraws(perm)
        flip = (torch.rand(n, generator=gen) < 0.5).to(device)
        offsets = torch.randint(0, 2 * PAD + 1, (2, n), generator=gen).to(device)
        return EpochDraws(perm, flip, offsets[0], offsets[1])

    def batch(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number `it` (0-based, counted across epochs): x [B, ...], y [B]."""
        if it < 0:
            raise ValueError(f"iteration must be >= 0, got {it}")
        epoch, i = divmod(it, self.iters_per_epoch)
        if epoch != self._epoch:
            self._draws, self._epoch = self.epoch_draws(epoch), epoch
        d = self._draws
        idx = d.perm[i * self.batch_size : (i + 1) * self.batch_size]
        # index_select: the same gather as x[idx], 2-5x less overhead on a CPU.
        xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
        if d.flip is not None:
            xb = flip_crop(xb, d.flip[idx], d.dy[idx], d.dx[idx])
        return xb, yb


class StackedBatches:
    """The batches of K BatchIterators (one per seed) over the same tensors, in one gather.

    batch(it) -> x [K, B, ...], y [K * B]: x[k] and y[k*B:(k+1)*B] are exactly
    ``BatchIterator(x, y, batch_size, seeds[k], augment).batch(it)``. One index op for all K
    instead of K, for training K seeds together (lth.train.replicas).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seeds: list[int],
        augment: bool = False,
    ) -> None:
        if not seeds:
            raise ValueError("StackedBatches needs at least one seed")
        self.iters = [BatchIterator(x, y, batch_size, s, augment) for s in seeds]
        self.x, self.y, self.batch_size, self.augment = x, y, batch_size, augment
        self.iters_per_epoch = self.iters[0].iters_per_epoch
        self._epoch = -1
        # The K seeds' draws of the cached epoch, stacked: perm, and flip, dy, dx, [K, N].
        self._stacked: dict[str, torch.Tensor] = {}

    def batch(self, it: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch number `it` of every seed: x [K, B, ...], y [K * B]."""
        if it < 0:
            raise ValueError(f"iteration must be >= 0, got {it}")
        epoch, i = divmod(it, self.iters_per_epoch)
        if epoch != self._epoch:
            draws = [b.epoch_draws(epoch) for b in self.iters]
            keys = ("perm", "flip", "dy", "dx") if self.augment else ("perm",)
            self._stacked = {k: torch.stack([getattr(d, k) for d in draws]) for k in keys}
            self._epoch = epoch
        cols = self._stacked["perm"][:, i * self.batch_size : (i + 1) * self.batch_size]  # [K, B]
        idx = cols.reshape(-1)
        xb, yb = self.x.index_select(0, idx), self.y.index_select(0, idx)
        if self.augment:
            # The per-sample draws of seed k, at seed k's sample ids.
            flip, dy, dx = (self._stacked[k].gather(1, cols).reshape(-1)
                            for k in ("flip", "dy", "dx"))
            xb = flip_crop(xb, flip, dy, dx)
        return xb.view(len(self.iters), self.batch_size, *xb.shape[1:]), yb

