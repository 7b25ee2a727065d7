"""Sparse training: mask updates that change a training's mask (SET, RigL, GMP), one registry.

``registry``: the methods, their papers and defaults, ``SparseSettings`` and ``build_update``;
``dropgrow``: SET and RigL; ``gmp``: gradual magnitude pruning. The pure core they call (drop
and grow, schedules, random masks) is ``lth.pruning.dst``; layer densities
``lth.pruning.densities``.
"""

from lth.train.updates.registry import (
    METHODS,
    Method,
    SparseSettings,
    build_update,
    get_method,
    sparse_settings,
)

__all__ = ["METHODS", "Method", "SparseSettings", "build_update", "get_method",
           "sparse_settings"]
