"""Training: durations, learning-rate schedules, the one loop core and evaluation."""

from lth.train.core import Callbacks, LoopOptions, Span, TrainResult, TrainState, run_loop
from lth.train.duration import parse_duration
from lth.train.evaluate import evaluate
from lth.train.loop import train
from lth.train.schedule import constant_schedule, step_schedule

__all__ = ["Callbacks", "LoopOptions", "Span", "TrainResult", "TrainState", "run_loop",
           "parse_duration", "evaluate", "train", "constant_schedule", "step_schedule"]
