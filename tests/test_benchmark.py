"""scripts/benchmark.py runs end to end (--quick) and writes its JSON report."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import PYTHON, ROOT, cli_env


@pytest.mark.slow
def test_benchmark_quick_runs_and_writes_json(tmp_path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [PYTHON, "-m", "scripts.benchmark", "--quick", "--threads", "1", "--out", str(out)],
        cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["torch_threads"] == 1 and report["quick"] is True
    for key in ("target1", "target2", "target3", "target4", "target5_default",
                "target5_lenet", "target6"):
        assert key in report, key
    assert report["target3"]["fidelity"]["init_identical"] is True
    assert report["mask_strategies_exact_zeros"]["grad"] is True
    assert report["target4"]["import_lth_loads"] == []
    for goal in ("<= 1.10x", "<= 1.05x", ">= 3x", "< 3 s"):
        assert goal in result.stdout, goal
