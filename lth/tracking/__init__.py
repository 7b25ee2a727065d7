"""Metric sinks: the JSONL curve file and W&B (offline by default).

Only this package imports wandb, and only inside functions, so `import lth` stays fast.
"""

from lth.tracking.sinks import CurveFileSink, NullSink, Sink
from lth.tracking.wandb_records import (
    WandbRun,
    find_wandb_file,
    read_wandb_records,
    read_wandb_run,
)
from lth.tracking.wandb_sink import ROUND_KEYS, WandbSink, open_wandb, round_metrics

__all__ = [
    "ROUND_KEYS",
    "CurveFileSink",
    "NullSink",
    "Sink",
    "WandbRun",
    "WandbSink",
    "find_wandb_file",
    "open_wandb",
    "read_wandb_records",
    "read_wandb_run",
    "round_metrics",
]
