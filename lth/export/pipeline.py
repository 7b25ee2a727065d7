"""Export one round of a run: its weights and mask -> ONNX (fp32, int8) or a sparse checkpoint.

Files of ``<out_dir>`` (default ``<run_dir>/export/round_<k>/``)::

    model.onnx        fp32 ONNX (channels physically removed when structured)
    model.int8.onnx   static int8 QDQ ONNX (quantize=int8)
    ticket.sparse.pt  compressed sparse checkpoint (format=sparse)
    report.json       format=onnx: sizes, costs (MACs as metrics.jsonl counts them),
                      accuracies, PyTorch-vs-ORT difference
    sparse_report.json  format=sparse: the sparse file's size against a dense one
(one report per format, so exporting both formats into one folder keeps both)
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lth.data import Dataset
from lth.errors import ConfigError
from lth.export.measure import batch_latency, model_cost
from lth.export.onnx import export_onnx, ort_accuracy, ort_logits, session
from lth.export.quantize import quantize_int8
from lth.export.sparse import save_sparse
from lth.files import write_text
from lth.models.macs import CONVENTION
from lth.pruning.channels import remove_channels
from lth.pruning.mask import Mask, apply_mask, check_mask, density
from lth.store.store import RunStore
from lth.train.evaluate import evaluate

FORMATS = ("onnx", "sparse")
QUANTIZATIONS = (None, "int8")
ONNX_FILE, INT8_FILE, SPARSE_FILE, REPORT_FILE = (
    "model.onnx", "model.int8.onnx", "ticket.sparse.pt", "report.json")
REPORT_FILES = {"onnx": REPORT_FILE, "sparse": "sparse_report.json"}  # by format


def check_options(fmt: str, quantize: str | None, structured: bool | None) -> None:
    """ConfigError for an unknown format or quantization, or options that do not combine."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is unknown; choose one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"quantize={quantize!r} is unknown; use int8 or null")
    if fmt == "sparse" and (quantize or structured):
        raise ConfigError("format=sparse stores the ticket as it is: drop quantize and "
                          "structured, or use format=onnx")


# The TorchScript exporter writes opsets up to 20; ONNX Runtime runs the Gemm, Conv and
# per-axis QuantizeLinear (int8) nodes lth's models export to from opset 13 on.
OPSETS = range(13, 21)


def check_numbers(opset: int, latency: tuple[int, int, int], calibration: int,
                  batch_size: int) -> None:
    """ConfigError naming the key for a value the export cannot use: checked before any file
    is written, so that no model.onnx is left without its report.json."""
    if opset not in OPSETS:
        raise ConfigError(f"opset={opset} is not supported: use {OPSETS.start}.."
                          f"{OPSETS.stop - 1} (default 17)")
    big, repeats, warmup = latency
    for key, value, least in (("latency_batch", big, 1), ("latency_repeats", repeats, 1),
                              ("latency_warmup", warmup, 0),
                              ("calibration_batches", calibration, 1),
                              ("batch_size", batch_size, 1)):
        if value < least:
            raise ConfigError(f"{key}={value} must be at least {least}")


def resolve_round(store: RunStore, round_index: int | None) -> int:
    """``round_index``, or the last completed round when None; ConfigError if not completed."""
    done = len(store.read_metrics())
    if done == 0:
        raise ConfigError(f"run_dir={store.root} has no completed round yet: run or resume "
                          "the experiment first")
    if round_index is None:
        return done - 1
    if not 0 <= round_index < done:
        raise ConfigError(f"round={round_index} does not exist in {store.root}: its completed "
                          f"rounds are 0..{done - 1}")
    return round_index


def load_round(model: nn.Module, store: RunStore, k: int) -> Mask:
    """Load round ``k``'s trained weights into ``model`` (mask applied); returns the mask."""
    mask = store.load_tensors(store.mask_path(k))
    check_mask(model, mask, str(store.mask_path(k)))
    model.load_state_dict(store.load_tensors(store.final_path(k)))
    apply_mask(model, mask)
    model.eval()
    return mask


def _torch_bytes(state: dict[str, torch.Tensor]) -> int:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.tell()


def export_sparse(model: nn.Module, mask: Mask, out_dir: Path) -> dict[str, Any]:
    """Write the compressed ticket; report its size against a dense ``torch.save``."""
    path = save_sparse(out_dir / SPARSE_FILE, model.state_dict(), mask)
    dense = _torch_bytes(model.state_dict())
    return {"file": str(path), "bytes": path.stat().st_size, "dense_bytes": dense,
            "size_ratio": path.stat().st_size / dense, "density": density(mask)}


def calibration_batches(data: Dataset, count: int, batch_size: int, seed: int = 0
                        ) -> list[Any]:
    """``count`` random training batches [batch_size, ...] as numpy arrays (calibration)."""
    n = data.x_train.shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    x = data.x_train.cpu()
    return [x[perm[i * batch_size:(i + 1) * batch_size]].numpy()
            for i in range(max(1, min(count, n // batch_size)))]


def export_onnx_round(model: nn.Module, mask: Mask, data: Dataset, out_dir: Path, *,
                      structured: bool, quantize: str | None, calibration: int = 8,
                      batch_size: int = 32, opset: int = 17,
                      latency: tuple[int, int, int] = (32, 50, 5)) -> dict[str, Any]:
    """Export ``model`` (mask applied) to ONNX, optionally smaller and int8; a report dict.

    ``latency`` = (realistic batch, timed repeats, warm-up runs): ONNX Runtime's median latency
    (one thread) at batch 1 and that batch goes into the report as ``latency_ms``.
    """
    x_test, y_test = data.x_test.cpu(), data.y_test.cpu()
    example = x_test[:1]
    if structured:  # the smaller network keeps exactly the unpruned weights: no mask left
        model = remove_channels(model, mask, x_test[:8])
    model = model.cpu().eval()
    cost = model_cost(model, example, None if structured else mask)
    path = export_onnx(model, example, out_dir / ONNX_FILE, opset=opset)
    sess = session(path)
    with torch.no_grad():
        reference = model(x_test[:256]).numpy()
    report: dict[str, Any] = {
        "structured": structured, **asdict(cost), "macs_convention": CONVENTION,
        "onnx": str(path),
        "onnx_bytes": path.stat().st_size, "torch_acc": evaluate(model, x_test, y_test)[1],
        "onnx_acc": ort_accuracy(sess, x_test, y_test),
        "onnx_max_abs_diff": float(abs(ort_logits(sess, x_test[:256]) - reference).max()),
    }
    big, repeats, warmup = latency
    x = x_test.numpy()
    sessions = {"fp32": sess}
    if quantize == "int8":
        batches = calibration_batches(data, calibration, batch_size)
        int8 = quantize_int8(path, out_dir / INT8_FILE, batches)
        sessions["int8"] = session(int8)
        report.update(int8=str(int8), int8_bytes=int8.stat().st_size,
                      int8_acc=ort_accuracy(sessions["int8"], x_test, y_test))
    report["latency_ms"] = {k: batch_latency(s, x, (1, big), repeats=repeats, warmup=warmup)
                            for k, s in sessions.items()}
    report["latency"] = {"statistic": "median", "repeats": repeats, "warmup": warmup,
                         "threads": 1}
    return report


def write_report(out_dir: Path, report: dict[str, Any], fmt: str = "onnx") -> Path:
    """The report of format ``fmt`` in ``out_dir`` (``REPORT_FILES``; sorted keys,
    indented)."""
    return write_text(out_dir / REPORT_FILES[fmt], json.dumps(report, indent=2, sort_keys=True))
