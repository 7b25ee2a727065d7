"""WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY and WANDB_DIR are the defaults of the wandb.* keys,
through the real CLI; an explicit override on the command line wins. (That WANDB_MODE=disabled
writes no run is checked in tests/test_cli.py::test_raising_rounds_extends_the_same_run; that
an explicit wandb.mode= beats it at run time, in tests/test_distill_run.py.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.conftest import PYTHON, ROOT, cli_env

ENV = {"WANDB_MODE": "disabled", "WANDB_PROJECT": "from-env", "WANDB_ENTITY": "team-env"}


def composed(tmp_path: Path, entry: str, *overrides: str, env: dict[str, str]) -> dict:
    base = cli_env(tmp_path)
    for key in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_DIR"):
        base.pop(key, None)
    result = subprocess.run([PYTHON, "-m", entry, *overrides, "--cfg", "job", "--resolve"],
                            cwd=ROOT, env={**base, **env}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_environment_sets_the_wandb_defaults_and_the_command_line_wins(tmp_path) -> None:
    env = {**ENV, "WANDB_DIR": str(tmp_path / "wandb_home")}
    cfg = composed(tmp_path, "experiments.lottery", env=env)
    assert cfg["wandb"] == {"mode": "disabled", "project": "from-env", "entity": "team-env",
                            "tags": [], "dir": str(tmp_path / "wandb_home")}
    cfg = composed(tmp_path, "experiments.lottery", "wandb.mode=offline", "wandb.project=cli",
                   env=env)
    assert cfg["wandb"]["mode"] == "offline" and cfg["wandb"]["project"] == "cli"
    assert cfg["wandb"]["entity"] == "team-env"
    plain = composed(tmp_path, "experiments.lottery", env={})
    assert plain["wandb"] == {"mode": "offline", "project": "lth", "entity": None, "tags": [],
                              "dir": None}
    control = composed(tmp_path, "experiments.control", "run_dir=x", "control=random_prune",
                       env=env)
    assert control["wandb_mode"] == "disabled"

