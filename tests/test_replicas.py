"""replicas: K seeds trained together match K single runs; masks hold; unsupported is refused."""

from __future__ import annotations

import copy
import functools
import subprocess

import pytest
import torch
from torch import nn

from experiments.setup import to_dict
from lth.data import BatchIterator, Dataset, StackedBatches
from lth.errors import ConfigError
from lth.lottery import Lottery, ReplicaLottery
from lth.models import CNN1D, MLP
from lth.pruning import PruneRates, full_mask
from lth.store import RunStore, config_hash
from lth.train import LoopOptions, Span, train
from lth.train.accel import Accel
from lth.train.replicas import ReplicaStepper, check_replicable, train_replicas
from tests.conftest import PYTHON, cli_env, make_blobs, make_lottery
from tests.test_config import compose_with

SEEDS = [11, 12, 13]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("augment", [False, True])
def test_stacked_batches_are_the_single_iterators_batches(augment: bool) -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 2, 6, 6, generator=g), torch.arange(50)
    stacked = StackedBatches(x, y, 8, SEEDS, augment=augment)
    singles = [BatchIterator(x, y, 8, s, augment=augment) for s in SEEDS]
    for it in (0, 1, 5, 6, 7, 20):
        xs, ys = stacked.batch(it)
        assert xs.shape == (3, 8, 2, 6, 6) and ys.shape == (24,)
        for k, single in enumerate(singles):
            xb, yb = single.batch(it)
            assert torch.equal(xs[k], xb) and torch.equal(ys[8 * k: 8 * k + 8], yb)


def sparse_masks(model: nn.Module) -> list[dict[str, torch.Tensor]]:
    out = []
    for k in range(len(SEEDS)):
        g = torch.Generator().manual_seed(100 + k)
        out.append({n: torch.rand(m.shape, generator=g) < 0.4 for n, m in
                    full_mask(model).items()})
    return out


def blobs_1d() -> Dataset:
    d = make_blobs(n_train=192, n_test=64, dim=24, val=32)
    shape = lambda t: t.view(t.shape[0], 1, 24)  # noqa: E731 - (C, L) for CNN1D
    return Dataset("blobs1d", shape(d.x_train), d.y_train, shape(d.x_test), d.y_test, 4,
                   x_val=shape(d.x_val), y_val=d.y_val)


MODELS = {
    "mlp": lambda: MLP((1, 24), 4, hidden=(32, 16)),  # the baddbmm fast path
    # the fast path with the notebook's skip connection (h = h + relu(fc2 h))
    "mlp_residual": lambda: MLP((1, 24), 4, hidden=(16, 16), residual=True, init="pytorch"),
    "cnn1d": lambda: CNN1D((1, 24), 4, channels=(6, 8)),  # the generic vmap path
}
OPTIMIZERS = {  # fused: one direct kernel call per step; unfused: optimizer.step() on views
    "adam_fused": functools.partial(torch.optim.Adam, lr=1e-2, weight_decay=1e-3, fused=True),
    "adamw_fused_amsgrad": functools.partial(torch.optim.AdamW, lr=1e-2, amsgrad=True,
                                             fused=True),
    "sgd_fused": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, dampening=0.1,
                                   weight_decay=1e-3, fused=True),
    "sgd_nesterov": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True,
                                      weight_decay=1e-3),
}


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_replicas_match_single_runs(model_name: str, opt_name: str) -> None:
    data, make, opt = blobs_1d(), MODELS[model_name], OPTIMIZERS[opt_name]

    def fresh(k: int) -> nn.Module:
        torch.manual_seed(k)
        return make()

    masks = sparse_masks(fresh(0))
    span = Span(0, 30, lambda it: 0.5 ** (it // 20))
    kw = dict(batch_size=32, options=LoopOptions(eval_every=10))
    singles = []
    for k, seed in enumerate(SEEDS):
        model = fresh(k)
        singles.append((model, train(model, data, opt(model.parameters()), span, seed=seed,
                                     mask=masks[k], **kw)))
    models = [fresh(k) for k in range(len(SEEDS))]
    seen: list[int] = []
    results = train_replicas(models, data, opt, span, seeds=SEEDS, masks=masks,
                             hooks={5: lambda ms: seen.append(len(ms))}, **kw)
    assert seen == [3]
    for k, (model, single) in enumerate(singles):
        for (n, p), q in zip(model.named_parameters(), models[k].parameters()):
            # Batched kernels (baddbmm, vmap) may round differently from the single run's in
            # the last bit, depending on the CPU: close, not always equal (see the module doc).
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5), (k, n)
            if n in masks[k]:
                assert bool((q[~masks[k][n]] == 0).all()), f"pruned weights of {n} moved"
        got = results[k]
        assert [p["iter"] for p in got.evals] == [p["iter"] for p in single.evals]
        for a, b in zip(got.evals, single.evals):
            assert a.keys() == b.keys()
            assert a["test/acc"] == pytest.approx(b["test/acc"], abs=1 / 64 + 1e-9)
            assert a["val/acc"] == pytest.approx(b["val/acc"], abs=1 / 32 + 1e-9)
            for key in ("test/loss", "val/loss"):
                assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-6), key
        assert got.test_acc == pytest.approx(single.test_acc, abs=1 / 64 + 1e-9)
        # The logged mean loss is summed in another order: equal to ~1e-7.
        assert got.train_loss == pytest.approx(single.train_loss, rel=1e-3)
        assert got.val_acc is not None


def test_replicas_refuse_dropout_models_and_fp16() -> None:
    with pytest.raises(ConfigError, match="replicas > 1 supports models without dropout"):
        check_replicable(nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)))
    data = make_blobs(dim=20)
    models = [MLP((20,), 4, hidden=(8,)) for _ in range(2)]
    with pytest.raises(ConfigError, match="GradScaler .* use train.precision=bf16"):
        train_replicas(models, data, functools.partial(torch.optim.Adam, lr=0.1),
                       Span(0, 2, lambda it: 1.0), batch_size=8, seeds=[0, 1],
                       accel=Accel("fp16"))


def test_replicas_train_other_optimizers_as_single_runs_keeping_pruned_weights_zero() -> None:
    """RMSprop could move a weight whose gradient is zero: replicas re-mask after each step,
    as a single run does, and match the single runs."""
    data = make_blobs(dim=20)
    make = functools.partial(torch.optim.RMSprop, lr=1e-2, momentum=0.9)
    base = [MLP((20,), 4, hidden=(8,)) for _ in range(2)]
    masks = [{n: torch.rand(p.shape, generator=torch.Generator().manual_seed(j)) > 0.5
              for n, p in m.named_parameters() if n.endswith("weight")}
             for j, m in enumerate(base)]
    singles = [copy.deepcopy(m) for m in base]
    span = Span(0, 20, lambda it: 1.0)
    train_replicas(base, data, make, span, batch_size=8, seeds=[0, 1], masks=masks)
    for j, (model, mask) in enumerate(zip(singles, masks)):
        train(model, data, make(model.parameters()), span, batch_size=8, seed=j, mask=mask)
        for n, m in mask.items():
            got = dict(base[j].named_parameters())[n]
            assert bool((got[~m] == 0).all())
            torch.testing.assert_close(got, dict(model.named_parameters())[n], rtol=1e-4,
                                       atol=1e-5)


# --- the multi-seed lottery -------------------------------------------------------------------

def lottery_for(root, seed: int, make_model, rounds: int = 1):
    return make_lottery(root / f"s{seed}", data=DATA, model=make_model,
                        optimizer=functools.partial(torch.optim.Adam, lr=5e-3, fused=True),
                        milestones=[40], seed=seed, rounds=rounds, iterations=60,
                        rewind_iter=10, rates=PruneRates(0.5))


DATA = make_blobs(n_train=256, n_test=128, dim=20, val=64)
LOTTERY_MODELS = {"lth_mlp": lambda: MLP((20,), 4, hidden=(48, 24)),
                  "other": lambda: nn.Sequential(nn.Linear(20, 48), nn.ReLU(),
                                                 nn.Linear(48, 4))}


@pytest.mark.parametrize("model_name", sorted(LOTTERY_MODELS))
def test_replica_lottery_matches_single_seed_lotteries(tmp_path, model_name: str) -> None:
    make = LOTTERY_MODELS[model_name]
    seeds = [3, 4, 5]
    singles = [lottery_for(tmp_path / "single", s, make) for s in seeds]
    for lot in singles:
        lot.run()
    group = ReplicaLottery([lottery_for(tmp_path / "group", s, make) for s in seeds])
    seen = []
    records = group.run(on_round=lambda i, r: seen.append((i, r["round"])))
    assert seen == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1)]
    agree = []
    for single, lot, recs in zip(singles, group.lotteries, records):
        a, b = single.store, lot.store
        names = sorted(p.relative_to(a.root) for p in a.root.rglob("*") if p.is_file())
        assert names == sorted(p.relative_to(b.root) for p in b.root.rglob("*") if p.is_file())
        for path in (a.init_path, a.mask_path(0)):  # the same init, exactly
            x, y = a.load_tensors(path), b.load_tensors(b.root / path.relative_to(a.root))
            assert all(torch.equal(x[n], y[n]) for n in x)
        for n, m in a.load_tensors(a.mask_path(1)).items():
            agree.append((m == b.load_tensors(b.mask_path(1))[n]).float().mean().item())
        final = b.load_tensors(b.final_path(1))
        for n, m in b.load_tensors(b.mask_path(1)).items():
            assert bool((final[n][~m] == 0).all())
        for r_single, r_group in zip(single.store.read_metrics(), recs):
            assert r_group["density"] == r_single["density"]  # the schedule, exactly
            assert r_group["remaining"] == r_single["remaining"]
            assert r_group["test_acc"] == pytest.approx(r_single["test_acc"], abs=2 / 128)
            assert r_group["val_loss"] == pytest.approx(r_single["val_loss"], rel=1e-2)
    # Round-0 weights may differ in the last bits (batched kernels, see lth.train.replicas);
    # magnitudes rank alike but for the rare near-tie at the pruning threshold.
    assert min(agree) >= 0.995, agree


def test_replica_lottery_runs_only_what_each_seed_lacks(tmp_path) -> None:
    make = LOTTERY_MODELS["lth_mlp"]
    lottery_for(tmp_path, 1, make, rounds=1).run()  # seed 1 has rounds 0 and 1 already
    group = ReplicaLottery([lottery_for(tmp_path, s, make, rounds=1) for s in (0, 1)])
    ran = []
    group.run(on_round=lambda i, r: ran.append((i, r["round"])))
    assert ran == [(0, 0), (0, 1)]
    assert group.pending_rounds() == []


# --- the CLI ------------------------------------------------------------------------------------

def test_cli_replicas_write_the_single_seed_run_directories(tmp_path) -> None:
    tiny = ["experiment=mnist1d_mlp", "train.duration=60it", "train.eval_every=30it",
            "prune.rounds=1",
            "dataset.num_samples=600", "dataset.val_size=100", "progress=false",
            "wandb.mode=disabled", f"output_root={tmp_path / 'runs'}"]

    def cli(*overrides: str) -> list[str]:
        out = subprocess.run([PYTHON, "-m", "experiments.lottery", *tiny, *overrides],
                             cwd=tmp_path, env={**cli_env(tmp_path), "OMP_NUM_THREADS": "1"},
                             capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        return [ln.removeprefix("run directory: ") for ln in out.stdout.splitlines()
                if ln.startswith("run directory: ")]

    group = cli("seed=3", "replicas=2")
    expected = [config_hash(to_dict(compose_with([*tiny, f"seed={s}"]))) for s in (3, 4)]
    assert [p.rsplit("/", 1)[1] for p in group] == expected
    single = cli("seed=4", "output_root=" + str(tmp_path / "single"))
    assert single[0].rsplit("/", 1)[1] == expected[1]
    a, b = RunStore(single[0]), RunStore(group[1])
    assert "seed: 4" in b.config_path.read_text()
    x, y = a.load_tensors(a.init_path), b.load_tensors(b.init_path)
    assert all(torch.equal(x[n], y[n]) for n in x)
    ma, mb = a.load_tensors(a.mask_path(0)), b.load_tensors(b.mask_path(0))
    assert all(torch.equal(ma[n], mb[n]) for n in ma)
    ma, mb = a.load_tensors(a.mask_path(1)), b.load_tensors(b.mask_path(1))
    agree = [(ma[n] == mb[n]).float().mean().item() for n in ma]  # near-ties may differ
    assert min(agree) >= 0.995, agree
    ra, rb = a.read_metrics(), b.read_metrics()
    assert len(ra) == len(rb) == 2
    for x, y in zip(ra, rb):
        assert x["density"] == y["density"] and x["remaining"] == y["remaining"]
        assert x["test_acc"] == pytest.approx(y["test_acc"], abs=0.02)


def test_config_hash_ignores_replicas() -> None:
    assert config_hash(to_dict(compose_with(["replicas=4"]))) == config_hash(
        to_dict(compose_with([])))


# --- mid-round checkpoints and resume ---------------------------------------------------------

class Crash(BaseException):
    """Stands in for SIGKILL in-process."""


RESUME_OPTIMIZERS = {  # the direct fused-kernel paths and optimizer.step() on views
    "adam_fused": functools.partial(torch.optim.Adam, lr=5e-3, fused=True),
    "adamw_fused_amsgrad": functools.partial(torch.optim.AdamW, lr=5e-3, amsgrad=True,
                                             fused=True),
    "sgd_fused": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9, fused=True),
    "sgd": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
}


def resumable_lottery(root, seed: int, opt: str = "adam_fused") -> Lottery:
    return make_lottery(root / f"s{seed}", data=DATA, model=LOTTERY_MODELS["lth_mlp"],
                        optimizer=RESUME_OPTIMIZERS[opt], milestones=[40], seed=seed, rounds=1,
                        iterations=60, rewind_iter=10, rates=PruneRates(0.5),
                        checkpoint_every=15)


def resumable_group(root, seeds=(3, 4), opt: str = "adam_fused") -> ReplicaLottery:
    return ReplicaLottery([resumable_lottery(root, s, opt) for s in seeds])


def crash_replicas_at(monkeypatch, point: str) -> None:
    import lth.lottery.span as replica_module

    def kill_point(name: str) -> None:
        if name == point:
            raise Crash(name)

    monkeypatch.setattr(replica_module, "kill_point", kill_point)


def killed_run(tmp_path, monkeypatch, point: str, opt: str = "adam_fused") -> ReplicaLottery:
    """The group's uninterrupted run under ``ref/``; the same run killed at ``point`` under
    ``run/`` (the kill point disarmed again)."""
    reference = resumable_group(tmp_path / "ref", opt=opt)
    reference.run()
    crash_replicas_at(monkeypatch, point)
    with pytest.raises(Crash):
        resumable_group(tmp_path / "run", opt=opt).run()
    monkeypatch.undo()
    return reference


def same_runs(a: ReplicaLottery, b: ReplicaLottery) -> None:
    drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    for x, y in zip(a.lotteries, b.lotteries):
        assert drop(x.store.read_metrics()) == drop(y.store.read_metrics())
        for k in (0, 1):
            fx, fy = x.store.load_tensors(x.store.final_path(k)), y.store.load_tensors(
                y.store.final_path(k))
            assert all(torch.equal(fx[n], fy[n]) for n in fx), k
            assert x.store.curve_path(k).read_text() == y.store.curve_path(k).read_text()


@pytest.mark.parametrize("opt,point", [("adam_fused", "checkpoint:0:45"),
                                       ("adamw_fused_amsgrad", "checkpoint:1:30"),
                                       ("sgd_fused", "checkpoint:0:15"),
                                       ("sgd", "checkpoint:1:30")])
def test_replicas_resume_mid_round_bit_identically(tmp_path, monkeypatch, opt: str,
                                                   point: str) -> None:
    reference = killed_run(tmp_path, monkeypatch, point, opt)
    group = resumable_group(tmp_path / "run", opt=opt)
    k = int(point.split(":")[1])
    assert all(lot.store.checkpoint_path(k).exists() for lot in group.lotteries)
    group.run()
    same_runs(reference, group)
    assert not list(tmp_path.rglob("checkpoint.pt*")), "checkpoints are removed once complete"


def test_a_partial_set_of_replica_checkpoints_restarts_the_round(tmp_path, monkeypatch) -> None:
    """A kill between the K checkpoint writes leaves some seeds without one: the round starts
    again for all (and still ends as the uninterrupted run does)."""
    reference = killed_run(tmp_path, monkeypatch, "checkpoint:1:30")
    group = resumable_group(tmp_path / "run")
    group.lotteries[1].store.remove(group.lotteries[1].store.checkpoint_path(1))
    resumed: list = []
    real = ReplicaStepper.load_optimizer_states
    monkeypatch.setattr(ReplicaStepper, "load_optimizer_states",
                        lambda self, states: resumed.append(1) or real(self, states))
    group.run()
    assert resumed == [], "a partial set must not be resumed"
    same_runs(reference, group)
    assert not list(tmp_path.rglob("checkpoint.pt*"))


def test_the_replica_resume_test_fails_without_the_optimizer_restore(tmp_path,
                                                                     monkeypatch) -> None:
    """The test above can fail: resuming with fresh Adam moments changes the result."""
    reference = killed_run(tmp_path, monkeypatch, "checkpoint:0:45")
    monkeypatch.setattr(ReplicaStepper, "load_optimizer_states", lambda self, states: None)
    group = resumable_group(tmp_path / "run")
    group.run()
    with pytest.raises(AssertionError):
        same_runs(reference, group)


def test_a_replica_checkpoint_has_the_single_runs_format(tmp_path, monkeypatch) -> None:
    """A killed replicas=2 round can be resumed by the single run of one seed (replicas is
    not hashed, so both use the same run directory)."""
    crash_replicas_at(monkeypatch, "checkpoint:0:45")
    with pytest.raises(Crash):
        resumable_group(tmp_path / "run").run()
    monkeypatch.undo()
    lot = resumable_lottery(tmp_path / "run", 3)
    obj = lot.store.load(lot.store.checkpoint_path(0), "")
    state = obj["optimizer"]["state"]
    assert sorted(state) == list(range(6)) and sorted(state[0]) == ["exp_avg", "exp_avg_sq",
                                                                    "step"]
    assert float(state[0]["step"]) == 45
    records = lot.run()
    single = resumable_lottery(tmp_path / "single", 3)
    for a, b in zip(records, single.run()):
        assert a["density"] == b["density"]
        assert a["test_acc"] == pytest.approx(b["test_acc"], abs=2 / 128)


def test_single_runs_checkpoints_resume_as_replicas(tmp_path, monkeypatch) -> None:
    """The other direction: seeds killed mid-round as single runs continue as replicas=2."""
    import lth.lottery.span as driver_module

    def crash(name: str) -> None:
        if name == "checkpoint:0:45":
            raise Crash(name)

    monkeypatch.setattr(driver_module, "kill_point", crash)
    for seed in (3, 4):
        with pytest.raises(Crash):
            resumable_lottery(tmp_path / "run", seed).run()
    monkeypatch.undo()
    group = resumable_group(tmp_path / "run")
    steps: list = []
    real = ReplicaStepper.load_optimizer_states
    monkeypatch.setattr(ReplicaStepper, "load_optimizer_states", lambda self, states: (
        steps.append([float(s["state"][0]["step"]) for s in states]), real(self, states)))
    records = group.run()
    assert steps[0] == [45.0, 45.0], "round 0 continued from the single runs' checkpoints"
    for seed, recs in zip((3, 4), records):
        single = resumable_lottery(tmp_path / f"single{seed}", seed).run()
        assert [r["density"] for r in recs] == [r["density"] for r in single]
        for a, b in zip(recs, single):
            assert a["test_acc"] == pytest.approx(b["test_acc"], abs=2 / 128)


def test_cli_replicas_killed_mid_round_resume_bit_identically(tmp_path) -> None:
    """kill -9 of a ``replicas=2`` run right after a mid-round checkpoint, then the same
    command again: the same metrics, masks and weights as an uninterrupted run."""
    tiny = ["experiment=mnist1d_mlp", "train.duration=60it", "train.eval_every=30it",
            "train.checkpoint_every=20it",
            "prune.rounds=1", "dataset.num_samples=600", "dataset.val_size=100",
            "progress=false", "wandb.mode=disabled", "seed=3", "replicas=2"]

    def cli(root: str, kill: str | None = None) -> subprocess.CompletedProcess:
        env = {**cli_env(tmp_path), "OMP_NUM_THREADS": "1"}
        if kill:
            env["LTH_TEST_KILL_AT"] = kill
        return subprocess.run([PYTHON, "-m", "experiments.lottery", *tiny,
                               f"output_root={tmp_path / root}"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    assert cli("ref").returncode == 0
    killed = cli("run", kill="checkpoint:1:40")
    assert killed.returncode == -9, killed.stderr
    runs = sorted((tmp_path / "run" / "mnist1d_mlp").iterdir())
    assert len(runs) == 2 and all((r / "round_1" / "checkpoint.pt").exists() for r in runs)
    done = cli("run")
    assert done.returncode == 0, done.stderr
    refs = sorted((tmp_path / "ref" / "mnist1d_mlp").iterdir())
    assert [r.name for r in refs] == [r.name for r in runs]
    drop = lambda rs: [{k: v for k, v in r.items() if k != "wall_s"} for r in rs]  # noqa: E731
    for ref, run in zip(refs, runs):
        a, b = RunStore(ref), RunStore(run)
        assert len(a.read_metrics()) == 2 and drop(a.read_metrics()) == drop(b.read_metrics())
        for path in ("mask_path", "final_path"):
            ta, tb = a.load_tensors(getattr(a, path)(1)), b.load_tensors(getattr(b, path)(1))
            assert all(torch.equal(ta[n], tb[n]) for n in ta)
        assert not (run / "round_1" / "checkpoint.pt").exists()
