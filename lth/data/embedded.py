"""Datasets that need no files: mnist1d (generated) and sklearn's bundled digits.

These are what the default experiment and the tests run on, offline, in seconds.
"""

from __future__ import annotations

import functools
import logging
import random

import numpy as np
import torch

from lth.data.dataset import Dataset
from lth.errors import DataError

MNIST1D_DEFAULT_SAMPLES = 5000
DIGITS_TRAIN_SIZE = (
    1437  # of 1797: sklearn's digits has no official split, so we fix one
)


def _standardize(
    x_train: np.ndarray, x_test: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale both splits by the train set's scalar mean/std (in float64, then float32)."""
    mean, std = x_train.mean(), x_train.std()
    train = torch.from_numpy(((x_train - mean) / std).astype(np.float32))
    test = torch.from_numpy(((x_test - mean) / std).astype(np.float32))
    return train, test


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(num_samples: int) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) as numpy arrays, memoized: generation takes ~2 s."""
    # mnist1d imports matplotlib, which logs "generated new fontManager" (INFO) the first time
    # it runs on a machine; under Hydra's job logging that line would land on stdout, above the
    # round table. Only its own INFO messages are silenced.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    # make_dataset reseeds the *global* numpy and random RNGs with its own fixed seed
    # (args.seed); restore them so loading data never changes what the run seed set.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    arrays = (d["x"], d["y"], d["x_test"], d["y_test"])
    for a in arrays:
        a.setflags(write=False)  # the cache hands out the same arrays every time
    return arrays


def load_mnist1d(num_samples: int | None = None) -> Dataset:
    """MNIST-1D generated offline: x [N, 1, 40] float32, 10 classes.

    `num_samples` is the total before the package's 80/20 train/test split (default 5000:
    4000 train, 1000 test); the package rounds it down to a multiple of 10.
    """
    n = MNIST1D_DEFAULT_SAMPLES if num_samples is None else num_samples
    if n < 20:
        raise DataError(
            f"dataset.num_samples={n} is too small for mnist1d: use at least 20 "
            f"(default {MNIST1D_DEFAULT_SAMPLES})"
        )
    x, y, x_test, y_test = _generate_mnist1d(n)
    xt, xs = _standardize(x, x_test)
    return Dataset(
        name="mnist1d",
        x_train=xt.unsqueeze(1),  # a channel axis, so 1-D CNNs take it as is
        y_train=torch.tensor(y, dtype=torch.int64),
        x_test=xs.unsqueeze(1),
        y_test=torch.tensor(y_test, dtype=torch.int64),
        num_classes=10,
    )


def load_digits() -> Dataset:
    """sklearn's 8x8 digits: x [N, 1, 8, 8] float32, 10 classes, 1437 train / 360 test."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.float64) / 16.0  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    perm = np.random.RandomState(0).permutation(len(y))
    tr, te = perm[:DIGITS_TRAIN_SIZE], perm[DIGITS_TRAIN_SIZE:]
    xt, xs = _standardize(x[tr], x[te])
    return Dataset(
        name="digits",
        x_train=xt.unsqueeze(1),
        y_train=torch.from_numpy(y[tr]),
        x_test=xs.unsqueeze(1),
        y_test=torch.from_numpy(y[te]),
        num_classes=10,
    )
