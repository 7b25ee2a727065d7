"""Post-training static int8 quantization with ONNX Runtime's tools.

Activations are calibrated (min/max) on a few batches of *training* data; weights are int8
per output channel, activations uint8 (the U8S8 combination ORT's x86 kernels prefer), in QDQ
format, which ORT fuses into integer Conv/MatMul kernels when it loads the model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lth.export.onnx import INPUT, require_deploy
from lth.files import atomic_write


def quantize_int8(fp32_path: str | Path, int8_path: str | Path,
                  calibration: Sequence[np.ndarray], per_channel: bool = True) -> Path:
    """Write the int8 version of the ONNX model at ``fp32_path`` to ``int8_path``.

    ``calibration``: input batches float32 [B, *input_shape] from the training set.
    """
    require_deploy()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT: np.asarray(batch, dtype=np.float32)}

    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        # Shape inference and constant folding first, as ORT's quantization guide advises.
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        out = Path(tmp) / "int8.onnx"
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8)
        return atomic_write(int8_path, out.read_bytes())
