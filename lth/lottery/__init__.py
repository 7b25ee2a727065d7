"""The lottery: iterative magnitude pruning with rewinding, and the branches trained beside its
rounds; the run store it writes is ``lth.store``."""

from lth.lottery.controls import CONTROLS, run_control, run_with_controls
from lth.lottery.driver import Branch, Lottery, RoundStart
from lth.lottery.replicas import ReplicaLottery
from lth.lottery.seeds import derive_seed
from lth.lottery.settings import RETRAIN_MODES, LotterySettings

__all__ = ["CONTROLS", "run_control", "run_with_controls", "Branch", "Lottery", "RoundStart",
           "RETRAIN_MODES", "LotterySettings", "ReplicaLottery", "derive_seed"]
