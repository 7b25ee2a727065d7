"""What decides the bits: kernel facts in run.json, the warning on resuming under other
kernels, their columns in scripts.runs, and reproducible=portable (same bits under kernel
settings that change them without it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lth.errors import ConfigError
from lth.kernels import PORTABLE_ENV, differing, is_pinned, kernel_facts, pin_portable
from lth.store import run_hash
from tests.conftest import run_cli

TINY = ("experiment=mnist1d_mlp", "train.duration=20it", "train.eval_every=10it",
        "progress=false", "wandb.mode=disabled")


def _flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


AVX512 = "avx512f" in _flags()
AVX2 = "avx2" in _flags()


def test_kernel_facts_name_what_selects_the_kernels(monkeypatch) -> None:
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    facts = kernel_facts("cpu")
    for key in ("build", "cpu", "cpu_isa", "cpu_capability", "blas", "onednn", "threads",
                "device", "compile", "deterministic"):
        assert key in facts, key
    assert facts["env"]["MKL_CBWR"] == "AVX2"
    json.dumps(facts)  # plain data for run.json
    env = {k: v for k, v in facts["env"].items() if k != "MKL_CBWR"}
    elsewhere = "DEFAULT" if facts["cpu_capability"] != "DEFAULT" else "AVX512"
    other = {**facts, "cpu_capability": elsewhere, "env": env}
    assert differing(facts, other) == [f"cpu_capability {facts['cpu_capability']} -> {elsewhere}",
                                       "MKL_CBWR AVX2 -> unset"]
    assert differing(facts, dict(facts)) == []


def test_pinning_sets_the_portable_environment_once() -> None:
    env = {"MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ATEN_CPU_CAPABILITY": "avx512"}
    assert not is_pinned(env)
    pin_portable(env, torch_loaded=False)
    assert is_pinned(env) and env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert "MKL_ENABLE_INSTRUCTIONS" not in env


def test_pinning_after_torch_loaded_is_refused() -> None:
    import torch  # noqa: F401 - loaded, as in any process that trained already

    with pytest.raises(ConfigError, match="process of its own"):
        pin_portable({"ATEN_CPU_CAPABILITY": "avx512"})
    pin_portable(dict(PORTABLE_ENV))  # pinned already: nothing to do


def test_portable_is_hashed_and_default_is_neutral() -> None:
    cfg = {"name": "x", "seed": 0, "prune": {"rounds": 2}}
    assert run_hash({**cfg, "reproducible": "default"}) == run_hash(cfg)
    assert run_hash({**cfg, "reproducible": "portable"}) != run_hash(cfg)


def test_new_run_records_kernels_and_resume_on_other_kernels_warns_once(tmp_path: Path
                                                                       ) -> None:
    out = tmp_path / "runs"
    first = run_cli(tmp_path, "experiments.lottery", *TINY, "prune.rounds=1",
                    f"output_root={out}")
    assert first.returncode == 0, first.stderr
    (run,) = out.glob("mnist1d_mlp/*")
    info = json.loads((run / "run.json").read_text())
    for record in (info["versions"], info["rounds"]["0"], info["rounds"]["1"]):
        assert record["kernels"]["cpu_capability"] and record["kernels"]["cpu"]
    assert "ran on other kernels" not in first.stderr
    resumed = run_cli(tmp_path, "experiments.lottery", *TINY, "prune.rounds=2",
                      f"output_root={out}", env={"ATEN_CPU_CAPABILITY": "default"})
    assert resumed.returncode == 0, resumed.stderr
    warnings = [ln for ln in resumed.stderr.splitlines() if "ran on other kernels" in ln]
    assert len(warnings) == 1, resumed.stderr
    assert "(round 1)" in warnings[0] and "ATEN_CPU_CAPABILITY unset -> default" in warnings[0]
    info = json.loads((run / "run.json").read_text())
    assert info["rounds"]["2"]["kernels"]["env"]["ATEN_CPU_CAPABILITY"] == "default"


def test_runs_index_shows_kernel_facts_that_differ(tmp_path: Path, capsys) -> None:
    from scripts import runs
    from tests.test_runs_index import CONFIGS, store_run

    root = tmp_path / "runs"
    facts = {"cpu": "AMD EPYC", "cpu_capability": "AVX2", "threads": 1}
    for key, capability in (("a", "AVX2"), ("b", "AVX512")):
        path = store_run(root, CONFIGS[key], [0.6, 0.62])
        kernels = {**facts, "cpu_capability": capability}
        (path / "run.json").write_text(json.dumps({
            "versions": {"lth": "0.1.0", "kernels": facts},
            "rounds": {"0": {"kernels": facts}, "1": {"kernels": kernels}}}))
    store_run(root, CONFIGS["c"], [0.59])  # stored before kernel facts: not a difference
    assert runs.main([str(root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    shown = {r["hash"]: r["keys"] for r in rows}
    assert all("kernels.cpu" not in keys and "kernels.threads" not in keys
               for keys in shown.values())
    assert sorted(str(k.get("kernels.cpu_capability")) for k in shown.values()) == [
        "AVX2", "AVX2|AVX512", "None"]


# -- reproducible=portable: the same bits under kernel settings that change them --------------
def _losses(tmp: Path, tag: str, env: dict[str, str], *args: str) -> list[list[float]]:
    out = tmp / tag
    tmp.mkdir(parents=True, exist_ok=True)
    result = run_cli(tmp, "experiments.lottery", "train.duration=100it", "train.eval_every=50it",
                     "prune.rounds=1", "prune.controls=[]", "progress=false",
                     "wandb.mode=disabled", f"output_root={out}", *args, env=env, threads=None,
                     timeout=1200)  # two threads on a busy 2-core machine are slow
    assert result.returncode == 0, result.stderr
    (metrics,) = out.glob("*/*/metrics.jsonl")
    return [[r["train_loss"], r["test_loss"], r["test_acc"]]
            for r in map(json.loads, metrics.read_text().splitlines())]


def _pair(tmp: Path, outer: tuple[dict[str, str], dict[str, str]], *args: str) -> list:
    base = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENV}
    return [_losses(tmp, f"{i}", {**base, **env}, *args) for i, env in enumerate(outer)]


# On this project's 2-core AMD EPYC (AVX2), the default network's bits change with ATen's
# capability (default vs AVX2) and with MKL's branch (COMPATIBLE vs its AVX2 default).
EMULATED = ({"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE",
             "OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "2"})


@pytest.mark.slow
@pytest.mark.skipif(not AVX2, reason="portable mode runs ATen's AVX2 kernels: needs AVX2")
def test_portable_gives_the_same_bits_where_default_differs(tmp_path: Path) -> None:
    default = _pair(tmp_path / "default", EMULATED)
    assert default[0] != default[1]  # the pair changes the bits: this test can fail
    portable = _pair(tmp_path / "portable", EMULATED, "reproducible=portable")
    assert portable[0] == portable[1]


@pytest.mark.slow
@pytest.mark.skipif(not AVX512, reason="needs a CPU with AVX-512 (this one has "
                    f"{'AVX2' if AVX2 else 'neither AVX2 nor AVX-512'}): outer "
                    "ATEN_CPU_CAPABILITY=avx2 and avx512 emulate two CPUs there")
def test_portable_on_avx512_gives_avx2_bits(tmp_path: Path) -> None:
    outer = ({"ATEN_CPU_CAPABILITY": "avx2"}, {"ATEN_CPU_CAPABILITY": "avx512"})
    default = _pair(tmp_path / "default", outer)
    assert default[0] != default[1]
    portable = _pair(tmp_path / "portable", outer, "reproducible=portable")
    assert portable[0] == portable[1]


# -- scripts.check_machine ------------------------------------------------------------------
def test_check_machine_compares_every_number_bit_for_bit(tmp_path: Path, capsys) -> None:
    from scripts import check_machine
    from tests.test_damage import stored

    run = stored(tmp_path)
    expected = {"overrides": [], **check_machine.numbers(run)}
    assert len(expected["rows"]) == 3 + 2 * 2  # rounds 0-2, two controls beside rounds 1-2
    path = tmp_path / "expected.json"
    path.write_text(json.dumps(expected))
    assert check_machine.main(["--expected", str(path), "--run-dir", str(run)]) == 0
    assert "every number is identical" in capsys.readouterr().out
    assert check_machine.main(["--expected", str(path), "--run-dir", str(run),
                               "--rounds", "0"]) == 0
    expected["rows"][3]["test_loss"] += 1e-12  # one last bit of one control
    path.write_text(json.dumps(expected))
    assert check_machine.main(["--expected", str(path), "--run-dir", str(run)]) == 1
    out = capsys.readouterr().out
    assert out.count("DIFFERS") == 1 and "1 differ" in out
    assert check_machine.main(["--expected", str(tmp_path / "none.json")]) == 2


def test_committed_portable_numbers_are_complete() -> None:
    from tests.conftest import ROOT

    committed = json.loads((ROOT / "results" / "portable" / "seed0.json").read_text())
    assert "reproducible=portable" in committed["overrides"]
    kinds = {(r["round"], r["kind"]) for r in committed["rows"]}
    rounds = {k for k, _ in kinds}
    assert rounds == set(range(len(rounds))) and len(rounds) >= 2
    for k in rounds - {0}:
        assert {(k, "ticket"), (k, "random_prune"), (k, "random_reinit")} <= kinds
    assert committed["kernels"]["threads"] == 1
    assert committed["kernels"]["env"]["ATEN_CPU_CAPABILITY"] == "avx2"


def test_portable_refuses_more_than_one_thread(monkeypatch) -> None:
    """Portable bits are one thread's: an explicit other count is one ConfigError, at once."""
    from omegaconf import OmegaConf

    from experiments.portable import check_portable
    from lth.errors import ConfigError

    for k, v in PORTABLE_ENV.items():
        monkeypatch.setenv(k, v)
    cfg = OmegaConf.create({"reproducible": "portable", "threads": 2})
    with pytest.raises(ConfigError, match="threads=2 asks for more"):
        check_portable(cfg)
