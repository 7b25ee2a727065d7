"""Compressed sparse checkpoints: exact round trip, size that scales with density."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.errors import CheckpointError
from lth.export.sparse import load_sparse, save_sparse
from lth.models import LeNet300100
from lth.pruning import (
    PruneRates,
    apply_mask,
    full_mask,
    layer_rates,
    prune_mask,
    scheduled_densities,
)


def ticket(fraction: float, rounds: int = 1) -> tuple[dict, dict]:
    torch.manual_seed(0)
    model = LeNet300100((1, 28, 28), 10)
    mask = full_mask(model)
    rates = layer_rates(model, sorted(mask), PruneRates(fraction))
    for k in range(1, rounds + 1):
        mask = prune_mask(model.state_dict(), mask, strategy="magnitude_global", seed=0,
                          densities=scheduled_densities(rates, k))
    apply_mask(model, mask)  # as training leaves it: pruned weights 0.0 or -0.0
    return model.state_dict(), mask


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, 0.99])
def test_round_trip_is_exact(tmp_path: Path, fraction: float) -> None:
    state, mask = ticket(fraction)
    loaded, loaded_mask = load_sparse(save_sparse(tmp_path / "t.pt", state, mask))
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
        if tensor.is_floating_point():  # bit for bit, once -0.0 is read as +0.0
            assert torch.equal(loaded[name].view(torch.int32), (tensor + 0.0).view(torch.int32))
    assert all(torch.equal(loaded_mask[n], mask[n]) for n in mask)


def test_ninety_percent_sparse_lenet_is_at_most_15_percent_of_dense(tmp_path: Path) -> None:
    state, mask = ticket(0.9)
    torch.save(state, tmp_path / "dense.pt")
    sizes = {d: save_sparse(tmp_path / f"{d}.pt", *ticket(d)).stat().st_size
             for d in (0.5, 0.9, 0.99)}
    dense = (tmp_path / "dense.pt").stat().st_size
    assert sizes[0.9] <= 0.15 * dense
    assert sizes[0.99] < sizes[0.9] < sizes[0.5] < dense  # scales with density


def test_weights_outside_the_mask_are_refused(tmp_path: Path) -> None:
    state, mask = ticket(0.5)
    state["fc1.weight"] = torch.ones_like(state["fc1.weight"])
    with pytest.raises(ValueError, match="outside its mask"):
        save_sparse(tmp_path / "t.pt", state, mask)


def test_a_damaged_file_is_a_checkpoint_error(tmp_path: Path) -> None:
    path = save_sparse(tmp_path / "t.pt", *ticket(0.5))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="not a readable sparse checkpoint"):
        load_sparse(path)
