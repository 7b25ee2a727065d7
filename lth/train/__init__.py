"""Training: durations, learning-rate schedules, the loop and evaluation."""

from lth.train.duration import parse_duration
from lth.train.evaluate import evaluate
from lth.train.loop import TrainResult, TrainState, train
from lth.train.schedule import constant_schedule, step_schedule

__all__ = ["parse_duration", "evaluate", "TrainResult", "TrainState", "train", "constant_schedule",
           "step_schedule"]
