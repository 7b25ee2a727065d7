"""The lottery: iterative magnitude pruning with rewinding, over a content-addressed run store."""

from lth.lottery.controls import CONTROLS, run_control, run_with_controls
from lth.lottery.driver import RETRAIN_MODES, Lottery, LotterySettings
from lth.lottery.hashing import config_hash, semantic_config
from lth.lottery.replicas import ReplicaLottery
from lth.lottery.seeds import derive_seed
from lth.lottery.store import RunStore

__all__ = ["CONTROLS", "run_control", "run_with_controls", "RETRAIN_MODES", "Lottery",
           "LotterySettings", "ReplicaLottery", "derive_seed", "RunStore", "config_hash",
           "semantic_config"]
