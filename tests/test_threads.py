"""The ``threads`` key: a number as given, ``auto`` the cores the load leaves free (torch's
one-per-core default makes small models wait on each other on a busy machine), printed once;
not hashed."""

from __future__ import annotations

import pytest

from lth.errors import ConfigError
from lth.store.hashing import run_hash
from lth.train.threads import auto_threads, choose_threads, parse_threads


def test_auto_takes_the_cores_the_load_leaves_free() -> None:
    assert auto_threads(1, 0.0) == 1
    assert auto_threads(2, 0.1) == 2      # idle: torch's default, every core
    assert auto_threads(2, 0.4) == 2
    assert auto_threads(2, 1.0) == 1      # one busy neighbour
    assert auto_threads(2, 0.7) == 1
    assert auto_threads(2, 8.0) == 1      # a shared machine
    assert auto_threads(16, 0.0) == 16
    assert auto_threads(16, 10.5) == 6    # what the load leaves free
    assert auto_threads(8, 30.0) == 1


def test_a_number_is_kept_auto_honours_omp_num_threads() -> None:
    assert choose_threads("3", {}).threads == 3
    assert choose_threads(2, {"OMP_NUM_THREADS": "1"}).threads == 2
    omp = choose_threads("auto", {"OMP_NUM_THREADS": "3"})
    assert (omp.threads, omp.reason) == (3, "OMP_NUM_THREADS")
    auto = choose_threads("auto", {})
    assert auto.threads >= 1 and auto.reason.startswith("auto: ")
    assert auto.line().startswith(f"threads: {auto.threads} (auto: ")


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5"])
def test_a_bad_value_names_the_fix(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"threads=.* must be auto or a positive number"):
        parse_threads(bad)


def test_threads_is_not_hashed() -> None:
    base = {"name": "x", "seed": 0, "model": {"hidden": 8}}
    assert run_hash({**base, "threads": "auto"}) == run_hash(base) == run_hash(
        {**base, "threads": 1})


@pytest.mark.slow  # two processes that generate MNIST-1D: ~15 s idle, minutes when shared
def test_the_cli_prints_its_choice_once_and_rejects_a_bad_one(cli) -> None:
    ok = cli("experiments.lottery", "prune.rounds=0", "prune.controls=[]", "train.duration=20it",
             "train.eval_every=20it", "threads=1", "wandb.mode=disabled", "progress=false")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count("threads: ") == 1
    assert ok.stdout.splitlines()[0] == "threads: 1 (threads set; set threads=N to choose)"
    bad = cli("experiments.lottery", "threads=0", "wandb.mode=disabled")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: threads='0' must be auto or a positive number of threads (e.g. threads=1)"]
