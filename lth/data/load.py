"""The one entry point from a dataset name to a Dataset."""

from __future__ import annotations

import dataclasses

from lth.data.dataset import Dataset, split_validation
from lth.data.embedded import load_digits, load_mnist1d
from lth.data.vision import SPECS, load_vision
from lth.errors import DataError

DATASETS: tuple[str, ...] = (
    "mnist1d",
    "digits",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "cifar100",
)

# Each dataset's sample shape and class count, for building a stored run's model without
# loading its data (lth.tickets); tests/test_tickets.py checks them against the loaders.
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "mnist1d": ((1, 40), 10),
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


def load_dataset(
    name: str,
    *,
    root: str | None = None,
    download: bool = False,
    val_size: int = 0,
    split_seed: int = 0,
    num_samples: int | None = None,
    augment: bool | None = None,
) -> Dataset:
    """Load dataset `name` fully into CPU memory (move it with Dataset.to).

    root/download apply to the torchvision datasets only (mnist1d and digits need no
    files). val_size > 0 holds out that many train samples, chosen by split_seed alone.
    num_samples is mnist1d's total sample count (train + test). augment defaults to True
    for CIFAR and False otherwise. Raises DataError with a one-line fix on any problem.
    """
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}: set dataset.name to one of {', '.join(DATASETS)}"
        )
    if num_samples is not None and name != "mnist1d":
        raise DataError(
            f"dataset.num_samples applies to mnist1d only, not {name}: set it to null"
        )
    if name == "mnist1d":
        ds = load_mnist1d(num_samples)
    elif name == "digits":
        ds = load_digits()
    else:
        assert name in SPECS
        ds = load_vision(name, root, download)
    if augment is None:
        augment = name.startswith("cifar")
    if augment and ds.x_train.dim() != 4:
        # Caught here, at load time, rather than at the first batch of a long run.
        raise DataError(
            f"{name} is not images, so it cannot be augmented: set dataset.augment=false"
        )
    ds = dataclasses.replace(ds, augment=augment)
    return split_validation(ds, val_size, split_seed)
