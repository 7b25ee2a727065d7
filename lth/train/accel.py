"""How a training step runs on the hardware: precision, compilation, determinism, layout.

None of it changes what is trained, only how the arithmetic is done. The default (fp32, no
compile, CPU) is the plain loop, bit for bit. Pruned weights stay exactly zero under every
precision: the loop zeroes their gradients after the GradScaler has unscaled them and before
the optimizer steps (a skipped fp16 step changes nothing), so neither the scaler nor a fused
optimizer kernel can revive them.

- ``bf16``: autocast to bfloat16 (CPU and CUDA), no scaler (bf16 has fp32's exponent range);
- ``fp16``: autocast to float16 with a GradScaler (its scale is part of the checkpoint);
- ``compile``: ``torch.compile`` of the model's forward (the backward follows through
  AOTAutograd); parameters stay the model's own, so masks and optimizers see them unchanged;
- ``deterministic``: ``torch.use_deterministic_algorithms(True)`` and the cuBLAS workspace
  setting it needs, cudnn.benchmark off; otherwise cudnn.benchmark on (CUDA);
- channels_last memory format for conv nets on CUDA (where the tensor cores want it).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Accel:
    """The hardware options of a run (``train.precision``, ``train.compile``,
    ``deterministic``)."""

    precision: str = "fp32"
    compile: bool = False
    deterministic: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision} is unknown; choose one of "
                              f"{', '.join(PRECISIONS)}")

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None: fp32, no autocast)."""
        return PRECISIONS[self.precision]

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast context of a forward pass (a no-op for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def scaler(self, device: torch.device) -> torch.amp.GradScaler | None:
        """A GradScaler for fp16, else None."""
        if self.precision != "fp16":
            return None
        return torch.amp.GradScaler(device.type)


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """Deterministic algorithms (and the cuBLAS workspace they need) or cudnn.benchmark.

    CUBLAS_WORKSPACE_CONFIG must be set before cuBLAS starts; setting it here, before the
    first CUDA matmul of the process, is early enough.
    """
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic


def has_conv(model: nn.Module) -> bool:
    """Whether ``model`` has a 2-d convolution (where channels_last pays off)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def forward_of(model: nn.Module, accel: Accel) -> Callable[[torch.Tensor], torch.Tensor]:
    """The function a step calls: the model itself, or its compiled forward."""
    if not accel.compile:
        return model
    return torch.compile(model)


def check_compile() -> None:
    """ConfigError in one line if torch.compile cannot compile here (no compiler, Python
    version, platform): probed on a tiny function, before anything is stored."""
    try:
        fn = torch.compile(lambda x: torch.relu(x) * 2)
        fn(torch.ones(2))
    except Exception as e:  # inductor fails in many ways: no C compiler, triton, platform
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise ConfigError(f"train.compile=true but torch.compile is unavailable here "
                          f"({reason}): set train.compile=false") from None


NONDETERMINISTIC = "does not have a deterministic implementation"


@contextlib.contextmanager
def deterministic_errors(device: torch.device) -> Iterator[None]:
    """Turn torch's "no deterministic implementation" RuntimeError into one ConfigError."""
    try:
        yield
    except RuntimeError as e:
        text = str(e)
        if NONDETERMINISTIC not in text:
            raise
        op = text.split(NONDETERMINISTIC)[0].strip() or "an operation"
        raise ConfigError(f"deterministic=true but {op} has no deterministic implementation "
                          f"on {device.type}: set deterministic=false or choose another "
                          "model") from None


def check_accel(accel: Accel, device: torch.device, model: nn.Module, x: torch.Tensor,
                y: torch.Tensor) -> None:
    """ConfigError in one line, before anything is stored, for options this machine or
    ``model`` cannot run: compile unavailable, bf16 on a GPU without it, and (with
    ``deterministic``) an op without a deterministic kernel in one training step on x, y."""
    if accel.compile:
        check_compile()
    if accel.precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("train.precision=bf16 but this GPU has no bfloat16: use "
                          "train.precision=fp16")
    configure_backends(device, accel.deterministic)
    if accel.deterministic:
        model = model.to(device).train()
        with deterministic_errors(device), accel.autocast(device):
            loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        with deterministic_errors(device):
            loss.backward()
