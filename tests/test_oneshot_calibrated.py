"""One-shot calibrated pruning as a stored run: the real CLI on digits with the ViT preset,
without retraining and with a short fine-tune; the calibration size is hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lth.store.hashing import run_hash
from tests.conftest import run_dirs

TINY = ["experiment=vit_digits_oneshot", "train.duration=30it", "prune.rewind=0it",
        "train.warmup=0it", "train.eval_every=0it", "model.depth=1", "progress=false",
        "wandb.mode=disabled"]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sparsegpt_oneshot_run_is_stored_with_updated_weights(cli, tmp_path: Path) -> None:
    out = f"output_root={tmp_path / 'runs'}"
    (run,) = run_dirs(cli("experiments.lottery", *TINY, out, "prune.strategy=sparsegpt"))
    r0, r1 = _records(run)
    assert r1["iterations"] == 0 and r1["round"] == 1  # no retraining: evaluated as pruned
    blocks = {n: d for n, d in r1["layer_density"].items() if n.startswith("blocks.")}
    assert all(abs(d - 0.5) < 0.01 for d in blocks.values()) and \
        r1["layer_density"]["head.weight"] == 1.0
    load = lambda p: torch.load(p, weights_only=True)  # noqa: E731
    dense, final, mask = (load(run / p) for p in
                          ("round_0/final.pt", "round_1/final.pt", "round_1/mask.pt"))
    q = "blocks.0.attn.q.weight"
    assert torch.all(final[q][~mask[q]] == 0)
    assert not torch.allclose(final[q], dense[q] * mask[q])  # SparseGPT moved the kept weights
    # The same command resumes (nothing retrained); another calibration size is another run.
    again = cli("experiments.lottery", *TINY, out, "prune.strategy=sparsegpt")
    assert run_dirs(again) == [run] and "round" in again.stdout
    (other,) = run_dirs(cli("experiments.lottery", *TINY, out, "prune.strategy=sparsegpt",
                            "prune.calibration_samples=32", "prune.nm=2:4",
                            "prune.finetune_duration=10it"))
    assert other != run
    r1 = _records(other)[1]
    assert r1["iterations"] == 10
    m = torch.load(other / "round_1/mask.pt", weights_only=True)[q]
    assert torch.all(m.reshape(m.shape[0], -1, 4).sum(-1) == 2)


def test_calibration_size_and_nm_are_hashed_and_neutral_at_their_defaults() -> None:
    base = {"seed": 0, "prune": {"strategy": "wanda", "rounds": 1}}
    with_defaults = {"seed": 0, "prune": {"strategy": "wanda", "rounds": 1,
                                          "calibration_samples": 128, "nm": ""}}
    assert run_hash(base) == run_hash(with_defaults)
    for key, value in (("calibration_samples", 64), ("nm", "2:4")):
        changed = {"seed": 0, "prune": {**with_defaults["prune"], key: value}}
        assert run_hash(changed) != run_hash(base)


def test_driver_prunes_with_sparsegpt_and_finetunes_from_its_weights(tmp_path: Path) -> None:
    from lth.pruning.pruner import Pruner, PrunerSettings
    from tests.conftest import TinyMLP, make_blobs, make_lottery

    data = make_blobs()
    for ft in (0, 5):
        pruner = Pruner(TinyMLP, data.x_train, data.y_train, 32,
                        PrunerSettings(calibration_samples=64))
        lottery = make_lottery(tmp_path / str(ft), data=data, rounds=1, oneshot=True,
                               strategy="sparsegpt", retrain="finetune", finetune_iters=ft,
                               lottery={"pruner": pruner})
        records = lottery.run()
        assert records[1]["iterations"] == ft
        store = lottery.store
        dense, final, mask = (store.load_tensors(p) for p in (
            store.final_path(0), store.final_path(1), store.mask_path(1)))
        for n, m in mask.items():
            assert torch.all(final[n][~m] == 0)
        if ft == 0:  # evaluated as SparseGPT left it: its updated weights, not dense * mask
            model = TinyMLP()
            model.load_state_dict(dense)
            want = pruner.solve(dense, {n: torch.ones_like(m) for n, m in mask.items()},
                                strategy="sparsegpt", seed=lottery.settings.prune_seed(1),
                                densities={n: 0.7 for n in mask}).weights
            assert all(torch.equal(final[n], want[n]) for n in mask)
            assert not all(torch.equal(final[n], dense[n] * m) for n, m in mask.items())
