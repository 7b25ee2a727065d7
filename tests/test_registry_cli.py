"""The registry through the real entry point: a criterion registered in-process (nothing else
edited) prunes a run of ``experiments.lottery`` and its masks are what the criterion implies;
channel pruning runs on the default experiment, which pools biases."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lth.pruning import kept_count
from lth.pruning import registry as reg
from lth.pruning.registry import Score
from lth.pruning.scores import ScoreInputs
from tests.conftest import PYTHON, ROOT, cli_env

TINY = ("prune.rounds=2", "train.duration=4it", "train.eval_every=0it", "prune.controls=[]",
        "wandb.mode=disabled", "progress=false")


def later_is_better(inputs: ScoreInputs) -> dict[str, torch.Tensor]:
    """A toy criterion: a weight's flat index (the last ones of every tensor survive)."""
    return {n: torch.arange(w.numel(), dtype=torch.float32).view(w.shape)
            for n, w in inputs.weights.items()}


@pytest.fixture
def toy():
    score = reg.register(Score("later", later_is_better, "the highest flat index"))
    yield score
    reg.unregister("later")


def hydra_as_if_run(monkeypatch, *argv: str) -> None:
    """``sys.argv`` of ``python -m`` and Hydra finding conf/ as it does then: relative to the
    entry point's file (by module name it would look for an importable package ``conf``)."""
    monkeypatch.setattr(sys, "argv", list(argv))
    monkeypatch.setenv("HYDRA_MAIN_MODULE", "__main__")


def run_main(monkeypatch, capsys, *overrides: str) -> str:
    """``experiments.lottery``'s main in this process (a subprocess would not see the
    registration); returns what it printed."""
    from experiments import lottery

    hydra_as_if_run(monkeypatch, "experiments.lottery", *overrides)
    lottery.main()
    return capsys.readouterr().out


def test_a_registered_criterion_runs_through_the_cli(toy, tmp_path: Path, monkeypatch,
                                                     capsys) -> None:
    assert {"later", "later_layerwise", "later_row"} <= set(reg.STRATEGIES)
    out = run_main(monkeypatch, capsys, "prune.strategy=later_layerwise",
                   "prune.pool_bias=false", f"output_root={tmp_path / 'runs'}", *TINY)
    (run,) = (tmp_path / "runs" / "mnist1d_lottery").iterdir()
    assert f"run directory: {run}" in out
    for k in (1, 2):
        mask = torch.load(run / f"round_{k}" / "mask.pt", weights_only=True)
        assert set(mask) == {f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
        for n, m in mask.items():  # the default: every tensor at 0.81 ** k, layer-wise
            keep = kept_count(m.numel(), 0.81 ** k)
            expect = torch.arange(m.numel()) >= m.numel() - keep
            assert torch.equal(m.flatten(), expect), (k, n)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in records] == [0, 1, 2]


def test_a_registered_criterion_is_in_the_help(toy, monkeypatch, capsys) -> None:
    from experiments import lottery

    hydra_as_if_run(monkeypatch, "experiments.lottery", "--help")
    with pytest.raises(SystemExit) as stopped:
        lottery.main()
    assert stopped.value.code in (0, None)
    out = capsys.readouterr().out
    assert "later_layerwise" in out and "magnitude_row" in out


def test_the_help_lists_every_strategy() -> None:
    result = subprocess.run([PYTHON, "-m", "experiments.lottery", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("prune.strategy=<name>", 1)[1].split("prune.controls", 1)[0]
    names = {n.strip() for n in listed.split(":", 1)[1].replace("\n", " ").split(",")}
    assert names == set(reg.STRATEGIES)


def test_channel_pruning_runs_on_the_default_experiment(tmp_path: Path) -> None:
    pytest.importorskip("torch_pruning")
    result = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", "prune.granularity=channel",
         f"output_root={tmp_path / 'runs'}", f"wandb.dir={tmp_path}", *TINY],
        cwd=ROOT, env=cli_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "runs" / "mnist1d_lottery").iterdir()
    mask = torch.load(run / "round_2" / "mask.pt", weights_only=True)
    neurons = mask["fc1.weight"].any(dim=1)
    assert int(neurons.sum()) == kept_count(500, 0.81 ** 2)  # whole neurons, 0.81 ** 2
    assert torch.equal(mask["fc1.bias"], neurons), "a neuron's bias goes with it"
    assert torch.equal(mask["fc2.weight"].any(dim=0), neurons), "and its consumers' columns"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[2]["macs_structured"] < records[0]["macs_dense"]
