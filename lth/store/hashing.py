"""Which config keys name a run: the semantic config and its hash.

A run directory is named by ``run_hash`` of the resolved config. Keys that do not change
results are left out, and a key added later is left out while it holds the value that
reproduces the old behaviour, so adding a key never renames stored runs (a test pins the
default experiment's hash).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePath
from typing import Any

# Keys that change where or how a run is logged, not what it computes: not hashed.
# ``replicas`` trains seeds side by side and ``group_branches`` a round's ticket and controls;
# each seed's run is the run of that seed alone.
# ``deterministic`` (like ``device``) chooses kernels, not what is computed; ``threads`` how
# many cores compute it.
NON_SEMANTIC_KEYS = frozenset({"name", "output_root", "wandb", "progress", "device", "hydra",
                               "replicas", "group_branches", "deterministic", "threads"})
# Nested keys that do not change the result of any stored round: ``prune.rounds`` only says
# how far to go, so raising it extends an existing run instead of starting a new one; where
# the data files lie does not change the data; resuming from a checkpoint is bit-identical;
# ``prune.controls`` only adds runs beside the ticket's rounds, so adding a control completes
# it on the existing run; ``train.compile`` is another way to run the same forward.
# The stability analyses (``analysis.instability`` and its options, early-bird detection)
# only add files beside the stored rounds, like ``prune.controls``.
NON_SEMANTIC_NESTED = ("prune.rounds", "prune.controls", "dataset.root", "dataset.download",
                       "train.checkpoint_every", "train.compile", "analysis.instability",
                       "analysis.alpha_points", "analysis.train_samples", "analysis.bn_reset",
                       "analysis.early_bird_every", "analysis.early_bird_threshold")
# Nested keys above that do change results when another key is true: a one-shot run prunes
# straight to the density of ``prune.rounds`` rounds. Format: dotted key -> dotted condition.
# Early-bird detection decides round 1's mask when ``analysis.early_bird_ticket`` is on.
SEMANTIC_WHEN: dict[str, str] = {"prune.rounds": "prune.oneshot",
                                 "analysis.early_bird_every": "analysis.early_bird_ticket",
                                 "analysis.early_bird_threshold": "analysis.early_bird_ticket"}
# Keys added after runs were stored: dropped from the hash while they hold the value that
# reproduces the old behaviour, so adding a key never renames existing runs.
# Format: dotted key -> default value.
HASH_NEUTRAL_DEFAULTS: dict[str, Any] = {
    "prune.granularity": "weight",
    "prune.channel_score": "l1",
    "prune.oneshot": False,
    "prune.schedule": [],
    "analysis.early_bird_ticket": False,
    "train.precision": "fp32",  # bf16 and fp16 round differently: hashed when set
    "prune.at_init": False,
    "prune.score_batches": 1,
    "prune.score_iterations": 100,
    "analysis.supermask": False,
    "analysis.supermask_constant": False,
    "prune.pool_bias": False,
    "prune.score_mode": "train",
    "prune.distribution": None,
    "prune.calibration_samples": 128,
    "prune.nm": "",
    "prune.channel_round_to": 1,
    "reproducible": "default",  # portable pins other kernels: other bits, another run
    "transfer": None,  # a ticket transferred from another run (experiments.transfer)
}
# Config nodes added after runs were stored: dropped from the hash when nothing of theirs is
# left in it, so that adding the node never renames existing runs.
NEW_NODES = ("analysis",)


def _get(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def _drop(cfg: dict[str, Any], dotted: str, default: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = cfg
    for p in parents:
        node = node.get(p)
        if not isinstance(node, dict):
            return
    if leaf in node and node[leaf] == default:
        del node[leaf]


# Scores corrected after runs were stored: a run that ranks by one is hashed with the version
# of the score it is computed by (``prune.score_version``), so a run stored by the earlier code
# keeps its directory and files, and the corrected score trains under a new hash instead of
# mixing with it. score -> version. GraSP 2: g and Hg over the pruned weights only, as the
# reference implementations compute them (1: every parameter with a gradient).
SCORE_VERSIONS: dict[str, int] = {"grasp": 2}


def _score_version(cfg: dict[str, Any]) -> int | None:
    from lth.pruning.registry import STRATEGIES  # torch-free

    strategy = _get(cfg, "prune.strategy")
    kind = STRATEGIES.get(strategy, (None, None))[0] if isinstance(strategy, str) else None
    return SCORE_VERSIONS.get(kind) if kind is not None else None


# Config nodes that say nothing unless one key of theirs is set: dropped from the hash
# while it is null. Sparse training (``sparse.method``) replaces IMP's rounds; with the
# method null the node's other keys are unread.
OFF_UNLESS: dict[str, str] = {"sparse": "method"}


def semantic_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved config that determines results."""
    out = json.loads(json.dumps({k: v for k, v in cfg.items() if k not in NON_SEMANTIC_KEYS}))
    for node, key in OFF_UNLESS.items():
        if isinstance(out.get(node), dict) and out[node].get(key) is None:
            del out[node]
    for dotted in NON_SEMANTIC_NESTED:
        parent, leaf = dotted.rsplit(".", 1)
        condition = SEMANTIC_WHEN.get(dotted)
        if condition and _get(out, condition):
            continue
        if isinstance(out.get(parent), dict):
            out[parent].pop(leaf, None)
    for dotted, default in HASH_NEUTRAL_DEFAULTS.items():
        _drop(out, dotted, default)
    for node in NEW_NODES:
        if out.get(node) == {}:
            del out[node]
    version = _score_version(out)
    if version is not None:
        out["prune"]["score_version"] = version
    return out


def config_hash(cfg: dict[str, Any]) -> str:
    """A 12-hex-digit digest of the semantic config (canonical JSON, sorted keys)."""
    text = json.dumps(semantic_config(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def teacher_identity(path: str) -> str:
    """``<name>/<hash>`` of the run directory ``path``: the run, wherever its root lies."""
    p = PurePath(path)
    return f"{p.parent.name}/{p.name}"


def run_hash(cfg: dict[str, Any]) -> str:
    """The name of the run directory of the resolved config ``cfg``: its ``config_hash``, in
    which a student's ``teacher`` (a path in its config.yaml) is the teacher's identity
    ``<name>/<hash>``, so moving the teacher's output root does not rename its students."""
    teacher = cfg.get("teacher")
    if isinstance(teacher, str):
        cfg = {**cfg, "teacher": teacher_identity(teacher)}
    return config_hash(cfg)
