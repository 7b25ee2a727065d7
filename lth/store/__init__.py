"""The run store: a run directory's files named in one place, hashing, locks, the follower store.

Below the driver: ``lth.lottery`` trains rounds and branches into a ``RunStore``;
``lth.analysis``, ``lth.export`` and the scripts read stored runs through it.
"""

from lth.store.follower import FollowerStore
from lth.store.hashing import config_hash, run_hash, semantic_config
from lth.store.lock import RunLock
from lth.store.store import RunStore, checksum_path

__all__ = ["FollowerStore", "RunLock", "RunStore", "checksum_path", "config_hash",
           "run_hash", "semantic_config"]
