"""Ticket transfer across datasets (lth.lottery.transfer, experiments.transfer): with another
class count only the output layer is re-initialised and kept dense; with the same one the
whole ticket moves; another input shape is refused; the run's hash changes with the source
run, the round and the variant; bad sources write nothing."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch

from lth.errors import ConfigError, LthError
from lth.lottery.transfer import Source, run_transfer, transfer_start
from lth.models import MLP
from lth.store import RunStore
from tests.conftest import make_blobs, make_lottery


def net(classes: int, dim: int = 20):
    return lambda: MLP((dim,), classes, (32, 32))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Source:
    root = tmp_path_factory.mktemp("source")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_lottery(root, model=net(4), rounds=2, strategy="magnitude_layerwise").run()
    finally:
        torch.set_num_threads(threads)
    return Source.from_store(RunStore(root), "tiny/source", 2)


def target(root: Path, classes: int, dim: int = 20):
    return make_lottery(root, data=make_blobs(classes=classes, dim=dim, seed=1),
                        model=net(classes, dim), rounds=0)


def test_another_class_count_reinitialises_only_the_output_layer(source, tmp_path) -> None:
    lottery = target(tmp_path, classes=6)
    start = transfer_start(lottery, source, "ticket")
    ticket = source.rewind
    mask = source.mask
    torch.manual_seed(lottery.settings.init_seed)
    own = net(6)().state_dict()
    state = start.model.state_dict()
    for name in ("fc3.weight", "fc3.bias"):
        assert torch.equal(state[name], own[name])
    assert bool(start.mask["fc3.weight"].all())
    for name in ("fc1.weight", "fc2.weight"):
        assert torch.equal(start.mask[name], mask[name]) and not bool(mask[name].all())
        assert torch.equal(state[name], ticket[name] * mask[name])
    assert torch.equal(state["fc1.bias"], ticket["fc1.bias"])
    assert start.extra["output_reinitialised"] is True


def test_the_same_class_count_carries_the_whole_ticket(source, tmp_path) -> None:
    start = transfer_start(target(tmp_path, classes=4), source, "ticket")
    mask = source.mask
    ticket = source.rewind
    assert all(torch.equal(start.mask[n], mask[n]) for n in mask)
    assert torch.equal(start.model.state_dict()["fc3.weight"], ticket["fc3.weight"] *
                       mask["fc3.weight"])
    assert start.extra["output_reinitialised"] is False


def test_variants_keep_the_layer_densities_and_train(source, tmp_path, one_thread) -> None:
    densities, starts = {}, {}
    for variant in ("ticket", "random_prune", "random_reinit"):
        lottery = target(tmp_path / variant, classes=6)
        starts[variant] = lottery.store  # init.pt: the start weights
        record = run_transfer(lottery, source, variant)
        assert record["transfer"] == variant and record["source_round"] == 2
        densities[variant] = record["layer_density"]
        assert lottery.store.read_metrics() == [record]
    assert densities["ticket"] == densities["random_prune"] == densities["random_reinit"]
    assert densities["ticket"]["fc3.weight"] == 1.0
    init = {v: store.load_tensors(store.init_path) for v, store in starts.items()}
    # source and target share seed 0 and the hidden layers: the re-init must still differ
    assert not torch.equal(init["random_reinit"]["fc1.weight"], init["ticket"]["fc1.weight"])
    assert torch.equal(init["random_prune"]["fc1.weight"], init["ticket"]["fc1.weight"])
    assert torch.equal(init["random_reinit"]["fc3.weight"], init["ticket"]["fc3.weight"])


def test_another_input_shape_is_refused(source, tmp_path) -> None:
    with pytest.raises(ConfigError, match="transfers to datasets with the source's input shape"):
        transfer_start(target(tmp_path, classes=4, dim=24), source, "ticket")


# -- the entry point, in-process ----------------------------------------------------------------

def transfer(*overrides: str):
    from hydra import compose, initialize_config_dir

    from experiments.transfer import run
    from tests.test_config import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="transfer", overrides=list(overrides))
    with contextlib.redirect_stdout(io.StringIO()) as out:
        root = run(cfg)
    return root, out.getvalue()


@pytest.fixture(scope="module")
def mnist1d_runs(tmp_path_factory) -> dict[str, Path]:
    from tests.test_rebasin_cli import made

    tmp = tmp_path_factory.mktemp("mnist1d")
    return {"a": made(tmp / "runs", "seed=0"), "tmp": tmp}


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"}


@pytest.mark.slow
def test_transfer_runs_are_hashed_on_source_round_and_variant(mnist1d_runs, tmp_path,
                                                             one_thread) -> None:
    from tests.test_rebasin_cli import made

    a, b = mnist1d_runs["a"], made(mnist1d_runs["tmp"] / "runs", "seed=1")
    common = ["dataset=mnist1d", "dataset.num_samples=2000", f"output_root={tmp_path}",
              "wandb.mode=disabled", "progress=false"]
    root, said = transfer(f"source={a}", "round=1", *common)
    (record,) = RunStore(root).read_metrics()
    assert record["source"] == f"{a.parent.name}/{a.name}" and not record["output_reinitialised"]
    assert "from" in said
    again, said = transfer(f"source={a}", "round=1", *common)
    assert again == root and "nothing to train" in said
    from experiments.stored import open_run
    reopened = open_run(root)  # a transfer run reopens as a lottery run (hash checked)
    assert reopened.cfg.transfer.round == 1
    from omegaconf import OmegaConf

    from experiments.transfer import target_config
    from lth.store.hashing import run_hash

    def name(src: Path, k: int, variant: str = "ticket") -> str:
        from hydra import compose, initialize_config_dir

        from tests.test_config import CONF
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="transfer", overrides=[
                f"source={src}", f"round={k}", f"variant={variant}", *common])
        return run_hash(OmegaConf.to_container(target_config(cfg, open_run(src)),
                                               resolve=True))

    assert name(a, 1) == root.name
    assert len({name(a, 1), name(a, 0), name(b, 1), name(a, 1, "random_prune")}) == 4


BAD = [
    (lambda a: ["source=/nowhere/at/all", "round=1", "dataset=mnist1d"],
     "source=/nowhere/at/all is not a run directory"),
    (lambda a: [f"source={a}", "round=3", "dataset=mnist1d"], "rounds [3] are not completed"),
    (lambda a: [f"source={a}", "round=1", "dataset=digits"],
     "the source's fc1.weight is (24, 40) but the target dataset needs (24, 64)"),
    (lambda a: [f"source={a}", "dataset=mnist1d"], "round is not set"),
    (lambda a: [f"source={a}", "round=1", "dataset=mnist1d", "variant=lucky"],
     "variant='lucky' is unknown"),
    (lambda a: [f"source={a}", "round=1"], "dataset is not set: pass dataset="),
]


@pytest.mark.parametrize("case", BAD, ids=["unknown run", "missing round", "input shape",
                                           "no round", "unknown variant", "no dataset"])
def test_bad_sources_are_refused_and_write_nothing(mnist1d_runs, tmp_path, case) -> None:
    overrides, message = case
    a = mnist1d_runs["a"]
    before = files(a.parent.parent)
    with pytest.raises(LthError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        transfer(*overrides(a), f"output_root={tmp_path / 'out'}", "wandb.mode=disabled")
    assert files(a.parent.parent) == before
    assert not (tmp_path / "out").exists()
