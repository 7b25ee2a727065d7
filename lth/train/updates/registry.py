"""The registry of sparse-training methods: mask updates within one training, by name.

Each entry names the method, its paper, how its training starts (a random mask at the target
densities, or dense) and its defaults; ``build_update`` gives a training its ``MaskUpdate``
(``lth.train.masking``). Adding a method is one entry (and its update class and tests).
Defaults, iterations and fractions of the training:

=========  ======================================  ==========  ====  ====  ========  =====  ====
method     paper                                   start       ΔT    ζ     schedule  begin  end
=========  ======================================  ==========  ====  ====  ========  =====  ====
static     sparse from scratch                     random      -     -     -         -      -
set        Mocanu et al. 2018                      random      100   0.3   constant  0      0.75
rigl       Evci et al. 2020                        random      100   0.3   cosine    0      0.75
gmp        Zhu & Gupta 2017                        dense       100   -     cubic     0.25   0.75
=========  ======================================  ==========  ====  ====  ========  =====  ====

SET's paper updates once per epoch until the end; the update interval and end here are the
protocol under which Evci et al. 2020 compare SET with RigL. GMP's begin and end are lth's
(Zhu & Gupta choose them per model): pruning in the middle half of the training, a quarter
left to recover.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lth.errors import ConfigError
from lth.pruning.densities import check_density, check_distribution

DROP_SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class Method:
    """One sparse-training method and its defaults (``begin``/``end``: fractions of the
    training). ``build``: ``"module:function"`` of ``(settings, mask, seed) -> MaskUpdate``
    (None: the mask never changes). ``dense_grads``: an update costs a dense gradient."""

    name: str
    paper: str
    summary: str
    build: str | None
    start: str = "random"  # random: a random mask at the target densities | dense
    update_every: int = 100
    drop_fraction: float = 0.3
    drop_schedule: str = "constant"
    begin: float = 0.0
    end: float = 0.75
    dense_grads: bool = False


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("static", "sparse from scratch", "a fixed random mask at the target densities, "
           "trained once", None, update_every=0, drop_fraction=0.0, end=0.0),
    Method("set", "Mocanu et al. 2018", "every ΔT iterations drop the fraction ζ of each "
           "layer's active weights of smallest |w| and regrow as many at random",
           "lth.train.updates.dropgrow:build_set"),
    Method("rigl", "Evci et al. 2020", "every ΔT iterations drop by smallest |w| and regrow "
           "the weights of largest dense |gradient|, at zero with zero optimizer state; ζ "
           "decayed by cosine to 0 at `end`", "lth.train.updates.dropgrow:build_rigl",
           drop_schedule="cosine", dense_grads=True),
    Method("gmp", "Zhu & Gupta 2017", "from dense, prune each layer by magnitude every ΔT "
           "iterations from `begin` to `end` along the cubic s_f + (s_i - s_f)(1 - "
           "(t - t0)/(t_end - t0))^3", "lth.train.updates.gmp:build", start="dense",
           drop_fraction=0.0, drop_schedule="cubic", begin=0.25),
)}


def get_method(name: str) -> Method:
    """The method ``name``; ConfigError naming the choices."""
    if name not in METHODS:
        raise ConfigError(f"sparse.method={name!r} is unknown; choose one of "
                          f"{', '.join(METHODS)}")
    return METHODS[name]


@dataclass(frozen=True)
class SparseSettings:
    """A sparse training, every time in iterations of its ``iterations``; checked here."""

    method: str
    density: float  # overall density of the prunable weights
    distribution: str  # uniform | er | erk (lth.pruning.densities)
    iterations: int  # the training's length
    update_every: int  # ΔT
    drop_fraction: float  # ζ (SET, RigL): the initial share of active weights dropped
    drop_schedule: str  # constant | cosine (SET, RigL)
    begin: int  # first update (GMP: t0)
    end: int  # no update from here on (RigL: ζ reaches 0; GMP: t_end, the last prune)

    def __post_init__(self) -> None:
        m = get_method(self.method)
        check_density(self.density)
        check_distribution(self.distribution)
        if m.build is None:
            return
        if not 0 < self.update_every <= self.iterations:
            raise ConfigError(f"sparse.update_every={self.update_every}it must be in 1.."
                              f"{self.iterations} iterations (train.duration): the interval ΔT "
                              "between mask updates, e.g. 100it")
        if not 0 <= self.begin < self.end <= self.iterations:
            raise ConfigError(f"sparse.begin={self.begin}it and sparse.end={self.end}it must "
                              f"satisfy 0 <= begin < end <= {self.iterations} (train.duration); "
                              "give them as fractions of the training, e.g. 0.25 and 0.75")
        if m.start == "random":
            if not 0.0 <= self.drop_fraction < 1.0:
                raise ConfigError(f"sparse.drop_fraction={self.drop_fraction} is outside "
                                  "[0, 1): the share of active weights dropped per update, "
                                  "e.g. 0.3")
            if self.drop_schedule not in DROP_SCHEDULES:
                raise ConfigError(f"sparse.drop_schedule={self.drop_schedule!r} is unknown; "
                                  f"choose one of {', '.join(DROP_SCHEDULES)}")

    @property
    def entry(self) -> Method:
        return get_method(self.method)


def sparse_settings(method: str, density: float, distribution: str, iterations: int,
                    update_every: int | None = None, drop_fraction: float | None = None,
                    drop_schedule: str | None = None, begin: float | None = None,
                    end: float | None = None) -> SparseSettings:
    """Settings of ``method`` with its defaults where a value is None (``begin``/``end``:
    fractions of ``iterations`` in [0, 1])."""
    m = get_method(method)
    for key, value in (("begin", begin), ("end", end)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"sparse.{key}={value} is outside [0, 1]: a fraction of "
                              "train.duration, e.g. 0.75")
    return SparseSettings(
        method, density, distribution, iterations,
        m.update_every if update_every is None else update_every,
        m.drop_fraction if drop_fraction is None else drop_fraction,
        m.drop_schedule if drop_schedule is None else drop_schedule,
        round(iterations * (m.begin if begin is None else begin)),
        round(iterations * (m.end if end is None else end)))


def build_update(settings: SparseSettings, mask: dict[str, Any], seed: int) -> Any:
    """The mask update of ``settings``'s method for a training starting at ``mask`` (None:
    a static mask); ``seed`` seeds its own random draws."""
    ref = settings.entry.build
    if ref is None:
        return None
    module, _, name = ref.partition(":")
    build: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return build(settings, mask, seed)
