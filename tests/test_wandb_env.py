"""WANDB_MODE, WANDB_PROJECT, WANDB_ENTITY and WANDB_DIR are the defaults of the wandb.* keys,
through the real CLI; an explicit override on the command line wins."""

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


def test_wandb_mode_disabled_in_the_environment_writes_no_run(tmp_path) -> None:
    env = cli_env(tmp_path)
    env.pop("WANDB_DIR")
    env["WANDB_MODE"] = "disabled"
    result = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", f"output_root={tmp_path / 'runs'}",
         "train.duration=10it", "train.eval_every=0it", "prune.rounds=0",
         "dataset.num_samples=1200", "progress=false"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "run directory: " in result.stdout
    assert not list(tmp_path.rglob("*.wandb")) and not list(tmp_path.rglob("wandb"))
