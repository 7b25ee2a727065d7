"""Two stored runs reopened as a pair (``run_a=``, ``run_b=``) for the barrier and mask
transport commands: both through ``experiments.stored.open_run``, then checked to be two
runs of one architecture on one dataset, before anything is loaded or written."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from experiments.stored import StoredRun, open_run
from lth.errors import ConfigError

if TYPE_CHECKING:
    from lth.lottery import Lottery
    from lth.lottery.pairs import MatchOptions, OtherRun

# Dataset keys that say where the files lie, not which data: two runs may differ in them.
_WHERE = ("root", "download")


def _data(run: StoredRun) -> dict[str, Any]:
    data = OmegaConf.to_container(run.cfg.dataset, resolve=True)
    assert isinstance(data, dict)
    return {k: v for k, v in data.items() if k not in _WHERE}


def check_same_architecture(a: StoredRun, b: StoredRun) -> None:
    """ConfigError unless ``a`` and ``b`` are runs of one model on one dataset."""
    if a.store.root == b.store.root:
        raise ConfigError(f"run_a and run_b are the same run {a.store.root}: pass two runs "
                          "(e.g. two seeds of one experiment)")
    for what, got_a, got_b in (
            ("model", OmegaConf.to_container(a.cfg.model, resolve=True),
             OmegaConf.to_container(b.cfg.model, resolve=True)),
            ("dataset", _data(a), _data(b))):
        if got_a != got_b:
            diff = sorted(k for k in set(got_a) | set(got_b) if got_a.get(k) != got_b.get(k))
            raise ConfigError(
                f"run_a={a.store.root} and run_b={b.store.root} have different {what}s "
                f"({what}.{', '.join(diff)} differ): their networks cannot be matched unit by "
                "unit; pass two runs of one model on one dataset (e.g. two seeds)")


def open_pair(cfg: DictConfig) -> tuple[OtherRun, StoredRun]:
    """Run A (to read) and run B (to add to, with the command's device, progress and W&B
    mode), checked as a pair."""
    from lth.lottery.pairs import OtherRun

    a = open_run(cfg.run_a, key="run_a")
    b = open_run(cfg.run_b, key="run_b")
    check_same_architecture(a, b)
    b.cfg.device, b.cfg.progress = cfg.device, cfg.progress
    if cfg.wandb_mode is not None:
        b.cfg.wandb.mode = cfg.wandb_mode
    return OtherRun(a.store, a.identity), b


def match_options(cfg: DictConfig) -> MatchOptions:
    """``match.*`` as options (checked), with scipy's presence checked too."""
    from lth.lottery.pairs import MatchOptions
    from lth.permute.matching import linear_sum_assignment

    options = MatchOptions(cfg.match.method, cfg.match.max_iter, cfg.match.seed)
    linear_sum_assignment()  # ConfigError naming the install command before any work
    return options


def build_b(b: StoredRun, stack: ExitStack) -> Lottery:
    """Run B's lottery, its store locked, its W&B run open with the stored pair analyses
    (barriers, transported masks) replayed after its rounds."""
    from experiments import setup
    from experiments.stored import prepared
    from lth.lottery.seed_barrier import barrier_metrics
    from lth.lottery.transport import KIND, transport_metrics
    from lth.permute import perm_spec

    prep, settings = prepared(b)
    perm_spec(prep.make_model())  # ConfigError for a model without a spec, before writing
    store = setup.open_store(b.cfg, settings, stack)
    sink = setup.open_sink(b.cfg, store, stack)
    for record in store.read_barriers():
        sink.log_round(barrier_metrics(record))
    for record in store.read_branches(KIND):
        sink.log_round(transport_metrics(record))
    return setup.build(b.cfg, prep, settings, store, sink)
