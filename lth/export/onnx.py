"""ONNX export of a PyTorch model and inference with ONNX Runtime (CPU).

Export uses PyTorch's TorchScript-based exporter (``dynamo=False``): it needs no onnxscript,
works offline and handles every lth model; the batch axis is dynamic. Every exported file is
checked with ``onnx.checker``.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lth.errors import ConfigError
from lth.files import atomic_write

INPUT, OUTPUT = "input", "logits"


def require_deploy() -> None:
    """ConfigError with the install command unless onnx and onnxruntime import."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("ONNX export needs the deploy extra: pip install -e '.[deploy]'"
                          ) from None


def export_onnx(model: nn.Module, example_input: torch.Tensor, path: str | Path,
                opset: int = 17) -> Path:
    """Write ``model`` (put in eval mode, on the CPU) to ``path`` as checked ONNX.

    ``example_input`` [B, *input_shape] fixes every dimension but the batch. The graph's input
    is ``input`` and its output ``logits`` [B, num_classes].
    """
    require_deploy()
    import onnx

    model = model.cpu().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter announces its deprecation
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example_input.cpu(),), buffer, dynamo=False, opset_version=opset,
            input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write(path, buffer.getvalue())


def session(path: str | Path, threads: int = 1):  # noqa: ANN201 - onnxruntime.InferenceSession
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and full optimisation."""
    require_deploy()
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_logits(sess, x: torch.Tensor | np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Logits [N, classes] of an ONNX Runtime session on ``x`` [N, *input_shape]."""
    data = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    data = np.ascontiguousarray(data, dtype=np.float32)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: data[i:i + batch_size]})[0]
                           for i in range(0, len(data), batch_size)])


def ort_accuracy(sess, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1] of a session on ``x`` [N, ...], labels ``y`` [N]."""
    pred = ort_logits(sess, x).argmax(axis=1)
    return float((pred == y.cpu().numpy()).mean())
