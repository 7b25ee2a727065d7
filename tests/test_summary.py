"""The main command's end-of-run summary: dense, the ticket at its lowest density and at its
best, the controls there, one sentence reading them, the next commands."""

from __future__ import annotations

import pytest

from lth.lottery.summary import beat, reading, relative, summary_lines

ROUNDS = [{"round": 0, "density": 1.0, "test_acc": 0.634},
          {"round": 1, "density": 0.81, "test_acc": 0.76},
          {"round": 2, "density": 0.0798, "test_acc": 0.735}]
CONTROLS = [{"round": 2, "control": "random_prune", "test_acc": 0.648},
            {"round": 2, "control": "random_reinit", "test_acc": 0.733},
            {"round": 1, "control": "random_prune", "test_acc": 0.66}]


def test_the_reading_says_how_far_above_or_below() -> None:
    assert beat(0.735, 0.634) == "beat dense by 10.1 pt"
    assert beat(0.636, 0.634) == "match dense (within 0.5 pt)"
    assert beat(0.60, 0.634) == "fall 3.4 pt below dense"
    assert relative(0.648, 0.735) == "8.7 pt below the ticket"
    assert relative(0.75, 0.735) == "1.5 pt above the ticket"
    assert reading(ROUNDS[0], ROUNDS[2], CONTROLS) == (
        "tickets beat dense by 10.1 pt at 7.98% of the weights; random masks (random_prune) "
        "reach 64.80% there, 8.7 pt below the ticket; random re-initialisation (random_reinit) "
        "reaches 73.30% there, within 0.5 pt of the ticket.")


def test_summary_lines_show_lowest_and_best_and_the_next_commands() -> None:
    lines = summary_lines(ROUNDS, CONTROLS, 0, "runs", "mnist1d_lottery",
                          ["prune.rounds=2", "seed=0"])
    text = "\n".join(lines)
    assert lines[1].split() == ["dense", "round", "0", "(100%)", "63.40%"]
    assert "lowest density  round 2 (7.98%)   ticket 73.50%, random_prune 64.80%, " \
           "random_reinit 73.30%" in text
    assert "best ticket     round 1 (81%)     ticket 76.00%, random_prune 66.00%" in text
    assert "python -m experiments.lottery -m prune.rounds=2 seed=1,2,3,4" in text
    assert "python -m scripts.aggregate runs/mnist1d_lottery --out out/mnist1d_lottery" in text
    assert max(map(len, lines)) <= 100
    assert summary_lines([], [], 0, "runs", "x") == []
    only_dense = summary_lines(ROUNDS[:1], [], 0, "runs", "x")
    assert "reading" not in "\n".join(only_dense) and "next:" in only_dense


@pytest.mark.slow  # one process generating MNIST-1D: ~15 s idle, minutes on a shared CPU
def test_the_main_command_prints_threads_once_and_ends_with_the_summary(cli) -> None:
    out = cli("experiments.lottery", "prune.rounds=1", "prune.controls=[random_prune]",
              "train.duration=40it", "train.eval_every=20it", "threads=1",
              "wandb.mode=disabled", "progress=false")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "threads: 1 (threads set; set threads=N to choose)"
    assert out.stdout.count("threads: ") == 1
    assert "test-selected @ iter" in lines[1]
    summary = out.stdout.split("summary (seed 0; final test accuracy, test_acc):\n", 1)[1]
    assert "lowest density  round 1 (81%)" in summary and "random_prune" in summary
    assert "  reading: tickets " in summary
    assert "python -m experiments.lottery -m prune.rounds=1" in summary
    assert lines[-1].startswith("run directory: ")


def test_the_row_says_what_its_accuracy_was_selected_on_and_prints_the_supermask() -> None:
    from lth.lottery.table import format_header, format_row

    base = {"round": 1, "density": 0.8, "test_acc": 0.70, "best_test_acc": 0.75,
            "best_iter": 300, "early_stop_test_acc": 0.72, "early_stop_iter": 200,
            "wall_s": 1.0}
    assert "test-selected @ iter" in format_header() and "val-selected" in format_header(True)
    assert "75.00% @ 300" in format_row(base)
    with_val = format_row({**base, "val_loss": 0.9, "val_acc": 0.7})
    assert "72.00% @ 200" in with_val
    assert format_row({**base, "supermask_test_acc": 0.123}, note="x").endswith(
        "(x, supermask 12.30%)")
