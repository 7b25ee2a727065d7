"""Targets 1-3 of scripts/benchmark.py: lth's training against hand-written PyTorch loops.

Every variant builds its model, optimizer and (temporary) run store outside the timed span.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lth.data import Dataset
from lth.lottery import Lottery, LotterySettings, ReplicaLottery
from lth.models import LeNet300100
from lth.pruning import PruneRates, apply_mask, full_mask, prune_mask, scheduled_densities
from lth.store import RunStore
from lth.tracking import CurveFileSink
from lth.train import LoopOptions, Span, step_schedule, train
from lth.train.optim import prefer_fused
from scripts.bench_timing import Variant, clock

LENET_LR, LENET_BATCH = 1.2e-3, 60
MakeOptimizer = Callable[..., torch.optim.Optimizer]


def mnist_shaped(n_train: int, n_test: int, device: torch.device, seed: int = 0) -> Dataset:
    """Random MNIST-shaped data: x [N, 1, 28, 28] standard normal, y in 0..9."""
    g = torch.Generator().manual_seed(seed)
    x, xt = torch.randn(n_train, 1, 28, 28, generator=g), torch.randn(n_test, 1, 28, 28,
                                                                       generator=g)
    y, yt = torch.randint(0, 10, (n_train,), generator=g), torch.randint(0, 10, (n_test,),
                                                                         generator=g)
    return Dataset("mnist-shaped", x, y, xt, yt, 10).to(device)


def lenet_adam(fused: bool) -> MakeOptimizer:
    """Adam at the LeNet preset's rate: torch's default kernel, or lth's (fused) choice."""
    adam = functools.partial(torch.optim.Adam, lr=LENET_LR)
    return prefer_fused(adam) if fused else adam


# --- hand-written loops ---------------------------------------------------------------------
def _bare_model(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100),
                         nn.ReLU(), nn.Linear(100, 10)).to(device)


@torch.no_grad()
def _bare_eval(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, x.shape[0], 2048):
        out = model(x[i:i + 2048])
        loss += F.cross_entropy(out, y[i:i + 2048], reduction="sum").item()
        correct += int((out.argmax(1) == y[i:i + 2048]).sum())
    model.train()
    return loss / x.shape[0], correct / x.shape[0]


class _Masked(nn.Module):
    """The parametrization weight = stored * mask (strategy "parametrize")."""

    def __init__(self, m: torch.Tensor) -> None:
        super().__init__()
        self.m = m

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.m


def _masked_pairs(model: nn.Sequential, mask: dict[str, torch.Tensor] | None,
                  strategy: str | None, device: torch.device) -> list:
    """(parameter, float mask) of the bare model's layers, the mask applied (and registered
    as a parametrization for "parametrize"); [] without a strategy."""
    from torch.nn.utils import parametrize

    if strategy is None or mask is None:
        return []
    names = {"1.weight": "fc1.weight", "3.weight": "fc2.weight", "5.weight": "fc3.weight"}
    params = dict(model.named_parameters())
    pairs = [(params[k], mask[v].to(device, torch.float32)) for k, v in names.items()]
    with torch.no_grad():
        torch._foreach_mul_([p for p, _ in pairs], [m for _, m in pairs])
    if strategy == "parametrize":
        for (k, _), (_, m) in zip(names.items(), pairs):
            parametrize.register_parametrization(model[int(k[0])], "weight", _Masked(m))
    return pairs


def bare(data: Dataset, device: torch.device, make_opt: MakeOptimizer,
         eval_every: int = 0, strategy: str | None = None,
         mask: dict[str, torch.Tensor] | None = None,
         checks: dict[str, bool] | None = None) -> Variant:
    """The plain loop: randperm per epoch, x[idx], forward, backward, step.

    With ``strategy`` it also keeps ``mask`` applied, as "grad+param" (gradients masked before
    the step and weights after it), "grad" (gradients only), "param" (weights only: the
    optimizer state of pruned weights revives) or "parametrize" (weight = stored * mask in
    the forward, torch.nn.utils.parametrize). ``checks[strategy]`` records whether pruned
    weights and their Adam state stayed exactly zero.
    """
    def run(n: int) -> tuple[float, float]:
        model = _bare_model(device)
        pairs = _masked_pairs(model, mask, strategy, device)
        opt = make_opt(model.parameters())
        x, y, size = data.x_train, data.y_train, data.x_train.shape[0]
        ipe = size // LENET_BATCH
        start = clock(device)
        for it in range(n):
            i = it % ipe
            if i == 0:
                perm = torch.randperm(size, device=device)
            idx = perm[i * LENET_BATCH:(i + 1) * LENET_BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if strategy in ("grad+param", "grad"):
                torch._foreach_mul_([p.grad for p, _ in pairs], [m for _, m in pairs])
            opt.step()
            if strategy in ("grad+param", "param"):
                with torch.no_grad():
                    torch._foreach_mul_([p for p, _ in pairs], [m for _, m in pairs])
            if eval_every and (it + 1) % eval_every == 0:
                _bare_eval(model, data.x_test, data.y_test)
        end = clock(device)
        if checks is not None and strategy is not None and n > 0:
            checks[strategy] = _zeros_kept(model, opt, pairs, strategy)
        return end[0] - start[0], end[1] - start[1]

    return run


def _zeros_kept(model: nn.Module, opt: torch.optim.Optimizer, pairs: list, strategy: str
                ) -> bool:
    ok = True
    for (p, m), layer in zip(pairs, (1, 3, 5)):
        weight = model[layer].weight  # with parametrize: the effective (masked) weight
        ok &= bool((weight[m == 0] == 0).all())
        for v in opt.state[p].values():
            if torch.is_tensor(v) and v.shape == m.shape:
                ok &= bool((v[m == 0] == 0).all())
    return ok


# --- lth ----------------------------------------------------------------------------------
def sparse_lenet_mask(rounds: int = 7) -> dict[str, torch.Tensor]:
    """An IMP-like mask: LeNet-300-100 layer-wise magnitude pruning after ``rounds`` rounds
    (20%/round, output layer 10%/round; 7 rounds: 21% of fc1/fc2 kept, 48% of the output)."""
    torch.manual_seed(0)
    model = LeNet300100((1, 28, 28), 10)
    weights = {n: p.detach() for n, p in model.named_parameters()}
    rates = {"fc1.weight": 0.2, "fc2.weight": 0.2, "fc3.weight": 0.1}
    return prune_mask(weights, full_mask(model), strategy="magnitude_layerwise", seed=0,
                      densities=scheduled_densities(rates, rounds))


def lth_train(data: Dataset, device: torch.device, make_opt: MakeOptimizer,
              mask: dict[str, torch.Tensor] | None, eval_every: int) -> Variant:
    """``lth.train.train`` on LeNet-300-100 with ``mask`` (None: the dense round's full mask)."""

    def run(n: int) -> tuple[float, float]:
        torch.manual_seed(0)
        model = LeNet300100((1, 28, 28), 10).to(device)
        m = full_mask(model) if mask is None else {k: v.to(device) for k, v in mask.items()}
        apply_mask(model, m)
        opt = make_opt(model.parameters())
        start = clock(device)
        train(model, data, opt, Span(0, n, lambda it: 1.0), batch_size=LENET_BATCH, seed=1, mask=m,
              options=LoopOptions(eval_every=eval_every))
        end = clock(device)
        return end[0] - start[0], end[1] - start[1]

    return run


LotteryFactory = Callable[[int, Path, int, int], Lottery]  # (seed, root, iterations, rounds)


def lottery_round0(make: LotteryFactory, seeds: list[int], device: torch.device) -> Variant:
    """Round 0 of one Lottery per seed, through the driver (checkpoints, evaluation, progress
    bar and a JSONL curve sink included); several seeds train as one ReplicaLottery."""

    def run(n: int) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
            lots = [make(s, Path(tmp) / f"s{s}", n, 0) for s in seeds]
            start = clock(device)
            if len(lots) == 1:
                lots[0].run_round(0)
            else:
                ReplicaLottery(lots).run_round(0)
            end = clock(device)
            for lot in lots:
                lot.sink.close()
        return end[0] - start[0], end[1] - start[1]

    return run


def lenet_lottery(data: Dataset, device: torch.device, eval_every: int,
                  checkpoint_every: int = 0) -> LotteryFactory:
    """LeNet-300-100 as lth runs it: the preset's optimizer, lth's defaults otherwise."""

    def make(seed: int, root: Path, iterations: int, rounds: int) -> Lottery:
        settings = LotterySettings(seed=seed, rounds=rounds, iterations=iterations,
                                   batch_size=LENET_BATCH, rewind_iter=0,
                                   strategy="magnitude_layerwise",
                                   rates=PruneRates(0.2, output=0.1), eval_every=eval_every,
                                   checkpoint_every=checkpoint_every)
        return Lottery(settings, data, lambda: LeNet300100((1, 28, 28), 10), lenet_adam(True),
                       step_schedule([]), RunStore(root), CurveFileSink(root / "curve.jsonl"),
                       device, progress=True)

    return make


def config_lottery(cfg, prep) -> LotteryFactory:  # noqa: ANN001 - DictConfig, Prepared
    """The composed experiment ``cfg`` (see experiments.setup.prepare) with another seed
    and length, without mid-round checkpoints (so both sides of a comparison do the same work)."""
    from experiments.setup import settings_from, with_seed

    def make(seed: int, root: Path, iterations: int, rounds: int) -> Lottery:
        settings = settings_from(with_seed(cfg, seed), prep.iters_per_epoch)
        settings = dataclasses.replace(settings, iterations=iterations, rounds=rounds,
                                       checkpoint_every=0)
        return Lottery(settings, prep.data, prep.make_model, prep.make_optimizer,
                       prep.lr_factor, RunStore(root), CurveFileSink(root / "curve.jsonl"),
                       prep.device, progress=True)

    return make


def replica_fidelity(make: LotteryFactory, seeds: list[int], iterations: int,
                     device: torch.device) -> dict[str, object]:
    """Rounds 0 and 1 of each seed run alone, then all seeds as one ReplicaLottery: wall times,
    and how far the replicas' files are from the single runs' (init, round-1 masks, accuracy)."""
    out: dict[str, object] = {"seeds": seeds, "iterations": iterations}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        singles = [make(s, Path(tmp) / "single" / f"s{s}", iterations, 1) for s in seeds]
        start = clock(device)
        for lot in singles:
            lot.run()
        out["sequential_wall_s"] = round(clock(device)[0] - start[0], 2)
        group = [make(s, Path(tmp) / "group" / f"s{s}", iterations, 1) for s in seeds]
        start = clock(device)
        ReplicaLottery(group).run()
        out["replicas_wall_s"] = round(clock(device)[0] - start[0], 2)
        init_same, agree, acc_single, acc_group = [], [], [], []
        for a, b in ((x.store, y.store) for x, y in zip(singles, group)):
            ia, ib = a.load_tensors(a.init_path), b.load_tensors(b.init_path)
            init_same.append(all(torch.equal(ia[n], ib[n]) for n in ia))
            ma, mb = a.load_tensors(a.mask_path(1)), b.load_tensors(b.mask_path(1))
            agree.append(sum(int((ma[n] == mb[n]).sum()) for n in ma)
                         / sum(m.numel() for m in ma.values()))
            acc_single.append([r["test_acc"] for r in a.read_metrics()])
            acc_group.append([r["test_acc"] for r in b.read_metrics()])
        for lot in singles + group:
            lot.sink.close()
    out.update(init_identical=all(init_same), round1_mask_agreement=agree,
               min_round1_mask_agreement=min(agree), test_acc_single=acc_single,
               test_acc_replicas=acc_group,
               max_abs_test_acc_diff=max(abs(x - y) for a, b in zip(acc_single, acc_group)
                                         for x, y in zip(a, b)))
    return out
