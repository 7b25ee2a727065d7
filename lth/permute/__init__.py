"""Permutation symmetries of lth's networks: specs, applying a permutation, weight matching
(Git Re-Basin), the error barrier between two networks before and after aligning them, and
masks moved into another network's coordinates."""

from lth.permute.apply import (
    Perm,
    apply_perm,
    compose,
    identity,
    inverse,
    is_identity,
    random_perm,
)
from lth.permute.matching import weight_matching
from lth.permute.spec import PermSpec, perm_spec, supported

__all__ = [
    "Perm",
    "PermSpec",
    "apply_perm",
    "compose",
    "identity",
    "inverse",
    "is_identity",
    "perm_spec",
    "random_perm",
    "supported",
    "weight_matching",
]
