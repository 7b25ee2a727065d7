"""The lottery: iterative magnitude pruning with rewinding, over a content-addressed run store."""

from lth.lottery.controls import CONTROLS, run_control, run_with_controls
from lth.lottery.driver import Branch, Lottery, RoundStart
from lth.lottery.hashing import config_hash, semantic_config
from lth.lottery.replicas import ReplicaLottery
from lth.lottery.seeds import derive_seed
from lth.lottery.settings import RETRAIN_MODES, LotterySettings
from lth.lottery.store import RunStore

__all__ = ["CONTROLS", "run_control", "run_with_controls", "Branch", "Lottery", "RoundStart",
           "RETRAIN_MODES", "LotterySettings", "ReplicaLottery", "derive_seed", "RunStore",
           "config_hash", "semantic_config"]
