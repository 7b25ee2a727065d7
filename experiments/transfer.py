"""Ticket transfer: ``python -m experiments.transfer source=<dir> round=<k> dataset=<target>``.

Trains the source run's ticket of round ``round`` (mask and start weights) on the target
dataset, with the source's model, optimizer and training, as round 0 of a run of its own in
``<output_root>/<name>/<hash>/`` (lth.lottery.transfer); the hash covers the source run's
identity, the round, the variant, the seed and the target dataset. Resumed like a lottery
run; rerunning a complete one trains nothing. ``source`` may also be a portable ticket file
(``lth.tickets.export_ticket``): the same ticket, the same run (its identity is the exported
run's ``<name>/<hash>``), so a ticket file imports back into a run store.
"""

from __future__ import annotations

import copy
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors
from experiments.pair_schema import register
from lth.errors import ConfigError

if TYPE_CHECKING:
    from lth.lottery.transfer import Source

register()


def target_config(cfg: DictConfig, source_cfg: DictConfig, identity: str,
                  root: str) -> DictConfig:
    """The target run's config: the source's, with the target dataset, seed, name, output
    root (``root`` unless given), W&B settings and the ``transfer`` node."""
    out = copy.deepcopy(source_cfg)
    out.dataset = cfg.dataset
    out.seed, out.name = cfg.seed, cfg.name
    out.output_root = cfg.output_root or root
    out.device, out.progress, out.wandb = cfg.device, cfg.progress, cfg.wandb
    out.prune.rounds, out.prune.controls = 0, []
    out.transfer = OmegaConf.create({"source": identity, "round": cfg.round,
                                     "variant": cfg.variant})
    return out


def open_source(cfg: DictConfig) -> tuple[DictConfig, Source, str]:
    """The source's config, its ticket of round ``cfg.round`` and the default output root
    (the source run's; ``runs`` for a ticket file), from a run directory or a ticket file;
    ``cfg.round`` is set from a ticket file that names its own round."""
    from experiments.stored import open_run, open_ticket
    from lth.lottery.transfer import Source

    if cfg.source and Path(str(cfg.source)).expanduser().is_file():
        source_cfg, ticket = open_ticket(cfg.source)
        if cfg.round is None:
            cfg.round = ticket.round
        if cfg.round != ticket.round:
            raise ConfigError(f"source={cfg.source} holds round {ticket.round}, not round "
                              f"{cfg.round}: pass round={ticket.round} or leave round out")
        identity = f"{source_cfg.name}/{ticket.hash}"
        return source_cfg, Source(identity, ticket.round, ticket.rewind, ticket.mask,
                                  ticket.record["test_acc"], f"{cfg.source} (mask/)"), "runs"
    if cfg.round is None:
        raise ConfigError("round is not set: pass round=<k>, a completed round of the source")
    run = open_run(cfg.source, key="source")
    run.store.completed_rounds([cfg.round])  # ConfigError naming the completed ones
    source = Source.from_store(run.store, run.identity, cfg.round)
    return run.cfg, source, str(run.store.root.parent.parent)


def run(cfg: DictConfig) -> Path:
    """Train (or resume, or skip) the transferred ticket of ``cfg``; returns its run directory."""
    from experiments import setup
    from lth.lottery.table import format_header, format_row
    from lth.lottery.transfer import carried, check_variant, output_layer, run_transfer

    check_variant(cfg.variant)
    if OmegaConf.is_missing(cfg.dataset, "name"):
        raise ConfigError("dataset is not set: pass dataset=<the target dataset> (a dataset= "
                          "option of experiments.lottery, e.g. dataset=mnist1d)")
    source_cfg, source, root = open_source(cfg)
    if source_cfg.prune.retrain != "weight_rewind":
        raise ConfigError(f"the source retrains with {source_cfg.prune.retrain}: a ticket is "
                          "its mask on its rewind point; use a prune.retrain=weight_rewind run")
    target = target_config(cfg, source_cfg, source.identity, root)
    prep = setup.prepare(target)
    settings = setup.settings_from(target, prep.iters_per_epoch)
    fresh = prep.make_model()
    # ConfigError for another input shape, before writing
    carried(fresh.state_dict(), source.rewind, output_layer(fresh))
    with ExitStack() as stack:
        store = setup.open_store(target, settings, stack)
        print(format_header())
        if store.read_metrics():
            print(format_row(store.read_metrics()[0], note="stored"))
            print("the transferred ticket is complete; nothing to train")
            return store.root
        lottery = setup.build(target, prep, settings, store, setup.open_sink(target, store,
                                                                             stack))
        record = run_transfer(lottery, source, cfg.variant)
        print(format_row(record, note=f"{cfg.variant} from {source.identity} round "
                                      f"{cfg.round}"), flush=True)
    return store.root


@hydra.main(version_base="1.3", config_path="../conf", config_name="transfer")
@report_errors
def main(cfg: DictConfig) -> None:
    from lth.train.preempt import handle_preemption

    with handle_preemption():  # SIGTERM / Submitit's SIGUSR2: checkpoint at once, then exit
        print(f"run directory: {run(cfg)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
