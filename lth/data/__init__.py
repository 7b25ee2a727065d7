"""Datasets as in-memory tensors, and fast seeded batches over them."""

from lth.data.batches import BatchIterator, StackedBatches, eval_batches
from lth.data.dataset import Dataset
from lth.data.load import DATASETS, load_dataset

__all__ = ["DATASETS", "BatchIterator", "Dataset", "StackedBatches", "eval_batches",
           "load_dataset"]
