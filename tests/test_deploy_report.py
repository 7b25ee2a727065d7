"""scripts.deploy_report compares stored runs (nothing trained inside it): slow, it exports and
times every model."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("torch_pruning")

import experiments.distill as distill_cli  # noqa: E402
from lth.store import RunStore  # noqa: E402
from tests.conftest import PYTHON, ROOT, cli_env  # noqa: E402
from tests.test_distill_run import composed  # noqa: E402
from tests.test_export import make_run  # noqa: E402


@pytest.mark.slow
def test_report_reads_the_stored_dense_ticket_channel_and_student_runs(tmp_path: Path) -> None:
    ticket = make_run(tmp_path / "runs")
    channels = make_run(tmp_path / "runs", "prune.granularity=channel",
                        "prune.strategy=magnitude_layerwise")
    student = distill_cli.run(composed("distill", [
        f"teacher={channels}", "params_round=1", "train.duration=50it", "progress=false",
        "wandb.mode=disabled", "device=cpu"])).root
    out = tmp_path / "report"
    result = subprocess.run(
        [PYTHON, "-m", "scripts.deploy_report", "--out", str(out), "--archs", "", "--quick",
         "--ticket-run", str(ticket), "--channel-run", str(channels), "--student-run",
         str(student)], cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True,
        timeout=600)
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "deploy_report.json").read_text())["rows"]
    models = {r["model"] for r in rows}
    (record,) = RunStore(student).read_metrics()
    assert {"dense", f"student-{record['params']}p"} <= models
    assert {m.split("-")[0] for m in models} == {"dense", "ticket", "channels", "student"}
    fp32 = {r["model"]: r for r in rows if r["precision"] == "fp32"}
    # The stored networks' own accuracies, not retrained ones.
    dense_record = RunStore(ticket).read_metrics()[0]
    assert fp32["dense"]["acc"] == pytest.approx(dense_record["test_acc"], abs=0.003)
    assert fp32[f"student-{record['params']}p"]["acc"] == pytest.approx(record["test_acc"],
                                                                        abs=0.003)
