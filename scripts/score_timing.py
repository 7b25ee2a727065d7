"""How long each pruning-at-init score takes, next to one training round of the same run.

``python -m scripts.score_timing [--experiment pai_mnist1d] [--repeats 3] [--out FILE]``

Composes the preset, prunes its initial weights from the dense mask to the schedule's last
(lowest) density with each strategy (median of ``--repeats`` calls; SynFlow with its
``prune.score_iterations`` steps) and trains one dense round of ``train.duration`` without
evaluation, in the same process: the ratios are what the CPU of the moment gave both.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ("magnitude_init", "random", "snip", "grasp", "synflow")


def _compose(experiment: str):
    from hydra import compose, initialize_config_dir

    from experiments.schema import register

    register()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"experiment={experiment}",
                                                        "device=cpu"])


def measure(experiment: str, repeats: int) -> list[tuple[str, float]]:
    """(what, seconds) for each strategy and for one training round."""
    from experiments.setup import prepare, settings_from
    from lth.pruning import full_mask, layer_rates
    from lth.train import LoopOptions, Span, train

    cfg = _compose(experiment)
    prep = prepare(cfg)
    s = settings_from(cfg, prep.iters_per_epoch)
    torch.manual_seed(s.init_seed)
    model = prep.make_model()
    state, mask = model.state_dict(), full_mask(model)
    dens = s.round_densities(s.last_round, layer_rates(model, sorted(mask), s.rates))
    rows = []
    for strategy in STRATEGIES:
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            prep.pruner(state, mask, strategy=strategy, seed=0, densities=dens, initial=state)
            times.append(time.perf_counter() - began)
        rows.append((strategy, statistics.median(times)))
    began = time.perf_counter()
    train(model, prep.data, prep.make_optimizer(model.parameters()),
          Span(0, s.iterations, prep.lr_factor), batch_size=s.batch_size, seed=s.data_seed,
          mask=mask, options=LoopOptions(eval_every=0))
    rows.append((f"one training round ({s.iterations} it)", time.perf_counter() - began))
    return rows


def table(experiment: str, rows: list[tuple[str, float]]) -> str:
    """A markdown table: seconds and the share of one training round."""
    round_s = rows[-1][1]
    lines = [f"`{experiment}`, {torch.get_num_threads()} thread(s), torch {torch.__version__}",
             "", "| score | seconds | / one training round |", "|---|---|---|"]
    lines += [f"| {name} | {sec:.3f} | {sec / round_s:.3f} |" for name, sec in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="pai_mnist1d")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    text = table(args.experiment, measure(args.experiment, args.repeats))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main()
