"""The in-memory dataset record and the transforms every loader shares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from lth.errors import DataError


@dataclass
class Dataset:
    """A whole dataset held as tensors, small enough to live in (device) memory.

    x_* are float32 [N, *input_shape], already normalized; y_* are int64 [N] class ids.
    `augment` asks the BatchIterator for CIFAR-style flips and 4-px pad-crops per batch.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None
    augment: bool = False

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample, e.g. (1, 40) for mnist1d or (3, 32, 32) for CIFAR."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> Dataset:
        """A copy with every tensor on `device` (the original is left untouched)."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            x_val=move(self.x_val),
            y_val=move(self.y_val),
        )


def split_validation(ds: Dataset, val_size: int, split_seed: int) -> Dataset:
    """Hold out `val_size` training samples as a validation set.

    The permutation depends on `split_seed` only, never on the run seed, so every replicate
    of an experiment sees the same held-out set (as Frankle & Carbin's 5k MNIST holdout).
    Both parts keep the original sample order.
    """
    n = ds.x_train.shape[0]
    if val_size < 0 or val_size >= n:
        raise DataError(
            f"dataset.val_size={val_size} must be in [0, {n}) for {ds.name} "
            f"({n} training samples): lower dataset.val_size"
        )
    if val_size == 0:
        return ds
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed))
    val_idx = perm[:val_size].sort().values
    train_idx = perm[val_size:].sort().values
    return dataclasses.replace(
        ds,
        x_train=ds.x_train[train_idx],
        y_train=ds.y_train[train_idx],
        x_val=ds.x_train[val_idx],
        y_val=ds.y_train[val_idx],
    )


def normalize_(
    x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]
) -> torch.Tensor:
    """Normalize x [N, C, ...] per channel in place (in place: CIFAR's train set is 600 MB)."""
    shape = (1, len(mean)) + (1,) * (x.dim() - 2)
    x.sub_(torch.tensor(mean, dtype=x.dtype).view(shape))
    x.div_(torch.tensor(std, dtype=x.dtype).view(shape))
    return x
