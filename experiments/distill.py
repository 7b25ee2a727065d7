"""Distillation as a stored run: ``python -m experiments.distill teacher=<run dir> [round=k]``.

Trains a dense student (``model=``, default the teacher's model; ``params=`` or
``params_round=`` size it to a parameter budget) on the teacher run's dataset from the soft
outputs of its stored round ``round`` (default 0, the dense network), with ``temperature`` and
``alpha`` (Hinton et al. 2015). The student is stored in ``<output_root>/<name>/<hash>/``
(default output_root: the teacher's), seeded, logged to W&B and resumed like a lottery run;
rerunning a complete one trains nothing.
"""

from __future__ import annotations

import copy
import math
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig, OmegaConf

from experiments.errors import report_errors
from experiments.schema import register
from lth.errors import ConfigError

if TYPE_CHECKING:
    from lth.store import RunStore

register()


def resolved(cfg: DictConfig, teacher, data, make_teacher) -> DictConfig:  # noqa: ANN001
    """``cfg`` with the teacher's path, the output root and the sized student model filled in."""
    from experiments import student

    out = copy.deepcopy(cfg)
    out.teacher = str(teacher.store.root)
    out.output_root = cfg.output_root or str(teacher.store.root.parent.parent)
    budget = cfg.params
    if cfg.params_round is not None:
        budget = student.round_params(teacher, make_teacher, cfg.params_round, data)
    model = cfg.model if cfg.model is not None else teacher.cfg.model
    out.model = student.sized_model(model, data, budget, cfg.width_key)
    return out


def check_weights(alpha: float, temperature: float) -> None:
    """ConfigError unless ``alpha`` is in [0, 1] and ``temperature`` a finite positive number
    (nan or inf would pass a bare comparison and end the training as a NaN loss)."""
    if not (0.0 <= alpha <= 1.0 and math.isfinite(temperature) and temperature > 0):
        raise ConfigError(f"alpha={alpha} must be in [0, 1] and temperature={temperature} a "
                          "finite positive number (e.g. alpha=0.5 temperature=4)")


def table_record(record: dict) -> dict:
    """The student's record for the round table: its size relative to the teacher's as the
    density column."""
    return {**record, "density": record["relative_params"]}


def run(cfg: DictConfig) -> RunStore:
    """Train (or resume, or skip) the student of ``cfg``; returns its store."""
    from experiments import setup, student
    from experiments.versions import versions
    from lth.kernels import kernel_facts
    from lth.lottery.student import StudentRun, StudentSettings
    from lth.lottery.table import format_header, format_row
    from lth.train import parse_duration

    check_weights(cfg.alpha, cfg.temperature)
    if cfg.train.precision != "fp32" or cfg.train.compile:
        raise ConfigError("experiments.distill trains in fp32 without compile: set "
                          "train.precision=fp32 and train.compile=false")
    teacher = student.open_teacher(cfg.teacher, cfg.round)
    device = setup.resolve_device(cfg.device)
    data = setup.load_data(teacher.cfg, device)
    make_teacher = setup.model_factory(teacher.cfg, data)
    cfg = resolved(cfg, teacher, data, make_teacher)
    make_student = setup.model_factory(OmegaConf.create(
        {"model": cfg.model, "dataset": {"name": teacher.cfg.dataset.name}}), data)
    make_optimizer = setup.optimizer_factory(cfg)
    ipe = data.x_train.shape[0] // cfg.train.batch_size
    t = cfg.train
    settings = StudentSettings(
        seed=cfg.seed, iterations=parse_duration(t.duration, ipe, "train.duration"),
        batch_size=t.batch_size, temperature=cfg.temperature, alpha=cfg.alpha,
        eval_every=parse_duration(t.eval_every, ipe, "train.eval_every"),
        checkpoint_every=parse_duration(t.checkpoint_every, ipe, "train.checkpoint_every"))
    seeds = {"init": settings.init_seed, "data": settings.data_seed}
    with ExitStack() as stack:
        store = student.open_student_store(cfg, teacher, seeds, stack)
        print(format_header(data.x_val is not None))
        if store.read_metrics():
            print(format_row(table_record(store.read_metrics()[0]), note="stored"))
            print("the student is complete; nothing to train")
            return store
        teacher_net, _ = student.teacher_model(teacher, make_teacher)
        job = StudentRun(settings, data, teacher_net, make_student, make_optimizer,
                         setup.lr_schedule(cfg, ipe), store, setup.open_sink(cfg, store, stack),
                         device, progress=cfg.progress,
                         versions=versions(kernel_facts(str(device))),
                         fields={"teacher": teacher.identity, "teacher_round": teacher.round})
        record, _ = job.run()
        print(format_row(table_record(record), note="student"), flush=True)
    return store


@hydra.main(version_base="1.3", config_path="../conf", config_name="distill")
@report_errors
def main(cfg: DictConfig) -> None:
    from lth.train.preempt import handle_preemption

    with handle_preemption():  # SIGTERM / Submitit's SIGUSR2: checkpoint at once, then exit
        store = run(cfg)
    print(f"run directory: {Path(store.root)}")
    sys.stdout.flush()


if __name__ == "__main__":
    from experiments.errors import run_cli

    run_cli(main)
