"""Tiny dataset files in the real torchvision on-disk formats, for loader tests."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray) -> None:
    """An idx-ubyte file: big-endian magic 0x0000 08 <ndim> (uint8), then each dim."""
    header = struct.pack(">I", 0x0800 + array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def make_mnist(root: Path, folder: str, n_train: int = 6, n_test: int = 4) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        data[split] = (images, labels)
    return data


def write_pickle(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj))


def make_cifar10(root: Path) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (13, 3 * 32 * 32), dtype=np.uint8)  # rows are CHW
    labels = rng.integers(0, 10, 13).tolist()
    for i in range(5):  # 2 samples per train batch, 3 in the test batch
        batch = {"data": images[2 * i : 2 * i + 2], "labels": labels[2 * i : 2 * i + 2]}
        write_pickle(folder / f"data_batch_{i + 1}", batch)
    write_pickle(folder / "test_batch", {"data": images[10:], "labels": labels[10:]})
    write_pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    return images, labels


def make_cifar100(root: Path) -> tuple[np.ndarray, list[int]]:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (7, 3 * 32 * 32), dtype=np.uint8)
    fine = [99, 0, 42, 7, 63, 5, 17]
    for name, sl in (("train", slice(0, 4)), ("test", slice(4, 7))):
        entry = {"data": images[sl], "fine_labels": fine[sl], "coarse_labels": [0] * 3}
        write_pickle(folder / name, entry)
    write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    return images, fine
