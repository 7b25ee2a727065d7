"""The ``threads`` key: a number as given, ``auto`` one thread (the thread count changes the
numbers, and one thread is the fast choice on a busy CPU), printed once; not hashed."""

from __future__ import annotations

import pytest

from lth.errors import ConfigError
from lth.store.hashing import run_hash
from lth.train.threads import choose_threads, parse_threads


def test_a_number_is_kept_auto_is_one_thread_or_omp_num_threads() -> None:
    assert choose_threads("3", {}).threads == 3
    assert choose_threads(2, {"OMP_NUM_THREADS": "1"}).threads == 2
    omp = choose_threads("auto", {"OMP_NUM_THREADS": "3"})
    assert (omp.threads, omp.reason) == (3, "OMP_NUM_THREADS")
    auto = choose_threads("auto", {})
    assert auto.threads == 1
    assert auto.line() == ("threads: 1 (auto: one thread, the same numbers on any load; "
                           "set threads=N to choose)")
    assert "results differ from a one-thread run's" in choose_threads(2, {}).line()


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
