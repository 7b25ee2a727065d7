"""Typed schemas for the config tree, registered in Hydra's ConfigStore.

A typo in a key or a wrong value type fails when the config is composed, with Hydra's message,
not an hour into a run. Units are in the field comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainSchema:
    duration: str = "2000it"          # "<N>it" iterations or "<N>ep" epochs per round
    batch_size: int = 128             # samples per iteration
    eval_every: str = "500it"         # evaluation interval (duration); "0it" = end only
    milestones: list[str] = field(default_factory=list)  # durations where lr *= gamma
    gamma: float = 0.1                # lr decay factor at each milestone
    warmup: str = "0it"               # linear warmup duration
    # mid-round checkpoint interval (duration; "0it" = only the round's end); not hashed
    checkpoint_every: str = "500it"


@dataclass
class PruneSchema:
    # magnitude_global | magnitude_layerwise | random | random_global
    strategy: str = "magnitude_global"
    fraction: float = 0.2                # share of the *remaining* weights removed per round
    conv_fraction: float | None = None    # rate for conv layers (None: fraction)
    output_fraction: float | None = None  # rate for the output layer (None: fraction; 0: dense)
    rounds: int = 10                     # pruning rounds after the dense round 0
    rewind: str = "0it"                  # "0it": original init; "<N>it"/"<N>ep": late rewinding
    retrain: str = "weight_rewind"       # weight_rewind | lr_rewind | finetune
    finetune_duration: str = "0it"       # training per round when retrain=finetune
    prune_bias: bool = False             # also prune conv/linear biases
    pool_bias: bool = False              # rank a layer's bias with its weights (prune_bias)
    granularity: str = "weight"          # weight | channel (whole filters/neurons, by DepGraph)
    channel_score: str = "l1"            # granularity=channel: l1 | l2 | bn (BatchNorm |gamma|)
    # random_reinit | random_prune: trained beside each round k >= 1 (not hashed)
    controls: list[str] = field(default_factory=list)
    oneshot: bool = False                # one step from dense to the density of `rounds` rounds
    schedule: list[float] = field(default_factory=list)  # target density per round (k >= 1)


@dataclass
class DatasetSchema:
    # mnist1d | digits | mnist | fashion_mnist | cifar10 | cifar100
    name: str = MISSING
    root: str | None = None        # directory holding torchvision-format files
    download: bool = False            # let torchvision download into root (needs internet)
    val_size: int = 0                 # training samples held out for validation
    split_seed: int = 0               # seed of the validation hold-out (fixed across run seeds)
    num_samples: int | None = None  # mnist1d: total samples generated (None: package default)
    augment: bool | None = None    # flip + pad-crop per batch (None: on for CIFAR only)


@dataclass
class SGDSchema:
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.1                   # base learning rate
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0         # L2 coefficient


@dataclass
class AdamSchema:
    _target_: str = "torch.optim.Adam"
    _partial_: bool = True
    lr: float = 1e-3                  # base learning rate
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0


@dataclass
class WandbSchema:
    mode: str = "offline"             # offline | online | disabled
    project: str = "lth"
    entity: str | None = None
    tags: list[str] = field(default_factory=list)
    dir: str | None = None         # where wandb/ is written (None: output_root)


@dataclass
class LotterySchema:
    name: str = "mnist1d_mlp"         # experiment name: <output_root>/<name>/<hash>/
    seed: int = 0                     # the one seed: init, data order, pruning derive from it
    output_root: str = "runs"         # root of the run store
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    replicas: int = 1                 # seeds seed..seed+replicas-1 trained together (vmap)
    model: Any = MISSING              # a _target_ node from conf/model
    dataset: DatasetSchema = field(default_factory=DatasetSchema)
    optimizer: Any = MISSING          # a _partial_ optimizer from conf/optimizer
    train: TrainSchema = field(default_factory=TrainSchema)
    prune: PruneSchema = field(default_factory=PruneSchema)
    wandb: WandbSchema = field(default_factory=WandbSchema)


@dataclass
class ExportSchema:
    run_dir: str | None = None        # a run directory printed by experiments.lottery
    round: int | None = None          # round to export (None: the last completed one)
    format: str = "onnx"              # onnx | sparse (compressed ticket checkpoint)
    quantize: str | None = None       # None | int8 (static, calibrated on training batches)
    structured: bool | None = None    # remove dead channels (None: if prune.granularity=channel)
    out_dir: str | None = None        # None: <run_dir>/export/round_<k>
    calibration_batches: int = 8      # training batches for int8 calibration
    batch_size: int = 32              # samples per calibration batch
    opset: int = 17                   # ONNX opset


@dataclass
class ControlSchema:
    run_dir: str = MISSING            # an existing run directory <output_root>/<name>/<hash>
    control: Any = MISSING            # random_reinit | random_prune, or a list of them
    rounds: list[int] = field(default_factory=list)  # completed rounds >= 1; [] = all
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    wandb_mode: str | None = None     # offline | online | disabled; None: the run's own


def register() -> None:
    """Add the schemas to Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="lottery_schema", node=LotterySchema)
    cs.store(name="export_schema", node=ExportSchema)
    cs.store(name="control_schema", node=ControlSchema)
    cs.store(group="dataset", name="dataset_schema", node=DatasetSchema)
    cs.store(group="optimizer", name="sgd_schema", node=SGDSchema)
    cs.store(group="optimizer", name="adam_schema", node=AdamSchema)
    cs.store(group="prune", name="prune_schema", node=PruneSchema)
