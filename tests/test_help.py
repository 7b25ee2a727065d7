"""`--help` a newcomer can read: what each entry point does, its keys, where the docs are; the
groups it lists are real choices (every option composes), schemas and W&B files are not."""

from __future__ import annotations

import subprocess

import pytest
from hydra import compose, initialize_config_dir

from experiments.pair_schema import register  # every command's schema
from tests.conftest import PYTHON, ROOT

register()
ENTRY_POINTS = ("lottery", "control", "export", "distill", "instability", "barrier",
                "transport", "transfer")


def help_text(entry: str) -> str:
    result = subprocess.run([PYTHON, "-m", f"experiments.{entry}", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listed_options(text: str) -> dict[str, list[str]]:
    """The ``group: a, b, c`` lines of the help's groups section."""
    section = text.split("== Config groups (group=option) ==", 1)[1]
    section = section.split("== Composed config", 1)[0]
    groups = {}
    for line in section.strip().splitlines():
        group, _, options = line.partition(": ")
        groups[group.strip()] = [o.strip() for o in options.split(",")]
    return groups


@pytest.fixture(scope="module")
def lottery_help() -> str:
    return help_text("lottery")


def test_lottery_help_lists_the_groups_and_only_real_options(lottery_help: str) -> None:
    groups = listed_options(lottery_help)
    assert {"model", "dataset", "optimizer", "prune", "experiment"} <= set(groups)
    assert "sweep" not in groups  # W&B sweep files live in scripts/sweeps/, not in conf/
    offered = [o for options in groups.values() for o in options]
    assert not [o for o in offered if o.endswith("_schema")]
    assert {"adam", "sgd"} == set(groups["optimizer"])


def test_every_option_help_lists_composes(lottery_help: str) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for group, options in listed_options(lottery_help).items():
            for option in options:
                cfg = compose(config_name="config", overrides=[f"{group}={option}"],
                              return_hydra_config=True)
                assert cfg.hydra.runtime.choices[group] == option


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_each_entry_point_says_what_it_does_and_where_the_docs_are(
        entry: str, lottery_help: str) -> None:
    text = lottery_help if entry == "lottery" else help_text(entry)
    assert text.startswith(f"python -m experiments.{entry} ")
    assert "Docs: " in text and "docs/config.md" in text
    docs = text.split("Docs: ", 1)[1].split("\n\n", 1)[0]
    for link in docs.replace(";", " ").split():
        if link.startswith("docs/"):
            assert (ROOT / link.split("#")[0].rstrip(".")).is_file(), link
    assert "== Composed config" in text and ("\nname: " in text or "run_dir: " in text
                                             or "run_b: " in text)


def test_help_lists_every_control_and_strategy_of_the_registries(lottery_help: str) -> None:
    from lth.lottery.controls import CONTROLS
    from lth.pruning.registry import STRATEGIES

    control = help_text("control")
    for name in CONTROLS:
        assert name in lottery_help.split("== Config groups")[0], name
        assert name in control.split("== Config groups")[0], name
    keys = lottery_help.split("== Config groups")[0]
    assert [s for s in STRATEGIES if s not in keys] == []


def test_replicas_help_says_what_it_does() -> None:
    text = help_text("replicas")
    assert text.startswith("python -m experiments.replicas ")
    assert "replicas=" in text and "group_branches" in text and "docs/performance.md" in text
