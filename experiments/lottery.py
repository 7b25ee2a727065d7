"""Iterative magnitude pruning: ``python -m experiments.lottery [overrides]``.

Composes conf/config.yaml, then trains, prunes, rewinds and retrains round after round into
the run directory ``<output_root>/<name>/<config hash>/``. Rerunning resumes.
"""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from experiments.errors import report_errors
from experiments.schema import register

if TYPE_CHECKING:
    from lth.lottery import Lottery
    from lth.lottery.instability import InstabilityOptions
    from lth.store import RunStore

# torch and lth are imported where they are used (experiments.setup imports them): `--help`
# and composing a config (`--cfg job`) then take Hydra's time alone, not torch's.
register()


def print_stored(store: RunStore, controls: tuple[str, ...], val_split: bool) -> None:
    """The table's header and the rows of the rounds and controls already stored."""
    from lth.lottery.table import format_header, format_row

    print(format_header(val_split))
    for record in store.read_metrics():
        print(format_row(record, note="stored"))
    for record in store.read_controls():
        if record["control"] in controls:
            print(format_row(record, note=f"{record['control']}, stored"))


def print_control(record: dict) -> None:
    from lth.lottery.table import format_row

    print(format_row(record, note=record["control"]), flush=True)


def run_instability(lottery: Lottery, options: InstabilityOptions | None) -> None:
    """The instability analyses of every completed round without one, a line each."""
    from experiments.instability import format_instability
    from lth.lottery.instability import pending_instability, run_instability

    if options is not None:
        for k in pending_instability(lottery.store):
            print(format_instability(run_instability(lottery, k, options)), flush=True)


def run(cfg: DictConfig) -> RunStore:
    """Run (or resume) the experiment of ``cfg``, its controls and instability analyses;
    returns its store."""
    from experiments import setup
    from lth.lottery.controls import check_controls, check_trainable, run_with_controls
    from lth.lottery.replicas import has_work
    from lth.lottery.table import format_row

    controls, instability = check_controls(cfg.prune.controls), setup.instability_of(cfg)
    prep = setup.prepare(cfg)
    settings = setup.settings_from(cfg, prep.iters_per_epoch)
    check_trainable(controls, settings, getattr(prep.pruner, "granularity", "weight"))
    with ExitStack() as stack:
        store = setup.open_store(cfg, settings, stack)
        print_stored(store, controls, prep.data.x_val is not None)
        last = settings.last_round
        if not has_work(store, last, controls, instability is not None):
            print(f"all {last + 1} rounds are complete; nothing to train")
            return store
        lottery = setup.build(cfg, prep, settings, store, setup.open_sink(cfg, store, stack))
        run_with_controls(lottery, controls, on_round=lambda r: print(format_row(r), flush=True),
                          on_control=print_control)
        run_instability(lottery, instability)
    return store


def record_run_dir(store: RunStore) -> None:
    """Leave ``run_dir.txt`` in Hydra's job folder: how scripts.aggregate finds a sweep's runs."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        out = Path(HydraConfig.get().runtime.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "run_dir.txt").write_text(f"{store.root.resolve()}\n")


def print_summary(store: RunStore) -> None:
    """The end-of-run summary of a single run (lth.lottery.summary) and the next commands."""
    from hydra.core.hydra_config import HydraConfig

    from lth.lottery.summary import summary_lines

    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    config = store.read_config()
    for line in summary_lines(store.read_metrics(), store.read_controls(), config["seed"],
                              str(store.root.parent.parent), store.root.parent.name, overrides):
        print(line)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@report_errors
def main(cfg: DictConfig) -> None:
    from experiments.portable import pin_for

    pin_for(cfg)  # reproducible=portable: before torch loads
    from lth.train.preempt import handle_preemption

    if int(os.environ.get("RANK", "0")) > 0:  # torchrun: rank 0 prints the table
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the process's lifetime

    with handle_preemption():  # SIGTERM / Submitit's SIGUSR2: checkpoint at once, then exit
        if cfg.replicas == 1 and not cfg.group_branches:
            stores = [run(cfg)]
        else:
            from experiments.replicas import run_replicas

            stores = run_replicas(cfg)
    if len(stores) == 1:
        print_summary(stores[0])
    for store in stores:
        record_run_dir(store)
        print(f"run directory: {store.root}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
