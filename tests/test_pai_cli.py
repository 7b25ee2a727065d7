"""Pruning at initialisation and the mask criteria through the real CLI on MNIST-1D: exact
densities, the invert and shuffle controls, supermasks in the records and in W&B, resuming,
and one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.pruning import kept_count
from lth.pruning.prune import keep_top
from lth.pruning.scores import compute_scores
from lth.tracking import find_wandb_file, read_wandb_run
from lth.train.evaluate import evaluate
from tests.conftest import run_cli, run_dirs

TINY = ["experiment=mnist1d_mlp",  # the machinery on the small MLP
        "train.duration=60it", "train.eval_every=0it", "dataset.num_samples=1200",
        "dataset.val_size=100", "progress=false", "prune.output_fraction=null"]
AT_INIT = ["prune.at_init=true", "prune.schedule=[0.5,0.1]", "prune.rounds=2",
           "prune.score_iterations=10", "prune.controls=[invert,random_prune]",
           "wandb.mode=disabled"]


def lottery(tmp: Path, *overrides: str, multirun: bool = False) -> subprocess.CompletedProcess:
    return run_cli(tmp, "experiments.lottery", *(["-m"] if multirun else []),
                   f"output_root={tmp / 'runs'}", f"wandb.dir={tmp}", *TINY, *overrides,
                   timeout=600)


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def mask_of(directory: Path, k: int, control: str | None = None) -> dict[str, torch.Tensor]:
    sub = f"round_{k}" + (f"/controls/{control}" if control else "")
    return torch.load(directory / sub / "mask.pt", weights_only=True)


def files(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


@pytest.fixture(scope="module")
def at_init_runs(tmp_path_factory) -> tuple[Path, list[Path]]:
    tmp = tmp_path_factory.mktemp("pai")
    result = lottery(tmp, "prune.strategy=snip,grasp,synflow,magnitude_init", *AT_INIT,
                     multirun=True)
    dirs = run_dirs(result)
    assert len(dirs) == 4
    return tmp, dirs


def test_every_score_prunes_the_init_to_exactly_each_density(at_init_runs) -> None:
    _, dirs = at_init_runs
    masks = []
    for directory in dirs:
        records = jsonl(directory / "metrics.jsonl")
        assert [r["round"] for r in records] == [0, 1, 2]
        for r, target in zip(records[1:], (0.5, 0.1)):
            assert r["remaining"] == kept_count(r["total"], target), directory
        masks.append(mask_of(directory, 2))
        init = torch.load(directory / "init.pt", weights_only=True)
        # Round 2 is pruned from the dense init, not from round 1's mask, yet trained from init.
        assert (directory / "rewind.pt").exists() and init
    assert len({tuple(torch.cat([m.flatten() for m in mk.values()]).tolist())
                for mk in masks}) == 4, "two scores chose the same mask"


def test_invert_and_shuffle_keep_the_tickets_layer_counts(at_init_runs) -> None:
    _, dirs = at_init_runs
    for directory in dirs:
        controls = jsonl(directory / "controls.jsonl")
        assert sorted((c["round"], c["control"]) for c in controls) == [
            (1, "invert"), (1, "random_prune"), (2, "invert"), (2, "random_prune")]
        for k in (1, 2):
            ticket = mask_of(directory, k)
            for name in ("invert", "random_prune"):
                other = mask_of(directory, k, name)
                assert {n: int(m.sum()) for n, m in other.items()} == {
                    n: int(m.sum()) for n, m in ticket.items()}
        if directory == dirs[2]:
            continue  # iterative SynFlow's ticket is not the top of its one-step scores
        # A layer that keeps at most half its weights: the inverse is disjoint from the ticket.
        inverted, ticket = mask_of(directory, 2, "invert"), mask_of(directory, 2)
        sparse = [n for n, m in ticket.items() if 2 * int(m.sum()) <= m.numel()]
        assert sparse and not any(bool((inverted[n] & ticket[n]).any()) for n in sparse)


def test_compare_methods_tabulates_each_method_beside_its_controls(at_init_runs,
                                                                  tmp_path: Path) -> None:
    from scripts import compare_methods

    tmp, _ = at_init_runs
    assert compare_methods.main([str(tmp / "runs" / "mnist1d_mlp"), "--out",
                                 str(tmp_path)]) == 0
    lines = (tmp_path / "table.md").read_text().splitlines()
    assert "| random_prune | invert |" in lines[0]
    body = [ln.split(" | ")[:3] for ln in lines[2:]]
    assert sorted((m.lstrip("| "), d) for m, d, _ in body) == sorted(
        (m, d) for m in ("grasp", "magnitude_init", "snip", "synflow")
        for d in ("50.0%", "10.0%"))
    assert (tmp_path / "accuracy.png").stat().st_size > 0
    assert "fc1.weight" in (tmp_path / "layers.md").read_text()


@pytest.mark.slow  # the resume mechanism itself is covered by tests/test_resume.py
def test_stored_rounds_and_controls_resume_without_training(at_init_runs) -> None:
    tmp, dirs = at_init_runs
    before = files(tmp / "runs" / "mnist1d_mlp")
    result = lottery(tmp, "prune.strategy=snip,grasp,synflow,magnitude_init", *AT_INIT,
                     multirun=True)
    assert run_dirs(result) == dirs
    assert result.stdout.count("nothing to train") == 4
    after = files(tmp / "runs" / "mnist1d_mlp")
    assert {p: after.get(p) for p in before} == before


def test_mask_criteria_on_a_two_round_imp_run_with_supermasks(tmp_path: Path) -> None:
    criteria = "small_final,large_init,large_init_large_final,magnitude_increase,movement"
    result = lottery(tmp_path, f"prune.strategy={criteria}", "prune.rounds=2",
                     "analysis.supermask=true", "wandb.mode=offline", multirun=True)
    dirs = run_dirs(result)
    assert len(dirs) == 5
    data = load_dataset("mnist1d", num_samples=1200, val_size=100)
    from lth.models import MLP1D

    masks = set()
    for directory in dirs:
        records = jsonl(directory / "metrics.jsonl")
        assert [r["round"] for r in records] == [0, 1, 2]
        assert "supermask_test_acc" not in records[0]
        model = MLP1D(input_shape=list(data.input_shape), num_classes=data.num_classes)
        for r in records[1:]:
            model.load_state_dict(torch.load(directory / "init.pt", weights_only=True))
            mask = mask_of(directory, r["round"])
            for n, m in mask.items():
                model.get_parameter(n).data.mul_(m)
            assert r["supermask_test_acc"] == pytest.approx(
                evaluate(model, data.x_test, data.y_test)[1])
        masks.add(tuple(torch.cat([m.flatten() for m in mask_of(directory, 2).values()]).tolist()))
    assert len(masks) == 5, "two criteria chose the same mask"
    # Round 2 ranks round 1's survivors by w_i (round 1's start: the rewind point) and w_f.
    load = (lambda d, f: torch.load(d / f, weights_only=True))
    for directory, kind in ((dirs[1], "large_init"), (dirs[4], "movement")):
        prev, wi, wf = mask_of(directory, 1), load(directory, "rewind.pt"), load(
            directory, "round_1/final.pt")
        scores = compute_scores(kind, {n: wf[n] for n in prev}, 0, {n: wi[n] for n in prev})
        total = sum(m.numel() for m in prev.values())
        expect = keep_top(scores, prev, sorted(prev), kept_count(total, 0.8 ** 2))
        got = mask_of(directory, 2)
        assert all(torch.equal(got[n], expect[n]) for n in prev), kind
    run = read_wandb_run(find_wandb_file(tmp_path, f"mnist1d_mlp-{dirs[-1].name}"))
    rows = [row for row in run.history if "supermask/test_acc" in row]
    assert [row["round"] for row in rows] == [1, 2]


# Rows marked slow repeat a mechanism another row (or tests/test_cli.py) covers.
BAD = [
    pytest.param(["prune.strategy=snipp"], "prune.strategy='snipp' is unknown",
                 marks=pytest.mark.slow),
    pytest.param(["prune.strategy=snip", "prune.score_batches=0"],
                 "prune.score_batches=0 must be at least 1", marks=pytest.mark.slow),
    (["prune.at_init=true", "prune.retrain=finetune", "prune.finetune_duration=50it"],
     "prune.at_init=true with prune.retrain=finetune"),
    (["prune.strategy=grasp", "prune.score_iterations=0"],
     "prune.score_iterations=0 must be at least 1"),
    (["prune.strategy=snip", "prune.score_mode=test"],
     "prune.score_mode='test' is unknown; choose one of train, eval"),
    (["prune.granularity=channel", "prune.strategy=snip"],
     "prune.strategy=snip has no channel version; with prune.granularity=channel use one of "
     "magnitude_global, magnitude_layerwise, large_final, large_final_layerwise, random, "
     "random_global"),
    pytest.param(["prune.granularity=channel", "prune.channel_score=l3"],
                 "prune.channel_score='l3' is unknown; choose one of l1, l2, bn, random",
                 marks=pytest.mark.slow),
]


@pytest.mark.parametrize("overrides,message", BAD,
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_pai_input_gives_one_line_and_exit_2(tmp_path: Path, overrides, message) -> None:
    result = lottery(tmp_path, "wandb.mode=disabled", *overrides)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert not list((tmp_path / "runs").glob("mnist1d_mlp/*/metrics.jsonl"))
