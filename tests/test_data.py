"""lth.data: loaders (torchvision ones on real tiny files), splits and the batch iterator."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from lth.data import DATASETS, BatchIterator, Dataset, load_dataset
from lth.data.batches import flip_crop
from lth.errors import ConfigError, DataError, LthError
from tests.datafiles import make_cifar10, make_cifar100, make_mnist

# Pins mnist1d generation (package version, its fixed seed, our standardization): if this
# changes, results are no longer comparable with earlier runs.
MNIST1D_SHA256 = "297ca9fcda3271f087ad977c3997d322303e40be7b4ee2ab81bed3a91ca6460e"


def digest(ds: Dataset) -> str:
    return hashlib.sha256(
        ds.x_train.numpy().tobytes() + ds.y_train.numpy().tobytes()
    ).hexdigest()


@pytest.fixture(scope="module")
def mnist1d() -> Dataset:
    return load_dataset("mnist1d")


# --- embedded datasets -------------------------------------------------------------------


def test_mnist1d_shapes(mnist1d: Dataset) -> None:
    assert mnist1d.x_train.shape == (4000, 1, 40) and mnist1d.x_test.shape == (
        1000,
        1,
        40,
    )
    assert (
        mnist1d.x_train.dtype == torch.float32 and mnist1d.y_train.dtype == torch.int64
    )
    assert mnist1d.input_shape == (1, 40) and mnist1d.num_classes == 10
    assert set(mnist1d.y_train.tolist()) == set(range(10))
    assert abs(mnist1d.x_train.mean().item()) < 1e-4
    assert abs(mnist1d.x_train.std().item() - 1) < 1e-3
    assert not mnist1d.augment and mnist1d.x_val is None


def test_mnist1d_checksum(mnist1d: Dataset) -> None:
    assert digest(mnist1d) == MNIST1D_SHA256


def test_mnist1d_leaves_global_rng_alone() -> None:
    np.random.seed(123)
    expected = np.random.rand()
    np.random.seed(123)
    load_dataset("mnist1d", num_samples=200)
    assert np.random.rand() == expected


def test_mnist1d_num_samples() -> None:
    ds = load_dataset("mnist1d", num_samples=500)
    assert ds.x_train.shape == (400, 1, 40) and ds.x_test.shape == (100, 1, 40)
    with pytest.raises(DataError, match="num_samples"):
        load_dataset("mnist1d", num_samples=5)
    with pytest.raises(DataError, match="mnist1d only"):
        load_dataset("digits", num_samples=100)


def test_digits_shapes_and_determinism() -> None:
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert a.num_classes == 10 and a.y_test.dtype == torch.int64
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert abs(a.x_train.mean().item()) < 1e-4


def test_to_moves_every_tensor(mnist1d: Dataset) -> None:
    ds = load_dataset("digits", val_size=100).to("cpu")
    assert ds.x_val is not None and ds.x_val.device.type == "cpu"
    assert mnist1d.to(torch.device("cpu")).x_train.shape == mnist1d.x_train.shape


# --- torchvision datasets, on tiny files in the real on-disk formats -----------------------


@pytest.mark.parametrize(
    ("name", "folder", "mean", "std"),
    [
        ("mnist", "MNIST", 0.1307, 0.3081),
        ("fashion_mnist", "FashionMNIST", 0.2860, 0.3530),
    ],
)
def test_mnist_files(
    tmp_path: Path, name: str, folder: str, mean: float, std: float
) -> None:
    data = make_mnist(tmp_path, folder)
    ds = load_dataset(name, root=str(tmp_path))
    assert ds.x_train.shape == (6, 1, 28, 28) and ds.x_test.shape == (4, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    assert ds.num_classes == 10 and not ds.augment
    images, labels = data["train"]
    assert ds.x_train[3, 0, 5, 7].item() == pytest.approx(
        (images[3, 5, 7] / 255 - mean) / std
    )
    assert ds.y_train.tolist() == labels.tolist()
    assert ds.y_test.tolist() == data["t10k"][1].tolist()
    expected = (torch.from_numpy(data["t10k"][0]).float() / 255 - mean) / std
    torch.testing.assert_close(ds.x_test[:, 0], expected)


def test_cifar10_files(tmp_path: Path) -> None:
    images, labels = make_cifar10(
        tmp_path
    )  # fail torchvision's md5s: we must not check them
    ds = load_dataset("cifar10", root=str(tmp_path))
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.augment and ds.num_classes == 10
    assert ds.y_train.tolist() == labels[:10] and ds.y_test.tolist() == labels[10:]
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    for k, c, i, j in [(0, 0, 0, 0), (7, 1, 3, 30), (9, 2, 31, 5)]:
        pixel = images[k, c * 1024 + i * 32 + j] / 255
        assert ds.x_train[k, c, i, j].item() == pytest.approx(
            (pixel - mean[c]) / std[c]
        )
    pixel = images[11, 2 * 1024 + 4 * 32 + 9] / 255
    assert ds.x_test[1, 2, 4, 9].item() == pytest.approx((pixel - mean[2]) / std[2])
    assert not load_dataset("cifar10", root=str(tmp_path), augment=False).augment


def test_cifar100_files(tmp_path: Path) -> None:
    images, fine = make_cifar100(tmp_path)
    ds = load_dataset("cifar100", root=str(tmp_path))
    assert ds.x_train.shape == (4, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert ds.num_classes == 100 and ds.augment
    assert ds.y_train.tolist() == fine[:4] and ds.y_test.tolist() == fine[4:]
    pixel = images[5, 1 * 1024 + 10 * 32 + 20] / 255
    assert ds.x_test[1, 1, 10, 20].item() == pytest.approx((pixel - 0.4865) / 0.2564)


# --- errors ------------------------------------------------------------------------------


def assert_one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and isinstance(err.value, LthError)
    return message


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "cifar100"])
def test_missing_root(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataError) as err:
        load_dataset(name, root=None)
    assert "dataset.root" in assert_one_line(err)
    for root in (tmp_path / "nope", tmp_path):  # nonexistent, then empty
        with pytest.raises(DataError) as err:
            load_dataset(name, root=str(root))
        message = assert_one_line(err)
        assert str(root) in message and "dataset.download=true" in message


def test_partial_and_corrupt_files(tmp_path: Path) -> None:
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="no CIFAR-10 files") as err:
        load_dataset("cifar10", root=str(tmp_path))
    assert_one_line(err)
    make_mnist(tmp_path, "MNIST")
    path = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with pytest.raises(DataError, match="corrupt") as err:
        load_dataset("mnist", root=str(tmp_path))
    assert_one_line(err)


def test_unknown_name() -> None:
    with pytest.raises(DataError) as err:
        load_dataset("imagenet")
    message = assert_one_line(err)
    assert all(name in message for name in DATASETS)


def test_augment_needs_images() -> None:
    with pytest.raises(DataError, match="augment"):
        load_dataset("mnist1d", num_samples=100, augment=True)


# --- validation split --------------------------------------------------------------------


def test_val_split() -> None:
    full = load_dataset("digits")
    ds = load_dataset("digits", val_size=300, split_seed=3)
    assert ds.x_val is not None and ds.y_val is not None
    assert ds.x_val.shape[0] == 300 and ds.x_train.shape[0] == 1437 - 300
    assert torch.equal(ds.x_test, full.x_test)
    # Disjoint and together the whole train set: match rows back to the full set.
    rows = {tuple(r) for r in full.x_train.flatten(1).tolist()}
    train = {tuple(r) for r in ds.x_train.flatten(1).tolist()}
    val = {tuple(r) for r in ds.x_val.flatten(1).tolist()}
    assert not train & val and train | val <= rows
    assert len(train) + len(val) == len(rows)  # digits has no duplicate images
    again = load_dataset("digits", val_size=300, split_seed=3)
    assert torch.equal(again.x_val, ds.x_val) and torch.equal(again.y_train, ds.y_train)
    other = load_dataset("digits", val_size=300, split_seed=4)
    assert not torch.equal(other.x_val, ds.x_val)
    for bad in (1437, 5000, -1):
        with pytest.raises(DataError, match="val_size"):
            load_dataset("digits", val_size=bad)


# --- BatchIterator -----------------------------------------------------------------------


def toy(n: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n * 3 * 4 * 4, dtype=torch.float32).view(n, 3, 4, 4)
    return x, torch.arange(n)


def test_batches_resume_out_of_order() -> None:
    x, y = toy()
    its = [0, 1, 7, 3, 12, 25, 4, 40]
    for augment in (False, True):
        a = BatchIterator(x, y, 8, seed=5, augment=augment)
        first = {it: a.batch(it) for it in sorted(its)}
        for (
            it
        ) in its:  # out of order on the same iterator, then on a fresh one each time
            for it_obj in (a, BatchIterator(x, y, 8, seed=5, augment=augment)):
                xb, yb = it_obj.batch(it)
                assert torch.equal(xb, first[it][0]) and torch.equal(yb, first[it][1])


def test_epoch_draws_are_pure_and_make_the_batches() -> None:
    """``epoch_draws`` (what StackedBatches stacks) is a function of (seed, epoch), and each
    batch is its slice of the order, flipped and cropped by its draws."""
    x, y = toy(50)
    it = BatchIterator(x, y, 8, seed=4, augment=True)
    d = it.epoch_draws(1)
    again = BatchIterator(x, y, 8, seed=4, augment=True).epoch_draws(1)
    for name in ("perm", "flip", "dy", "dx"):
        assert torch.equal(getattr(d, name), getattr(again, name)), name
    assert not torch.equal(d.perm, it.epoch_draws(0).perm)
    assert sorted(d.perm.tolist()) == list(range(50))
    idx = d.perm[16:24]  # batch 2 of epoch 1
    xb, yb = it.batch(it.iters_per_epoch + 2)
    assert torch.equal(yb, y[idx])
    assert torch.equal(xb, flip_crop(x[idx], d.flip[idx], d.dy[idx], d.dx[idx]))
    plain = BatchIterator(x, y, 8, seed=4).epoch_draws(1)
    assert torch.equal(plain.perm, d.perm) and plain.flip is None


def test_epoch_is_permutation() -> None:
    x, y = toy(50)
    it = BatchIterator(x, y, 8, seed=0)
    assert it.iters_per_epoch == 6  # 50 // 8: the last partial batch is dropped
    for epoch in range(3):
        labels = torch.cat([it.batch(epoch * 6 + i)[1] for i in range(6)])
        assert labels.shape == (48,) and labels.unique().numel() == 48
    epoch0 = torch.cat([it.batch(i)[1] for i in range(6)])
    epoch1 = torch.cat([it.batch(6 + i)[1] for i in range(6)])
    assert not torch.equal(epoch0, epoch1)


def test_unaugmented_batch_is_indexing_and_seeds_differ() -> None:
    x, y = toy()
    xb, yb = BatchIterator(x, y, 10, seed=1).batch(2)
    assert torch.equal(xb, x[yb])  # y is the sample index: the batch is exactly x[perm]
    assert yb.dtype == torch.int64
    other = BatchIterator(x, y, 10, seed=2).batch(2)[1]
    assert not torch.equal(yb, other)


def test_augment_flip_crop() -> None:
    n = 64
    x = torch.rand(n, 3, 8, 8)
    y = torch.arange(n)
    xb, yb = BatchIterator(x, y, n, seed=3, augment=True).batch(0)
    assert xb.shape == (n, 3, 8, 8)
    xb2, _ = BatchIterator(x, y, n, seed=3, augment=True).batch(0)
    assert torch.equal(xb, xb2)
    # Each output is some flip + shifted crop of its source with zero fill: check by search.
    padded = torch.nn.functional.pad(x[yb], (4, 4, 4, 4))
    flipped = 0
    for k in range(n):
        candidates = [
            (f, dy, dx)
            for f in (False, True)
            for dy in range(9)
            for dx in range(9)
            if torch.equal(
                xb[k],
                padded[k, :, dy : dy + 8, dx : dx + 8].flip(-1)
                if f
                else padded[k, :, dy : dy + 8, dx : dx + 8],
            )
        ]
        assert candidates, f"sample {k} is not a flip/crop of its source"
        flipped += candidates[0][0]
    assert 0 < flipped < n and not torch.equal(xb, x[yb])


def test_batch_size_checks() -> None:
    x, y = toy(10)
    with pytest.raises(ConfigError, match="train.batch_size"):
        BatchIterator(x, y, 11, seed=0)
    with pytest.raises(DataError, match="augment"):
        BatchIterator(x.flatten(1), y, 2, seed=0, augment=True)

