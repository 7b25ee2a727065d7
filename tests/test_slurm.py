"""A real one-node Slurm (scripts/slurm_local.sh): a 2-seed sweep through hydra/launcher=slurm
stores what the basic launcher stores, and a job requeued mid-round (``scontrol requeue``:
SIGTERM) resumes from the checkpoint SIGTERM wrote and ends bit-identical to an uninterrupted
run. Skipped, with the reason, where Slurm or the Submitit launcher is missing."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from lth.store import RunStore
from tests.conftest import PYTHON, ROOT, cli_env
from tests.test_resume import assert_same_run

pytestmark = pytest.mark.slow
SCRIPT = ROOT / "scripts" / "slurm_local.sh"
RUN = ["experiment=mnist1d_mlp", "prune.rounds=1", "dataset.num_samples=1200", "progress=false",
       "wandb.mode=disabled",
       "train.eval_every=1000it", "train.checkpoint_every=30000it"]
SLURM = ["hydra/launcher=slurm", "hydra.launcher.partition=debug",
         "hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
         "hydra.launcher.mem_gb=1"]


@pytest.fixture(scope="module")
def slurm() -> dict[str, str]:
    try:  # find_spec raises, not returns None, when hydra_plugins itself is missing
        found = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        pytest.skip("hydra-submitit-launcher is not installed (pip install -e '.[cluster]')")
    started = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        pytest.skip(f"Slurm cannot start here: {started.stderr.strip()[-300:]}")
    conf = started.stdout.strip().rsplit("=", 1)[1]
    yield {"SLURM_CONF": conf}
    subprocess.run(["bash", str(SCRIPT), "stop"], timeout=60)


def lottery(tmp: Path, root: str, *extra: str, env: dict, wait: bool = True):
    multirun = ["-m"] if "-m" in extra else []
    extra = tuple(e for e in extra if e != "-m")
    cmd = [PYTHON, "-m", "experiments.lottery", *multirun, f"output_root={tmp / root}", *RUN,
           *extra]
    # The launcher plugin may be installed outside the venv (PYTHONPATH): the jobs need it too.
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    full_env = {**cli_env(tmp), "OMP_NUM_THREADS": "1", "PYTHONPATH": path, **env}
    if wait:
        return subprocess.run(cmd, cwd=tmp, env=full_env, capture_output=True, text=True,
                              timeout=600)
    return subprocess.Popen(cmd, cwd=tmp, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def runs(root: Path) -> dict[str, RunStore]:
    return {p.name: RunStore(p) for p in (root / "mnist1d_mlp").iterdir()}


def test_slurm_sweep_matches_the_basic_launcher(tmp_path: Path, slurm) -> None:
    swept = lottery(tmp_path, "slurm", "-m", "seed=0,1", "train.duration=300it", *SLURM,
                    env=slurm)
    assert swept.returncode == 0, swept.stderr[-2000:]
    basic = lottery(tmp_path, "basic", "-m", "seed=0,1", "train.duration=300it", env=slurm)
    assert basic.returncode == 0, basic.stderr[-2000:]
    a, b = runs(tmp_path / "slurm"), runs(tmp_path / "basic")
    assert sorted(a) == sorted(b) and len(a) == 2  # the same hashes
    for name in a:
        assert_same_run(a[name], b[name], 1)


def _job_ids(env: dict) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], env={**os.environ, **env},
                         capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.endswith("RUNNING")]


def test_requeue_mid_round_resumes_from_the_sigterm_checkpoint(tmp_path: Path,
                                                               slurm) -> None:
    # Long enough that round 1 is still training 2 s after round 0 on an idle machine (a
    # round of 6000 iterations took 2 s there, and finished before the requeue).
    long = "train.duration=60000it"
    sweep = lottery(tmp_path, "slurm", "-m", "seed=0", long, *SLURM, env=slurm, wait=False)
    deadline = time.time() + 300
    metrics = None
    while time.time() < deadline and metrics is None:  # round 0 done: round 1 is training
        found = list((tmp_path / "slurm").glob("mnist1d_mlp/*/metrics.jsonl"))
        if found and found[0].read_text().strip():
            metrics = found[0]
        time.sleep(0.2)
    assert metrics is not None, "round 0 never finished under Slurm"
    time.sleep(2.0)  # well into round 1, before its periodic checkpoint at 30000
    (job,) = _job_ids(slurm)
    subprocess.run(["scontrol", "requeue", job], env={**os.environ, **slurm}, check=True)
    time.sleep(3)
    # Slurm holds a requeued job before it is eligible again; release it now.
    subprocess.run(["scontrol", "update", f"jobid={job}", "StartTime=now"],
                   env={**os.environ, **slurm})
    out, err = sweep.communicate(timeout=600)
    assert sweep.returncode == 0, err[-2000:]
    logs = "".join(p.read_text() for p in (tmp_path / "slurm").rglob(f"{job}_*log.err"))
    stopped = re.search(r"preempted: stopped by SIGTERM at iteration (\d+) \(round 1\)", logs)
    assert stopped, logs[-2000:]
    assert 0 < int(stopped[1]) < 30000 + 1  # not the periodic checkpoint's iteration
    basic = lottery(tmp_path, "basic", long, env=slurm)
    assert basic.returncode == 0, basic.stderr[-2000:]
    a, b = runs(tmp_path / "slurm"), runs(tmp_path / "basic")
    assert sorted(a) == sorted(b)
    (name,) = a
    assert_same_run(a[name], b[name], 1)
    info = json.loads(a[name].info_path.read_text())
    assert info["hash"] == name
