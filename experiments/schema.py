"""Typed schemas for the config tree, registered in Hydra's ConfigStore.

A typo in a key or a wrong value type fails when the config is composed, with Hydra's message,
not an hour into a run. Units are in the field comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


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
    precision: str = "fp32"           # fp32 | bf16 | fp16 (autocast; fp16 with a GradScaler)
    compile: bool = False             # torch.compile the model's forward; not hashed


@dataclass
class PruneSchema:
    # a score and a scope, e.g. magnitude_global | magnitude_layerwise | random | snip | grasp |
    # synflow | movement_row: every name in lth.pruning.registry (docs/pruning.md, --help)
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
    # granularity=channel: the magnitude strategies' channel score, l1 | l2 | bn | random
    channel_score: str = "l1"
    # random_reinit | random_prune | invert: trained beside each round k >= 1 (not hashed)
    controls: list[str] = field(default_factory=list)
    oneshot: bool = False                # one step from dense to the density of `rounds` rounds
    schedule: list[float] = field(default_factory=list)  # target density per round (k >= 1)
    at_init: bool = False                # each round k >= 1 prunes its start weights (init)
    score_batches: int = 1               # snip/grasp: training batches the scores sum over
    score_iterations: int = 100          # synflow: scoring steps, exponential density schedule
    score_mode: str = "train"            # snip/grasp: scratch model in train | eval mode (BN)
    # uniform | er | erk: each round's layer densities at its overall density (a layer-wise
    # strategy); null: by the rates (fraction, conv_fraction, output_fraction)
    distribution: str | None = None
    calibration_samples: int = 128       # wanda/sparsegpt: training samples they calibrate on
    nm: str = ""                         # "N:M", e.g. "2:4": N kept of every M inputs ("": off)
    channel_round_to: int = 1            # granularity=channel: kept counts multiples of it


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
    # W&B's own environment variables are the defaults (cluster scripts set them once for every
    # tool); an explicit wandb.<key>= on the command line wins.
    mode: str = "${oc.env:WANDB_MODE,offline}"       # offline | online | disabled
    project: str = "${oc.env:WANDB_PROJECT,lth}"
    entity: str | None = "${oc.env:WANDB_ENTITY,null}"
    tags: list[str] = field(default_factory=list)
    dir: str | None = "${oc.env:WANDB_DIR,null}"     # where wandb/ is written (None: output_root)


@dataclass
class AnalysisSchema:
    # -- stability analyses (instability, early-bird tickets); all but early_bird_ticket are
    # not hashed: they add files beside the stored rounds
    instability: bool = False         # two copies per completed round, their error barrier
    alpha_points: int = 30            # evenly spaced α on the path between the copies (>= 2)
    train_samples: int = 1000         # fixed training subset for the train-error barrier
    bn_reset: bool | None = None      # recompute BatchNorm statistics per α (None: BN models)
    early_bird_every: str = "0it"     # round 0: draw round 1's mask this often; "0it": off
    early_bird_threshold: float = 0.1  # max normalized Hamming distance in the window of 5
    early_bird_ticket: bool = False   # round 1's mask drawn at the early-bird point (hashed)
    # -- supermasks (Zhou et al. 2019); hash-neutral at false
    supermask: bool = False           # record supermask_test_acc for each round k >= 1
    supermask_constant: bool = False  # supermask weights sign(w_i) * std(layer's w_i)


@dataclass
class SparseSchema:
    # sparse training instead of IMP: one training (round 0) whose mask the method sets and
    # updates; null: IMP (the rest of this node is then not hashed). docs/sparse-training.md
    method: str | None = None         # static | set | rigl | gmp (lth.train.updates)
    density: float = 0.1              # overall density of the prunable weights, in (0, 1]
    distribution: str = "erk"         # uniform | er | erk: the layer densities
    update_every: str | None = None   # ΔT between mask updates (duration); null: 100it
    drop_fraction: float | None = None  # SET/RigL ζ in [0, 1); null: 0.3
    drop_schedule: str | None = None  # SET/RigL constant | cosine; null: the method's
    begin: float | None = None        # first update, fraction of train.duration; null: method's
    end: float | None = None          # no update from here (fraction); null: method's (0.75)


@dataclass
class LotterySchema:
    name: str = "mnist1d_mlp"         # experiment name: <output_root>/<name>/<hash>/
    seed: int = 0                     # the one seed: init, data order, pruning derive from it
    output_root: str = "runs"         # root of the run store
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    deterministic: bool = False       # deterministic algorithms (exact GPU resume); not hashed
    # default (this machine's fastest kernels) | portable (kernels pinned before torch loads:
    # the same bits on any x86-64 CPU with AVX2); hashed when portable
    reproducible: str = "default"
    progress: bool = True             # progress bar during training
    threads: str = "auto"             # intra-op CPU threads: auto (1, or $OMP_NUM_THREADS) | N
    replicas: int = 1                 # seeds seed..seed+replicas-1 trained together (vmap)
    # train each round's ticket and controls (and the instability copies) as one replica
    # group, instead of one after another; implied by replicas > 1; not hashed
    group_branches: bool = False
    model: Any = MISSING              # a _target_ node from conf/model
    dataset: DatasetSchema = field(default_factory=DatasetSchema)
    optimizer: Any = MISSING          # a _partial_ optimizer from conf/optimizer
    train: TrainSchema = field(default_factory=TrainSchema)
    prune: PruneSchema = field(default_factory=PruneSchema)
    analysis: AnalysisSchema = field(default_factory=AnalysisSchema)
    sparse: SparseSchema = field(default_factory=SparseSchema)
    wandb: WandbSchema = field(default_factory=WandbSchema)
    # a ticket transferred from another run (experiments.transfer): {source: <name>/<hash>,
    # round, variant}; None for every other run (hash-neutral)
    transfer: Any = None


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
    latency_batch: int = 32           # the realistic batch timed beside batch 1 (samples)
    latency_repeats: int = 50         # timed ONNX Runtime runs per batch size (median reported)
    latency_warmup: int = 5           # untimed runs first


@dataclass
class ControlSchema:
    run_dir: str = MISSING            # an existing run directory <output_root>/<name>/<hash>
    control: Any = MISSING            # random_reinit | random_prune | invert, or a list
    rounds: list[int] = field(default_factory=list)  # completed rounds >= 1; [] = all
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    # offline | online | disabled; None: $WANDB_MODE if set, else the run's own wandb.mode
    wandb_mode: str | None = "${oc.env:WANDB_MODE,null}"


@dataclass
class DistillSchema:
    name: str = "distill"             # experiment name: <output_root>/<name>/<hash>/
    teacher: str | None = None        # the teacher: a run directory of experiments.lottery
    round: int = 0                    # the teacher's round (0: the dense network)
    temperature: float = 4.0          # softmax temperature T of the soft targets
    alpha: float = 0.9                # weight of the soft (T^2 * KL) term; 1 - alpha on labels
    params: int | None = None         # student parameter budget (None: the model as given)
    params_round: int | None = None   # budget = parameters of the teacher run's round k
    # the model key scaled to the budget (None: width, hidden or channels, whichever it has)
    width_key: str | None = None
    seed: int = 0                     # the student's init and data order derive from it
    output_root: str | None = None    # root of the run store (None: the teacher's)
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    model: Any = None                 # the student, a conf/model node (None: the teacher's)
    optimizer: Any = MISSING          # a _partial_ optimizer from conf/optimizer
    train: TrainSchema = field(default_factory=TrainSchema)
    wandb: WandbSchema = field(default_factory=WandbSchema)


@dataclass
class InstabilitySchema:
    run_dir: str = MISSING            # an existing run directory <output_root>/<name>/<hash>
    rounds: list[int] = field(default_factory=list)  # completed rounds; [] = all
    alpha_points: int = 30            # evenly spaced α on the path between the copies (>= 2)
    train_samples: int = 1000         # fixed training subset for the train-error barrier
    bn_reset: bool | None = None      # recompute BatchNorm statistics per α (None: BN models)
    device: str = "auto"              # auto | cpu | cuda | cuda:<i>
    progress: bool = True             # progress bar during training
    # offline | online | disabled; None: $WANDB_MODE if set, else the run's own wandb.mode
    wandb_mode: str | None = "${oc.env:WANDB_MODE,null}"


def strategies_help(indent: int = 0) -> str:
    """The ``${lth_strategies:<indent>}`` of the ``--help`` texts: every strategy of the
    registry (read only when Hydra renders the help; the registry imports no torch)."""
    from lth.pruning.registry import strategy_list

    return strategy_list(int(indent))


def register() -> None:
    """Add the schemas to Hydra's ConfigStore and the help's resolver (idempotent)."""
    if not OmegaConf.has_resolver("lth_strategies"):
        OmegaConf.register_new_resolver("lth_strategies", strategies_help)
    cs = ConfigStore.instance()
    cs.store(name="lottery_schema", node=LotterySchema)
    cs.store(name="export_schema", node=ExportSchema)
    cs.store(name="control_schema", node=ControlSchema)
    cs.store(name="distill_schema", node=DistillSchema)
    cs.store(name="instability_schema", node=InstabilitySchema)
    # Not in the groups they type, so `--help` does not offer them as options: a group file
    # names its schema as ``- /<name>@_here_`` in its defaults list.
    cs.store(name="dataset_schema", node=DatasetSchema)
    cs.store(name="sgd_schema", node=SGDSchema)
    cs.store(name="adam_schema", node=AdamSchema)
    cs.store(name="prune_schema", node=PruneSchema)
