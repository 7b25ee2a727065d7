"""The settings of an IMP experiment, every duration in iterations, checked once at the edge."""

from __future__ import annotations

from dataclasses import dataclass

from lth.errors import ConfigError
from lth.lottery.seeds import derive_seed
from lth.measure.early_bird import check_threshold
from lth.pruning import PruneRates, check_strategy, scheduled_densities, target_densities
from lth.pruning.densities import check_distribution
from lth.pruning.registry import get_scope

RETRAIN_MODES = ("weight_rewind", "lr_rewind", "finetune")


@dataclass(frozen=True)
class LotterySettings:
    """Everything the loop needs, in iterations. Built once from the config, at the edge."""

    seed: int
    rounds: int
    iterations: int
    batch_size: int
    rewind_iter: int
    strategy: str
    rates: PruneRates
    retrain: str = "weight_rewind"
    finetune_iters: int = 0
    eval_every: int = 0
    include_bias: bool = False
    checkpoint_every: int = 0  # iterations between mid-round checkpoints (0: none)
    oneshot: bool = False               # one step from dense to the density of `rounds` rounds
    schedule: tuple[float, ...] = ()    # explicit target density of each round k >= 1
    early_bird_every: int = 0           # round 0: draw round 1's mask this often (0: off)
    early_bird_threshold: float = 0.1   # window of 5 masks settled: all distances below it
    early_bird_ticket: bool = False     # round 1 uses the mask of the early-bird point
    at_init: bool = False               # every round k >= 1 prunes its start weights, densely
    supermask: bool = False             # record each round's mask on the init, untrained
    supermask_constant: bool = False    # ... with Zhou's sign * constant magnitude weights
    distribution: str | None = None     # layer densities of each round (None: by the rates)

    def __post_init__(self) -> None:
        check_strategy(self.strategy)
        if self.rounds < 0:
            raise ConfigError(f"prune.rounds={self.rounds} is negative; use 0 or more")
        if self.iterations <= 0:
            raise ConfigError("train.duration is 0: train for at least one iteration")
        if self.rewind_iter > self.iterations:
            raise ConfigError(
                f"prune.rewind ({self.rewind_iter} iterations) is later than train.duration "
                f"({self.iterations} iterations): rewind to an earlier point"
            )
        if self.retrain not in RETRAIN_MODES:
            raise ConfigError(
                f"prune.retrain={self.retrain!r} is unknown; choose one of "
                f"{', '.join(RETRAIN_MODES)}"
            )
        if self.finetune_iters < 0:
            raise ConfigError("prune.finetune_duration is negative: use 0it (no retraining: "
                              "the pruned network is only evaluated) or more")
        if self.oneshot and self.schedule:
            raise ConfigError("prune.oneshot=true and prune.schedule both set: choose one")
        check_threshold(self.early_bird_threshold)
        if self.early_bird_every < 0:
            raise ConfigError("analysis.early_bird_every is negative; use 0it (off) or more")
        if self.early_bird_ticket and self.at_init:
            raise ConfigError("analysis.early_bird_ticket=true draws round 1's mask from weights "
                              "trained in round 0, prune.at_init=true from the initial ones: "
                              "choose one")
        if self.early_bird_ticket and not self.early_bird_every:
            raise ConfigError("analysis.early_bird_ticket=true needs analysis.early_bird_every "
                              "> 0it (how often round 0 draws a mask)")
        if self.at_init and self.retrain != "weight_rewind":
            raise ConfigError(
                f"prune.at_init=true with prune.retrain={self.retrain}: pruning at "
                "initialisation trains the pruned initial weights, but "
                f"{self.retrain} keeps the trained ones; use prune.retrain=weight_rewind")
        if self.distribution is not None:
            check_distribution(self.distribution, "prune.distribution")
            if not get_scope(check_strategy(self.strategy)[1]).by_layer:
                raise ConfigError(f"prune.distribution={self.distribution} sets each layer's "
                                  f"density, but prune.strategy={self.strategy} ranks layers "
                                  "together: use a layer-wise strategy (e.g. "
                                  "magnitude_layerwise, random, snip_layerwise)")
        steps = (1.0, *self.schedule)
        if not all(0 < b < a for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"prune.schedule={list(self.schedule)} must be densities in "
                              "(0, 1) that decrease round by round, e.g. [0.5, 0.2, 0.05]")

    @property
    def last_round(self) -> int:
        """The last round to run: ``rounds``, or fewer when one-shot or a schedule ends."""
        if self.oneshot:
            return min(self.rounds, 1)
        if self.schedule:
            return min(self.rounds, len(self.schedule))
        return self.rounds

    def round_density(self, k: int) -> float:
        """The overall target density of round ``k`` >= 1 at the base rate ``prune.fraction``
        (what ``distribution`` spreads over the layers)."""
        if self.schedule and not self.oneshot:
            return self.schedule[k - 1]
        return (1.0 - self.rates.fraction) ** (self.rounds if self.oneshot else k)

    def round_densities(self, k: int, rates: dict[str, float]) -> dict[str, float]:
        """Each tensor's target density in round ``k`` >= 1, from its per-round rate."""
        if self.oneshot:
            return scheduled_densities(rates, self.rounds)
        if self.schedule:
            return target_densities(rates, self.rates.fraction, self.schedule[k - 1])
        return scheduled_densities(rates, k)

    @property
    def data_seed(self) -> int:
        # The same data order in every round, as in open_lth.
        return derive_seed(self.seed, "data")

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, "init")

    def prune_seed(self, round_index: int) -> int:
        return derive_seed(self.seed, "prune", round_index)
