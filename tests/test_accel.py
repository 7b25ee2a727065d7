"""Precision, compile and determinism of the training step (lth.train.accel), on CPU; the
same on CUDA under the ``gpu`` marker."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from lth.data import BatchIterator
from lth.errors import ConfigError
from lth.pruning import full_mask, prune_mask
from lth.store import RunStore
from lth.train.accel import Accel, check_accel, check_compile
from lth.train.loop import SingleStepper
from tests.conftest import TinyMLP, make_blobs, run_cli
from tests.test_resume import assert_same_run, crash_at, make

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def pruned_stepper(precision: str, device: str = "cpu", opt: str = "sgd",
                   compile: bool = False, init_scale: float = 2.0 ** 16):
    """A TinyMLP pruned to 30% density, its stepper and mask (weights trained 5 steps first,
    so the mask prunes weights that had gradients)."""
    torch.manual_seed(0)
    data = make_blobs().to(torch.device(device))
    model = TinyMLP().to(device)
    mask = prune_mask({n: p.detach() for n, p in model.named_parameters()}, full_mask(model),
                      strategy="magnitude_global", densities={n: 0.3 for n in full_mask(model)},
                      seed=0)
    if opt == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3,
                                     fused=opt == "fused_adam")
    accel = Accel(precision, compile)
    scaler = None
    if precision == "fp16":
        scaler = torch.amp.GradScaler(torch.device(device).type, init_scale=init_scale)
    batches = BatchIterator(data.x_train, data.y_train, 32, 0)
    return SingleStepper(model, optimizer, batches, mask, accel, scaler), mask


def assert_pruned_zero(stepper: SingleStepper, mask) -> None:
    for name, p in stepper.model.named_parameters():
        if name in mask:
            assert torch.count_nonzero(p.detach()[~mask[name]]) == 0, name
            for value in stepper.optimizer.state.get(p, {}).values():
                if torch.is_tensor(value) and value.shape == p.shape:
                    assert torch.count_nonzero(value[~mask[name]]) == 0, name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "fused_adam"])
def test_autocast_keeps_pruned_weights_exactly_zero(precision: str, opt: str) -> None:
    stepper, mask = pruned_stepper(precision, opt=opt)
    before = {n: p.detach().clone() for n, p in stepper.model.named_parameters()}
    for it in range(30):
        stepper.step(it, 1.0)
    assert_pruned_zero(stepper, mask)
    moved = [n for n, p in stepper.model.named_parameters() if not torch.equal(p, before[n])]
    assert moved, "nothing trained: the test could not fail"


def test_fp16_skipped_steps_revive_nothing() -> None:
    """A huge initial scale overflows the first steps (inf gradients, steps skipped): the
    pruned weights stay zero and the scale backs off."""
    stepper, mask = pruned_stepper("fp16", opt="adam", init_scale=2.0 ** 120)
    for it in range(20):
        stepper.step(it, 1.0)
    assert stepper.scaler.get_scale() < 2.0 ** 120  # some steps were skipped
    assert_pruned_zero(stepper, mask)


def test_fp16_resume_restores_the_scaler_bit_identically(tmp_path: Path, monkeypatch) -> None:
    """A round killed after its checkpoint resumes to the uninterrupted run's files (the
    GradScaler's scale and growth tracker are part of the checkpoint)."""
    fp16 = Accel("fp16")
    plain = dataclasses.replace(make(tmp_path / "a", adam=True), accel=fp16)
    plain.run()
    crash_at(monkeypatch, "checkpoint:1:20")
    broken = dataclasses.replace(make(tmp_path / "b", adam=True), accel=fp16)
    with pytest.raises(BaseException, match="checkpoint:1:20"):
        broken.run()
    ckpt = RunStore(tmp_path / "b").load(RunStore(tmp_path / "b").checkpoint_path(1), "")
    assert "grad_scaler" in ckpt["optimizer"]
    monkeypatch.undo()
    dataclasses.replace(make(tmp_path / "b", adam=True), accel=fp16).run()
    assert_same_run(RunStore(tmp_path / "a"), RunStore(tmp_path / "b"), 2)


def test_bf16_changes_the_arithmetic() -> None:
    """bf16 really runs in bfloat16 (its loss differs from fp32's): the tests above test it."""
    fp32, _ = pruned_stepper("fp32")
    bf16, _ = pruned_stepper("bf16")
    assert not torch.equal(fp32.step(0, 1.0), bf16.step(0, 1.0))


def test_unknown_precision_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="train.precision=fp8 is unknown"):
        Accel("fp8")


def _compile_works() -> str | None:
    try:
        check_compile()
    except ConfigError as e:
        return str(e)
    return None


@pytest.mark.slow  # compiling takes 10-40 s on a small shared CPU
def test_compile_trains_like_eager_and_keeps_the_mask() -> None:
    reason = _compile_works()
    if reason:
        pytest.skip(reason)
    eager, mask = pruned_stepper("fp32")
    compiled, _ = pruned_stepper("fp32", compile=True)
    for it in range(5):
        a, b = eager.step(it, 1.0), compiled.step(it, 1.0)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert_pruned_zero(compiled, mask)
    for (_, p), (_, q) in zip(eager.model.named_parameters(), compiled.model.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)


class PutNet(nn.Module):
    """A model whose forward uses ``put_`` (no deterministic CPU kernel): the bad input of
    ``deterministic=true``."""

    def __init__(self, input_shape, num_classes: int, **_: object) -> None:
        super().__init__()
        size = 1
        for d in input_shape:
            size *= d
        self.fc = nn.Linear(size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.fc(x.flatten(1))
        return out + torch.zeros_like(out).put_(torch.tensor([0], device=x.device),
                                                torch.zeros(1, device=x.device))


def test_deterministic_rejects_a_nondeterministic_op() -> None:
    data = make_blobs()
    try:
        with pytest.raises(ConfigError, match="deterministic=true but put_ has no"):
            check_accel(Accel(deterministic=True), torch.device("cpu"), PutNet([20], 4),
                        data.x_train[:2], data.y_train[:2])
    finally:
        torch.use_deterministic_algorithms(False)
    check_accel(Accel(), torch.device("cpu"), PutNet([20], 4), data.x_train[:2],
                data.y_train[:2])  # without deterministic=true the model is fine


def _cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_cli(tmp_path, "experiments.lottery", "experiment=mnist1d_mlp",
                   f"output_root={tmp_path / 'runs'}", "wandb.mode=disabled", "progress=false",
                   "train.duration=20it", "prune.rounds=0", "dataset.num_samples=1200",
                   *overrides, threads=None)


@pytest.mark.parametrize("overrides, message", [
    (["train.precision=fp8"], "error: train.precision=fp8 is unknown; choose one of fp32"),
    (["replicas=2", "train.precision=fp16"], "error: replicas > 1 cannot train in fp16"),
    (["deterministic=true", "model._target_=tests.test_accel.PutNet"],
     "error: deterministic=true but put_ has no deterministic implementation on cpu"),
])
def test_bad_accel_input_is_one_line_exit_2(tmp_path: Path, overrides, message) -> None:
    result = _cli(tmp_path, *overrides)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(message), result.stderr
    assert not list((tmp_path / "runs").glob("*/*/config.yaml"))  # nothing stored


# -- CUDA ----------------------------------------------------------------------------------
@CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_precisions_keep_pruned_weights_exactly_zero(precision: str) -> None:
    stepper, mask = pruned_stepper(precision, device="cuda", opt="fused_adam")
    for it in range(30):
        stepper.step(it, 1.0)
    assert_pruned_zero(stepper, mask)


@CUDA
@pytest.mark.gpu
def test_cuda_deterministic_resume_is_bit_identical(tmp_path: Path, monkeypatch) -> None:
    from lth.lottery import Lottery

    def on_cuda(root: Path) -> Lottery:
        lottery = make(root, adam=True)
        return dataclasses.replace(lottery, data=lottery.data.to(torch.device("cuda")),
                                   device=torch.device("cuda"),
                                   accel=Accel("bf16", deterministic=True))

    x, y = torch.randn(2, 20, device="cuda"), torch.zeros(2, dtype=torch.long, device="cuda")
    check_accel(Accel(deterministic=True), torch.device("cuda"), TinyMLP().cuda(), x, y)
    try:
        on_cuda(tmp_path / "a").run()
        crash_at(monkeypatch, "checkpoint:1:20")
        with pytest.raises(BaseException, match="checkpoint:1:20"):
            on_cuda(tmp_path / "b").run()
        monkeypatch.undo()
        on_cuda(tmp_path / "b").run()
    finally:
        torch.use_deterministic_algorithms(False)
    assert_same_run(RunStore(tmp_path / "a"), RunStore(tmp_path / "b"), 2)

