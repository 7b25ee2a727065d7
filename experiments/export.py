"""Export a round of a run: ``python -m experiments.export run_dir=<dir> [round=k] ...``.

``format=onnx`` (default) writes ``model.onnx`` (checked with onnx.checker, compared with
PyTorch in ONNX Runtime), ``quantize=int8`` adds ``model.int8.onnx``, ``structured=true``
removes the channels the mask leaves dead first (default: when the run pruned channels);
``format=sparse`` writes the ticket as a compressed sparse checkpoint. Files go to
``<run_dir>/export/round_<k>/`` with a ``report.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors
from experiments.schema import register
from lth.errors import ConfigError

register()


def writable(out_dir: Path, key: str) -> None:
    """ConfigError naming ``key`` unless files can be written in ``out_dir`` (created)."""
    import tempfile

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as e:
        raise ConfigError(f"cannot write {out_dir} ({e.strerror or e}): set {key} to a "
                          "writable directory") from None


def run(cfg: DictConfig) -> dict[str, Any]:
    """Export the round ``cfg`` names; returns the report (also written as report.json)."""
    import torch

    from experiments.setup import load_data, model_factory
    from experiments.stored import open_run
    from lth.export import pipeline as ex

    ex.check_options(cfg.format, cfg.quantize, cfg.structured)
    ex.check_numbers(cfg.opset, (cfg.latency_batch, cfg.latency_repeats, cfg.latency_warmup),
                     cfg.calibration_batches, cfg.batch_size)
    opened = open_run(cfg.run_dir)  # kind, schema and hash checked before anything is written
    store, run_cfg = opened.store, opened.cfg
    k = ex.resolve_round(store, cfg.round)
    granularity = OmegaConf.select(run_cfg, "prune.granularity", default="weight")
    structured = granularity == "channel" if cfg.structured is None else bool(cfg.structured)
    if cfg.format == "onnx":
        from lth.export import require_deploy

        require_deploy()
    data = load_data(run_cfg, torch.device("cpu"))
    model = model_factory(run_cfg, data)()
    mask = ex.load_round(model, store, k)
    out_dir = Path(cfg.out_dir) if cfg.out_dir else store.root / "export" / f"round_{k}"
    writable(out_dir, "out_dir" if cfg.out_dir else "run_dir")
    report: dict[str, Any] = {"run_dir": str(store.root), "round": k, "format": cfg.format}
    if cfg.format == "sparse":
        report.update(ex.export_sparse(model, mask, out_dir))
    else:
        report.update(ex.export_onnx_round(
            model, mask, data, out_dir, structured=structured, quantize=cfg.quantize,
            calibration=cfg.calibration_batches, batch_size=cfg.batch_size, opset=cfg.opset,
            latency=(cfg.latency_batch, cfg.latency_repeats, cfg.latency_warmup)))
    report["report"] = str(ex.write_report(out_dir, report, cfg.format))
    return report


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
@report_errors
def main(cfg: DictConfig) -> None:
    report = run(cfg)
    print(json.dumps(report, indent=2, sort_keys=True))


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
