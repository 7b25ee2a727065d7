"""ONNX export, int8 quantization and the export CLI, on runs made by the real lottery code."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch_pruning")

from hydra import compose, initialize_config_dir  # noqa: E402

import experiments.export as export_cli  # noqa: E402
import experiments.lottery as lottery_cli  # noqa: E402
from lth.errors import ConfigError  # noqa: E402
from lth.export import (  # noqa: E402
    export_onnx,
    interleaved_latency,
    load_sparse,
    model_cost,
    ort_logits,
    session,
)
from lth.models import ResNetCIFAR  # noqa: E402
from lth.models.macs import CONVENTION, count_macs  # noqa: E402
from lth.pruning.channels import remove_channels  # noqa: E402
from lth.store import RunStore, config_hash  # noqa: E402
from tests.conftest import PYTHON, ROOT, cli_env  # noqa: E402
from tests.test_structured import channel_prune, randomise_norms  # noqa: E402

CONF = str(ROOT / "conf")


def compose_config(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def make_run(root: Path, *overrides: str) -> Path:
    """A real lottery run (in-process, no W&B) of LeNet-300-100 on digits; its directory."""
    cfg = compose_config("config", [
        "experiment=mnist1d_mlp", "model=lenet_300_100", "dataset=digits",
        "train.duration=100it", "train.batch_size=64",
        "train.eval_every=0it", "prune.rounds=1", "prune.fraction=0.5", "progress=false",
        "wandb.mode=disabled", "device=cpu", f"output_root={root}", *overrides])
    return lottery_cli.run(cfg).root


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), "prune.granularity=channel",
                    "prune.strategy=magnitude_layerwise")


def export(run_dir: Path | None, *overrides: str) -> dict:
    cfg = compose_config("export", [f"run_dir={run_dir}" if run_dir else "run_dir=null",
                                    *overrides])
    return export_cli.run(cfg)


def test_structured_int8_export_of_a_channel_run(channel_run: Path) -> None:
    report = export(channel_run, "quantize=int8", "latency_repeats=7", "latency_batch=16")
    # ONNX Runtime latency (median of the timed runs, ms) of both files at batch 1 and 16.
    assert set(report["latency_ms"]) == {"fp32", "int8"}
    for times in report["latency_ms"].values():
        assert set(times) == {"batch_1", "batch_16"} and all(0 < t < 1e3 for t in times.values())
    assert report["latency"] == {"statistic": "median", "repeats": 7, "warmup": 5, "threads": 1}
    assert json.loads(Path(report["report"]).read_text())["latency_ms"] == report["latency_ms"]
    assert report["round"] == 1 and report["structured"] is True
    onnx.checker.check_model(report["onnx"], full_check=True)
    onnx.checker.check_model(report["int8"], full_check=True)
    assert report["onnx_max_abs_diff"] < 1e-4
    assert report["onnx_acc"] == pytest.approx(report["torch_acc"], abs=0.003)
    assert 0.5 < report["torch_acc"] and report["int8_acc"] > report["torch_acc"] - 0.05
    # digits' 8x8 inputs, hidden 300-100 halved: 64*150 + 150*50 + 50*10 weights + biases.
    assert report["params"] == 64 * 150 + 150 + 150 * 50 + 50 + 50 * 10 + 10
    assert Path(report["report"]).is_file()


def test_channel_rounds_record_the_smaller_networks_macs(channel_run: Path) -> None:
    dense, ticket = RunStore(channel_run).read_metrics()
    assert dense["macs_structured"] == dense["macs_sparse"] == dense["macs_dense"]
    # Removing dead channels leaves the unpruned weights (and at most a channel per group).
    assert ticket["macs_sparse"] <= ticket["macs_structured"] < ticket["macs_dense"]
    assert ticket["macs_dense"] == dense["macs_dense"]


@pytest.mark.parametrize("structured", [False, True])
def test_the_export_reports_macs_as_the_round_records_them(channel_run: Path, tmp_path: Path,
                                                           structured: bool) -> None:
    report = export(channel_run, "round=1", f"structured={str(structured).lower()}",
                    f"out_dir={tmp_path}", "latency_repeats=1", "latency_warmup=0")
    record = RunStore(channel_run).read_metrics()[1]
    assert report["macs_convention"] == CONVENTION
    assert json.loads((tmp_path / "report.json").read_text())["macs_convention"] == CONVENTION
    if structured:  # the smaller network: nothing pruned is left in it
        assert report["macs_dense"] == report["macs_sparse"] == record["macs_structured"]
    else:  # the ticket as trained, its zeros in place
        assert (report["macs_dense"], report["macs_sparse"]) == (record["macs_dense"],
                                                                 record["macs_sparse"])
        assert report["macs_sparse"] < report["macs_dense"]


def test_sparse_export_round_trips_the_stored_ticket(channel_run: Path) -> None:
    report = export(channel_run, "format=sparse", "round=1")
    store = RunStore(channel_run)
    state, mask = load_sparse(report["file"])
    final = store.load_tensors(store.final_path(1))
    assert all(torch.equal(state[n], final[n]) for n in final)
    assert all(torch.equal(mask[n], m) for n, m in store.load_tensors(store.mask_path(1)).items())
    assert report["size_ratio"] < 0.5
    assert Path(report["report"]).name == "sparse_report.json"  # the ONNX report.json is kept


def test_residual_network_exports_and_matches_pytorch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = randomise_norms(ResNetCIFAR((3, 16, 16), 10, depth=20))
    x = torch.randn(5, 3, 16, 16)
    _, mask = channel_prune(model, x, 0.5)
    small = remove_channels(model, mask, x[:2])
    path = export_onnx(small, x[:1], tmp_path / "r20.onnx")
    got = ort_logits(session(path), x)  # batch 5 through a graph traced at batch 1
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(got), small(x), rtol=1e-4, atol=1e-4)
    cost = model_cost(small, x[:1])
    assert cost.params < 0.3 * sum(p.numel() for p in model.parameters())
    assert cost.macs_dense == cost.macs_sparse == count_macs(small, x[:1]).dense > 0
    latency = interleaved_latency({"small": session(path)}, x.numpy(), rounds=2, repeats=2)
    assert latency["small"] > 0


def test_missing_run_dir_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="run_dir is not set"):
        export(None)
    with pytest.raises(ConfigError, match="not a run directory"):
        export(tmp_path / "nothing")
    result = subprocess.run([PYTHON, "-m", "experiments.export", f"run_dir={tmp_path}/x"],
                            cwd=tmp_path, env=cli_env(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("error: run_dir=") and result.stderr.count("\n") == 1


def test_nonexistent_round_is_an_error(channel_run: Path) -> None:
    with pytest.raises(ConfigError, match="round=5 does not exist.*0..1"):
        export(channel_run, "round=5")


def test_unsupported_model_for_structured_export_is_an_error(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path, "model.hidden=[]", "prune.rounds=0", "train.duration=5it")
    with pytest.raises(ConfigError, match="no channels lth can remove"):
        export(run_dir, "structured=true")
    with pytest.raises(ConfigError, match="unknown"):
        export(run_dir, "format=tflite")


def test_channel_granularity_is_part_of_the_hash_only_when_set() -> None:
    from experiments.setup import to_dict

    base = config_hash(to_dict(compose_config("config", [])))
    assert config_hash(to_dict(compose_config("config", ["prune.granularity=weight"]))) == base
    assert config_hash(to_dict(compose_config("config", ["prune.granularity=channel"]))) != base


@pytest.mark.slow
def test_cli_channel_run_then_int8_export(tmp_path: Path) -> None:
    """The two real CLIs end to end: a channel-pruned lottery run, then its int8 export."""
    env = cli_env(tmp_path)
    result = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", "experiment=mnist1d_mlp", "model=cnn1d",
         "prune.granularity=channel",
         "prune.rounds=1", "train.duration=100it", "train.eval_every=0it", "progress=false",
         "wandb.mode=disabled", f"output_root={tmp_path}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    run_dir = result.stdout.strip().splitlines()[-1].removeprefix("run directory: ")
    result = subprocess.run([PYTHON, "-m", "experiments.export", f"run_dir={run_dir}",
                             "quantize=int8"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = __import__("json").loads(result.stdout)
    assert report["structured"] and report["onnx_max_abs_diff"] < 1e-4 and "int8_acc" in report
