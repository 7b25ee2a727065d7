"""What decides the bits of a training: the kernels torch runs, and the portable pinning of them.

``kernel_facts()`` reads what selects the kernels on this machine: the torch build (CPU or CUDA
wheel), the CPU model and the widest vector ISA it has, ATen's CPU capability (the vectorised
kernels it dispatches to), the BLAS and oneDNN builds, the intra-op thread count, compile and
deterministic mode, and the environment variables that change kernels. They are recorded in
run.json with each round; ``differing()`` lists the facts in which two records differ.

``reproducible=portable`` pins the kernels before torch loads (``pin_portable``): ATen's AVX2
kernels, MKL's conditional numerical reproducibility on its AVX2 branch (strict), oneDNN capped
at AVX2, one thread. Measured on this project's machines: the same config then gives the same
bits under every kernel setting that changes them without it (docs/reproducibility.md says how
far that goes and what it costs). Torch-free at import: the pinning must precede torch.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

from lth.errors import ConfigError

# Environment variables that change which kernels run (or how they round and reduce).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE",
              "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "ONEDNN_DEFAULT_FPMATH_MODE",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG",
              "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE")
# reproducible=portable: every x86-64 CPU with AVX2 (Intel since 2013, AMD since 2015) runs
# the same instructions in the same order. Variables that would pick other kernels are unset.
PORTABLE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",     # ATen's vectorised kernels: AVX2 even on AVX-512
    "MKL_CBWR": "AVX2,STRICT",         # MKL's reproducible AVX2 branch, strict mode
    "ONEDNN_MAX_CPU_ISA": "AVX2",      # oneDNN (convolutions) capped at AVX2
    "OMP_NUM_THREADS": "1",            # one thread: reductions split the same way everywhere
    "MKL_NUM_THREADS": "1",
}
PORTABLE_UNSET = ("MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "DNNL_MAX_CPU_ISA",
                  "ONEDNN_DEFAULT_FPMATH_MODE")
MODES = ("default", "portable")


def check_mode(mode: str) -> None:
    """ConfigError unless ``mode`` is a value of ``reproducible``."""
    if mode not in MODES:
        raise ConfigError(f"reproducible={mode!r} is unknown: use default (this machine's "
                          "fastest kernels) or portable (the same bits on any x86-64 CPU "
                          "with AVX2)")


def is_pinned(environ: Mapping[str, str]) -> bool:
    """Whether ``environ`` holds the portable kernel settings."""
    return all(environ.get(k) == v for k, v in PORTABLE_ENV.items()) and not any(
        k in environ for k in PORTABLE_UNSET)


def pin_portable(environ: MutableMapping[str, str] | None = None,
                 torch_loaded: bool | None = None) -> None:
    """Set the portable kernel settings in ``environ`` (default: this process's) before torch
    loads; ConfigError if torch is loaded already (``torch_loaded``, default: whether this
    process imported it) under other settings: a sweep mixing ``reproducible`` values in one
    process, or a script that imported torch first."""
    env = os.environ if environ is None else environ
    if is_pinned(env):
        return
    if "torch" in sys.modules if torch_loaded is None else torch_loaded:
        raise ConfigError("reproducible=portable pins the kernels before torch loads, and "
                          "torch is loaded in this process already: run it in a process of "
                          "its own (or set reproducible=portable for every job of the sweep)")
    for key in PORTABLE_UNSET:
        env.pop(key, None)
    env.update(PORTABLE_ENV)


def check_pinned() -> None:
    """After torch loaded under ``pin_portable``: one thread, and ATen on its AVX2 kernels
    (ConfigError on a CPU without AVX2, where they cannot run)."""
    import torch

    torch.set_num_threads(1)
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "AVX2":
        raise ConfigError(f"reproducible=portable runs ATen's AVX2 kernels, and this CPU "
                          f"offers {capability}: use reproducible=default here (its numbers "
                          "are this machine's)")


def _cpuinfo() -> tuple[str, str]:
    """(CPU model, widest vector ISA) from /proc/cpuinfo; the platform's names elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), "unknown"
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(flags[1].split()) if flags else set()
    isa = next((name for flag, name in (("avx512f", "avx512"), ("avx2", "avx2"),
                                         ("avx", "avx"), ("sse4_2", "sse4.2")) if flag in have),
               "unknown")
    return (model[1].strip() if model else platform.machine()), isa


@functools.lru_cache(maxsize=1)
def _static_facts() -> dict[str, str]:
    """The facts that cannot change within a process: build, CPU, libraries."""
    import torch

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    dnnl = re.search(r"MKL-DNN v([\w.]+)", config)
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    cpu, isa = _cpuinfo()
    return {
        "build": f"cuda {torch.version.cuda}" if torch.version.cuda else "cpu",
        "cpu": cpu, "cpu_isa": isa,
        "blas": (f"mkl {mkl[1]}" if mkl else blas[1] if blas else "unknown"),
        "onednn": dnnl[1] if dnnl else "none",
    }


def kernel_facts(device: str = "cpu", compile: bool = False,
                 deterministic: bool = False) -> dict[str, Any]:
    """What selects the kernels of a training on ``device`` (``cpu``, ``cuda``, ``cuda:1``)
    in this process, as plain data for run.json."""
    import torch

    facts: dict[str, Any] = {**_static_facts(),
                             "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                             "threads": torch.get_num_threads(), "device": device}
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["gpu"] = torch.cuda.get_device_name(torch.device(device))
    facts.update(compile=bool(compile), deterministic=bool(deterministic),
                 env={k: os.environ[k] for k in KERNEL_ENV if k in os.environ})
    return facts


def differing(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``fact stored -> current`` for each fact (an environment variable counts as one) in
    which two kernel records differ; facts a record lacks are not compared."""
    out = []
    for key in sorted(set(stored) & set(current) - {"env"}):
        if stored[key] != current[key]:
            out.append(f"{key} {stored[key]} -> {current[key]}")
    old, new = stored.get("env"), current.get("env")
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                out.append(f"{key} {old.get(key, 'unset')} -> {new.get(key, 'unset')}")
    return out
