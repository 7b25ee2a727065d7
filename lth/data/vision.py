"""MNIST, FashionMNIST and CIFAR-10/100 via torchvision, read straight into tensors.

We read torchvision's `.data`/`.targets` arrays and normalize the whole set at once
instead of going through per-sample PIL transforms: it takes a second instead of minutes,
and the result then lives on the device for the BatchIterator.
"""

from __future__ import annotations

import functools
import os
import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, ClassVar

import numpy as np
import torch

from lth.data.dataset import Dataset, normalize_
from lth.errors import DataError


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR's python batches (dicts of numpy arrays, lists and strings) and nothing
    else: any other global is refused, so a doctored dataset file cannot run code."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a dataset file")
        return super().find_class(module, name)


class _SafePickle:
    """Stands in for the ``pickle`` module inside torchvision's CIFAR reader."""

    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file: IO[bytes], *, encoding: str = "ASCII") -> Any:
        return _ArraysOnly(file, encoding=encoding).load()


@contextmanager
def _safe_cifar_unpickling() -> Iterator[None]:
    import torchvision.datasets.cifar as tv_cifar

    saved = tv_cifar.pickle
    tv_cifar.pickle = _SafePickle  # type: ignore[assignment]
    try:
        yield
    finally:
        tv_cifar.pickle = saved


@functools.cache
def _without_md5(stock: type) -> type:
    """A subclass of torchvision's CIFAR10/100 that only checks the batch files exist.

    Stock torchvision hashes all 170 MB on every construction (seconds on each start of a
    run) and rejects any file that is not the official one, such as the tiny files the
    tests write. Used only when download=False: a download still goes through the stock
    class, whose md5 check then catches a broken download.
    """

    def _check_integrity(self: Any) -> bool:
        files = [f for f, _ in self.train_list + self.test_list]
        return all(
            os.path.isfile(os.path.join(self.root, self.base_folder, f)) for f in files
        )

    attrs = {"meta": {**stock.meta, "md5": None}, "_check_integrity": _check_integrity}
    return type(f"_Local{stock.__name__}", (stock,), attrs)


@dataclass(frozen=True)
class _Spec:
    label: str  # the name users know, used in messages
    # torchvision.datasets class name; imported when a dataset is loaded, not before
    # (importing torchvision takes seconds and the embedded datasets never need it)
    stock: str
    md5_free: bool  # download=False uses _without_md5(stock) instead of the stock class
    folder: str  # under root
    files: tuple[str, ...]  # in folder: what torchvision reads
    mean: tuple[float, ...]
    std: tuple[float, ...]
    num_classes: int

    @property
    def expected(self) -> str:
        return f"{self.folder}/{{{','.join(self.files)}}}"


_MNIST_FILES = tuple(
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
)
_CIFAR10_FILES = tuple(f"data_batch_{i}" for i in range(1, 6)) + (
    "test_batch",
    "batches.meta",
)
# Per-channel statistics of each train set; CIFAR stds are the true per-pixel ones
# (0.247, ...), as in open_lth, not the 0.2023 often copied from old repos.
SPECS: dict[str, _Spec] = {
    "mnist": _Spec(
        "MNIST",
        "MNIST",
        False,
        "MNIST/raw",
        _MNIST_FILES,
        (0.1307,),
        (0.3081,),
        10,
    ),
    "fashion_mnist": _Spec(
        "FashionMNIST",
        "FashionMNIST",
        False,
        "FashionMNIST/raw",
        _MNIST_FILES,
        (0.2860,),
        (0.3530,),
        10,
    ),
    "cifar10": _Spec(
        "CIFAR-10",
        "CIFAR10",
        True,
        "cifar-10-batches-py",
        _CIFAR10_FILES,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        10,
    ),
    "cifar100": _Spec(
        "CIFAR-100",
        "CIFAR100",
        True,
        "cifar-100-python",
        ("train", "test", "meta"),
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        100,
    ),
}

# What torchvision raises for missing, truncated or foreign files and failed downloads.
_FAILURES = (
    RuntimeError,
    OSError,
    AssertionError,
    ValueError,
    TypeError,
    KeyError,
    EOFError,
    pickle.UnpicklingError,
)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _open(spec: _Spec, root: str, train: bool, download: bool) -> Any:
    """Construct the torchvision dataset, turning its failures into one-line DataErrors."""
    from torchvision import datasets as tvd

    cls = getattr(tvd, spec.stock)
    if spec.md5_free and not download:
        cls = _without_md5(cls)
    try:
        with _safe_cifar_unpickling():
            return cls(root, train=train, download=download)
    except _FAILURES as err:
        # torchvision raises RuntimeError both for missing and for malformed files, so
        # tell them apart by looking at the disk.
        present = all(
            os.path.isfile(os.path.join(root, spec.folder, f)) for f in spec.files
        )
        if present:
            raise DataError(
                f"a {spec.label} file under {root} is corrupt ({_first_line(err)}): "
                f"delete {spec.expected} there and download again"
            ) from err
        if not download:
            raise DataError(
                f"dataset root {root} has no {spec.label} files ({spec.expected}): "
                f"download {spec.label} there or set dataset.download=true"
            ) from err
        raise DataError(
            f"could not download {spec.label} to {root} ({_first_line(err)}): "
            f"check the network, or put {spec.expected} there by hand"
        ) from err


def _images_to_tensor(data: object, spec: _Spec) -> torch.Tensor:
    """uint8 images (MNIST [N, H, W] tensor or CIFAR [N, H, W, C] array) -> normalized
    float32 [N, C, H, W]."""
    if isinstance(data, np.ndarray):  # CIFAR: NHWC numpy
        x = torch.from_numpy(data).permute(0, 3, 1, 2)
    else:  # MNIST: NHW tensor
        x = torch.as_tensor(data).unsqueeze(1)
    # Make the uint8 copy contiguous, not the float one: 150 MB instead of 600 MB for CIFAR.
    x = x.contiguous().to(torch.float32).div_(255.0)
    return normalize_(x, spec.mean, spec.std)


def load_vision(name: str, root: str | None, download: bool) -> Dataset:
    """One of SPECS' datasets from `root`: x float32 [N, C, H, W] normalized, y int64 [N]."""
    spec = SPECS[name]
    if root is None or str(root).strip() == "":
        hint = "to download into" if download else f"holding {spec.expected}"
        raise DataError(
            f"dataset.root is not set for {name}: set dataset.root to a folder {hint}"
            + ("" if download else ", or to any folder with dataset.download=true")
        )
    root = os.path.expanduser(str(root))
    parts = []
    for train in (True, False):
        ds = _open(spec, root, train, download)
        x = _images_to_tensor(ds.data, spec)
        y = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        parts += [x, y]
    return Dataset(name, *parts, num_classes=spec.num_classes)
