"""Sub-seeds derived from the one run seed, so each source of randomness is independent."""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *tags: str | int) -> int:
    """A 63-bit seed from ``seed`` and ``tags`` (e.g. ``derive_seed(0, "prune", 3)``)."""
    text = "/".join(str(t) for t in (seed, *tags))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1
