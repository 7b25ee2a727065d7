"""Datasets as in-memory tensors, and fast seeded batches over them."""

from lth.data.batches import BatchIterator, StackedBatches
from lth.data.dataset import Dataset
from lth.data.load import DATASETS, load_dataset

__all__ = ["DATASETS", "BatchIterator", "Dataset", "StackedBatches", "load_dataset"]
