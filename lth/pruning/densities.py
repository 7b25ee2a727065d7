"""Layer-wise densities for one overall density: uniform, Erdős–Rényi (ER) and ER-Kernel (ERK).

Evci et al. 2020 (RigL), as google-research/rigl ``sparse_utils.get_sparsities`` computes them:

- ``uniform``: every tensor at the overall density;
- ``er`` (Mocanu et al. 2018): tensor l's density is ``eps * (n_in + n_out) / (n_in * n_out)``
  (for a conv weight [out, in, kh, kw] its first two sizes);
- ``erk``: ``eps * sum(shape) / prod(shape)``, the kernel's sizes included.

``eps`` is chosen so that the kept count equals the uniform one: with ``N_l`` weights in tensor
l and ``z_l = floor((1 - density) * N_l)`` the zeros the uniform distribution would give it,
``eps * sum_l p_l N_l = sum_l (N_l - z_l)``. Where ``eps * p_l`` would exceed 1 the tensors of
the largest raw ``p_l`` are made dense and ``eps`` is found again for the rest (their zeros
removed from the budget), until no density exceeds 1: the reference's loop. Densities are of
whole tensors; a tensor of N weights then keeps ``round(N * density)``
(``lth.pruning.scopes.kept_count``), the rounding of every mask in lth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from lth.errors import ConfigError

DISTRIBUTIONS = ("uniform", "er", "erk")


def check_density(density: float, key: str = "sparse.density") -> float:
    """``density`` if it is in (0, 1]; ConfigError naming ``key`` otherwise."""
    if not (isinstance(density, (int, float)) and 0.0 < density <= 1.0):
        raise ConfigError(f"{key}={density} is outside (0, 1]: it is the share of the "
                          "prunable weights kept, e.g. 0.1")
    return float(density)


def check_distribution(name: str, key: str = "sparse.distribution") -> str:
    """``name`` if it is a distribution; ConfigError naming the choices otherwise."""
    if name not in DISTRIBUTIONS:
        raise ConfigError(f"{key}={name!r} is unknown; choose one of {', '.join(DISTRIBUTIONS)}")
    return name


def raw_probability(shape: Sequence[int], distribution: str) -> float:
    """The un-scaled density of a tensor of ``shape`` under ER or ERK."""
    if distribution == "erk" or len(shape) < 2:  # a vector: ER and ERK agree (sum / prod)
        return sum(shape) / math.prod(shape)
    n_out, n_in = shape[0], shape[1]
    return (n_in + n_out) / (n_in * n_out)


def layer_densities(shapes: Mapping[str, Sequence[int]], density: float,
                    distribution: str = "uniform") -> dict[str, float]:
    """Each tensor's density (name -> [0, 1]) so that the tensors of ``shapes`` keep
    ``density`` of their weights overall under ``distribution``."""
    check_density(density)
    check_distribution(distribution)
    if distribution == "uniform" or density == 1.0:
        return {n: density for n in shapes}
    sizes = {n: math.prod(s) for n, s in shapes.items()}
    raw = {n: raw_probability(s, distribution) for n, s in shapes.items()}
    dense: set[str] = set()
    while True:
        rhs = sum(sizes[n] - math.floor((1 - density) * sizes[n]) for n in shapes
                  if n not in dense) - sum(math.floor((1 - density) * sizes[n]) for n in dense)
        divisor = sum(raw[n] * sizes[n] for n in shapes if n not in dense)
        if divisor == 0:  # every tensor dense (cannot happen for density < 1)
            break
        eps = rhs / divisor
        top = max(raw[n] for n in shapes if n not in dense)
        if top * eps <= 1:
            break
        dense |= {n for n in shapes if n not in dense and raw[n] == top}
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


def mask_densities(mask: Mapping[str, object], density: float,
                   distribution: str = "uniform") -> dict[str, float]:
    """``layer_densities`` for the tensors of a mask (name -> bool tensor)."""
    return layer_densities({n: tuple(m.shape) for n, m in mask.items()},  # type: ignore[attr-defined]
                           density, distribution)
