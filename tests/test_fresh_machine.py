"""What a fresh machine sees that a developer's does not: caches built on first use."""

from __future__ import annotations

import subprocess

from tests.conftest import PYTHON, cli_env


def test_first_run_on_a_machine_prints_only_the_table(tmp_path) -> None:
    """matplotlib (imported by mnist1d) builds its font cache on a machine's first run and
    logs that at INFO, which Hydra's job logging would print above the round table."""
    env = {**cli_env(tmp_path), "MPLCONFIGDIR": str(tmp_path / "no-cache-yet"),
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [PYTHON, "-m", "experiments.lottery", "train.duration=10it", "prune.rounds=0",
         "dataset.num_samples=400", "dataset.val_size=40", "wandb.mode=disabled", "progress=false",
         f"output_root={tmp_path / 'runs'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "no-cache-yet").is_dir(), "the test must start without a font cache"
    lines = out.stdout.splitlines()
    assert lines[0].startswith("threads: ") and lines[2].split()[0] == "0", lines[:3]
    assert lines[1].split()[:3] == ["round", "density", "test"], lines[:3]
    # then the summary (dense, the next commands), nothing logged in between
    assert lines[3].startswith("summary (seed 0") and lines[-5] == "next:", lines
    assert lines[-1].startswith("run directory: ") and len(lines) == 10, lines
