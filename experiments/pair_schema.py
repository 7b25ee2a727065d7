"""Typed schemas of the commands that read two stored runs (``experiments.barrier``,
``experiments.transport``) or move a ticket to another dataset (``experiments.transfer``).
``register`` adds them, and every other schema (``experiments.schema.register``), to Hydra's
ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

from experiments import schema
from experiments.schema import DatasetSchema, WandbSchema


@dataclass
class MatchSchema:
    method: str = "weight_matching"   # how B's units are aligned to A's (Git Re-Basin)
    max_iter: int = 100               # coordinate-descent sweeps at most (stops when stable)
    seed: int = 0                     # seed of the order the unit groups are visited in


@dataclass
class BarrierSchema:
    run_a: str | None = None          # run A: a run directory of experiments.lottery
    run_b: str | None = None          # run B (aligned to A; the analysis is stored in B)
    rounds: list[int] = field(default_factory=lambda: [0])  # rounds both completed; [] = all
    alpha_points: int = 30            # evenly spaced α on the path between A and B (>= 2)
    train_samples: int = 1000         # fixed training subset for the train-error barrier
    bn_reset: bool | None = None      # recompute BatchNorm statistics per α (None: BN models)
    match: MatchSchema = field(default_factory=MatchSchema)
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = False            # unused (nothing is trained); as the other commands
    # offline | online | disabled; None: $WANDB_MODE if set, else run B's own wandb.mode
    wandb_mode: str | None = "${oc.env:WANDB_MODE,null}"


@dataclass
class TransportSchema:
    run_a: str | None = None          # run A, whose ticket masks are transported
    run_b: str | None = None          # run B, whose start weights train them (stored in B)
    rounds: list[int] = field(default_factory=list)  # rounds >= 1 both completed; [] = all
    # permuted | unpermuted | random (the permuted mask's layer densities at random places)
    variants: list[str] = field(default_factory=lambda: ["permuted", "unpermuted", "random"])
    match: MatchSchema = field(default_factory=MatchSchema)
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    # offline | online | disabled; None: $WANDB_MODE if set, else run B's own wandb.mode
    wandb_mode: str | None = "${oc.env:WANDB_MODE,null}"


@dataclass
class TransferSchema:
    name: str = "transfer"            # experiment name: <output_root>/<name>/<hash>/
    source: str | None = None         # a run directory of experiments.lottery, or a ticket file
    round: int | None = None          # the source's round whose ticket is transferred
    variant: str = "ticket"           # ticket | random_prune | random_reinit
    seed: int = 0                     # data order, re-initialised output layer, random masks
    output_root: str | None = None    # root of the run store (None: the source run's / runs)
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    dataset: DatasetSchema = field(default_factory=DatasetSchema)  # the target dataset
    wandb: WandbSchema = field(default_factory=WandbSchema)


def register() -> None:
    """The schemas of every command, these three included, in the ConfigStore (idempotent)."""
    schema.register()
    cs = ConfigStore.instance()
    cs.store(name="barrier_schema", node=BarrierSchema)
    cs.store(name="transport_schema", node=TransportSchema)
    cs.store(name="transfer_schema", node=TransferSchema)
