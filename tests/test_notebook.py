"""The mnist1d lottery notebook's parts: the residual MLP, bias pooling, the preset end to end."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lth.errors import ConfigError
from lth.models import MLP1D
from lth.pruning import full_mask, prune_mask
from lth.pruning.prune import check_pool_bias
from tests.conftest import run_cli
from tests.test_config import compose_with


def test_residual_mlp_forward_is_the_notebooks_formula() -> None:
    torch.manual_seed(0)
    model = MLP1D((1, 40), 10, hidden=(500, 500), residual=True, init="pytorch")
    x = torch.randn(7, 1, 40)
    flat = x.flatten(1)
    h = F.relu(flat @ model.fc1.weight.T + model.fc1.bias)
    h = h + F.relu(h @ model.fc2.weight.T + model.fc2.bias)
    expected = h @ model.fc3.weight.T + model.fc3.bias
    assert torch.allclose(model(x), expected, atol=1e-5)
    # Without the skip the same weights give another function: the option is really on.
    plain = MLP1D((1, 40), 10, hidden=(500, 500), init="pytorch")
    plain.load_state_dict(model.state_dict())
    assert not torch.allclose(plain(x), expected, atol=1e-3)


def test_residual_skips_only_equal_width_hidden_layers() -> None:
    assert MLP1D((1, 40), 10, hidden=(500, 500), residual=True).skips == (False, True, False)
    assert MLP1D((1, 40), 10, hidden=(100, 50), residual=True).skips == (False, False, False)
    assert MLP1D((1, 40), 10, hidden=(64, 64, 64), residual=True).skips == (
        False, True, True, False)


def test_pytorch_init_is_nn_linears_default_and_kaiming_stays_the_default() -> None:
    torch.manual_seed(3)
    model = MLP1D((1, 40), 10, hidden=(500, 500), init="pytorch")
    torch.manual_seed(3)
    reference = [nn.Linear(40, 500), nn.Linear(500, 500), nn.Linear(500, 10)]
    for layer, ref in zip((model.fc1, model.fc2, model.fc3), reference):
        assert torch.equal(layer.weight, ref.weight) and torch.equal(layer.bias, ref.bias)
    assert float(model.fc1.bias.detach().abs().max()) > 0  # uniform biases, not zeros
    assert float(MLP1D((1, 40), 10).fc1.bias.detach().abs().max()) == 0  # lth's init: zero biases
    with pytest.raises(ConfigError, match="model.init"):
        MLP1D((1, 40), 10, init="xavier")


def two_layer() -> nn.Module:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]))
        model[0].bias.copy_(torch.tensor([5.0, 3.0]))
        model[1].weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model[1].bias.copy_(torch.tensor([0.5, 9.0]))
    return model


def test_bias_pooling_ranks_a_layers_weights_and_bias_together() -> None:
    model = two_layer()
    weights = dict(model.named_parameters())
    mask = full_mask(model, include_bias=True)
    densities = {n: 0.5 for n in mask}
    pooled = prune_mask(weights, mask, strategy="magnitude_layerwise", seed=0,
                        densities=densities, pool_bias=True)
    # Layer 0 keeps 4 of its 8 parameters: both biases (5.0, 3.0) outrank every weight, so
    # the weight 0.4 goes; layer 1 keeps 3 of 6: 9.0, 4.0, 3.0 (the bias 0.5 is the smallest).
    assert pooled["0.bias"].tolist() == [True, True]
    assert pooled["0.weight"].tolist() == [[False, False, False], [False, True, True]]
    assert pooled["1.bias"].tolist() == [False, True]
    assert pooled["1.weight"].tolist() == [[False, False], [True, True]]
    # Unpooled, each tensor keeps its own half: the bias 3.0 is pruned while the smaller
    # weight 0.4 survives.
    separate = prune_mask(weights, mask, strategy="magnitude_layerwise", seed=0,
                          densities=densities)
    assert separate["0.bias"].tolist() == [True, False]
    assert separate["0.weight"].tolist() == [[False, False, False], [True, True, True]]


def test_bias_pooling_takes_the_weights_target_density() -> None:
    model = two_layer()
    mask = full_mask(model, include_bias=True)
    # The bias's own target (1.0) is ignored: its layer's weight target (0.25) applies to both.
    densities = {"0.weight": 0.25, "0.bias": 1.0, "1.weight": 1.0, "1.bias": 1.0}
    pooled = prune_mask(dict(model.named_parameters()), mask, strategy="magnitude_layerwise",
                        seed=0, densities=densities, pool_bias=True)
    assert pooled["0.bias"].tolist() == [True, True] and not bool(pooled["0.weight"].any())


def test_pool_bias_needs_prune_bias() -> None:
    check_pool_bias(False, False)
    check_pool_bias(True, True)  # with either granularity: a channel's bias goes with it
    with pytest.raises(ConfigError, match="prune.prune_bias=true"):
        check_pool_bias(True, False)


def test_preset_composes_to_the_notebooks_settings() -> None:
    cfg = compose_with(["experiment=mnist1d_notebook"])
    assert cfg.model.hidden == [500, 500] and cfg.model.residual and cfg.model.init == "pytorch"
    assert cfg.optimizer.lr == pytest.approx(2e-2) and cfg.optimizer.weight_decay == 0
    assert (cfg.train.duration, cfg.train.batch_size, cfg.train.eval_every) == (
        "1500it", 100, "100it")
    assert cfg.prune.strategy == "magnitude_layerwise" and cfg.prune.pool_bias
    assert cfg.prune.output_fraction is None and cfg.prune.rewind == "0it"
    schedule = list(cfg.prune.schedule)
    assert len(schedule) == cfg.prune.rounds == 91
    # np.linspace(0, 1, 100): round k is sparsity k/99.
    assert all(math.isclose(d, 1 - k / 99, abs_tol=1e-6) for k, d in enumerate(schedule, 1))
    assert set(cfg.prune.controls) == {"random_prune", "random_reinit"}


def notebook_cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, "experiments.lottery", "experiment=mnist1d_notebook",
                   f"output_root={tmp_path / 'runs'}", f"wandb.dir={tmp_path}",
                   "wandb.mode=disabled", "progress=false", *overrides, timeout=1200,
                   threads=None)


def records(tmp_path: Path, name: str) -> list[dict]:
    (run,) = (tmp_path / "runs" / "mnist1d_notebook").iterdir()
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


def test_preset_runs_two_rounds_with_controls_through_the_cli(tmp_path: Path) -> None:
    result = notebook_cli(tmp_path, "prune.rounds=1", "train.duration=200it")
    assert result.returncode == 0, result.stderr
    metrics = records(tmp_path, "metrics.jsonl")
    assert [r["round"] for r in metrics] == [0, 1]
    # Round 1 keeps 98/99 of every layer's weights and bias together (fc1 has 40*500 + 500).
    assert metrics[1]["layer_density"].keys() == {
        f"fc{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}
    assert metrics[1]["remaining"] == sum(
        math.floor(n * 98 / 99 + 0.5) for n in (40 * 500 + 500, 500 * 500 + 500, 500 * 10 + 10))
    assert all(r["test_acc"] > 0.3 for r in metrics)  # it learns (chance is 0.1)
    controls = records(tmp_path, "controls.jsonl")
    assert sorted(r["control"] for r in controls) == ["random_prune", "random_reinit"]


def test_pool_bias_without_prune_bias_is_one_line(tmp_path: Path) -> None:
    result = notebook_cli(tmp_path, "prune.prune_bias=false")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: prune.pool_bias=true ranks biases with their layer's weights: set "
        "prune.prune_bias=true too"]
    assert not (tmp_path / "runs" / "mnist1d_notebook").exists()


@pytest.mark.slow
def test_full_reproduction_ticket_beats_dense_at_92_percent_sparsity(tmp_path: Path) -> None:
    result = notebook_cli(tmp_path, "prune.controls=[]")
    assert result.returncode == 0, result.stderr
    metrics = records(tmp_path, "metrics.jsonl")
    assert len(metrics) == 92
    assert metrics[-1]["sparsity"] == pytest.approx(0.919, abs=0.002)
    assert metrics[-1]["test_acc"] > metrics[0]["test_acc"]
