"""Deployment: sparse checkpoints, ONNX export, int8 quantization, cost and latency.

Needs the ``deploy`` extra (onnx, onnxruntime, torch-pruning) except for ``lth.export.sparse``;
the modules import them when called, so ``import lth.export`` always works.
"""

from lth.export.measure import ModelCost, interleaved_latency, model_cost
from lth.export.onnx import (
    export_onnx,
    ort_accuracy,
    ort_logits,
    require_deploy,
    session,
)
from lth.export.quantize import quantize_int8
from lth.export.sparse import load_sparse, save_sparse, sparse_state

__all__ = ["ModelCost", "interleaved_latency", "model_cost", "export_onnx",
           "ort_accuracy", "ort_logits", "require_deploy", "session", "quantize_int8",
           "load_sparse", "save_sparse", "sparse_state"]
