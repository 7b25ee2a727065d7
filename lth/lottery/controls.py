"""Controls trained beside a ticket's rounds: is it the mask, the init, or just the density?

For round k >= 1 of a ticket (Frankle & Carbin 2019; Frankle et al. 2021):

- ``random_reinit``: the ticket's mask of round k with a fresh random initialisation, drawn
  with the seed ``derive_seed(seed, "control", "random_reinit", k)``;
- ``random_prune``: in each layer, the ticket's number of survivors at random places (the
  layer-wise shuffle; seed ``derive_seed(seed, "control", "random_prune", k)``), starting from
  the ticket's own start weights of round k (the rewind point under ``weight_rewind``);
- ``invert``: in each layer, the ticket's number of survivors, but the *lowest*-scoring
  weights by the round's own strategy and scores (Frankle et al. 2021's inversion), from the
  ticket's start weights. Iterative SynFlow is inverted by its one-step scores.

A method whose tickets survive ``random_prune`` and ``random_reinit`` only chooses how dense
each layer is; one that also survives ``invert`` does not even rank weights within a layer.

A control replays exactly the ticket's span of round k (iterations, learning rates, data
order); only the mask or the start weights differ. Its files go to
``round_<k>/controls/<name>/`` and its record, the ticket's keys plus ``control`` and
``control_seed``, to ``controls.jsonl``. Sinks get it as a round row whose metric names are
prefixed ``control/<name>/`` (e.g. ``control/random_prune/test/acc``), stepped by ``round``
(``lth.tracking.wandb_sink.control_metrics``). A control is a branch of its round: it is begun
here and trained and stored by the lottery's own round API.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from lth.errors import ConfigError
from lth.lottery.driver import Branch, Lottery, Record, RoundStart
from lth.lottery.seeds import derive_seed
from lth.lottery.settings import LotterySettings
from lth.lottery.states import PruneInputs
from lth.pruning import Mask, apply_mask, scores_of
from lth.pruning.prune import invert_mask
from lth.store.store import RunStore


def check_controls(names: Iterable[str]) -> tuple[str, ...]:
    """The control names, in order, without repeats; ConfigError naming the choices."""
    out: list[str] = []
    for name in names:
        if name not in CONTROLS:
            raise ConfigError(f"control {name!r} is unknown; choose from {', '.join(CONTROLS)}")
        if name not in out:
            out.append(name)
    return tuple(out)


def check_trainable(names: Iterable[str], settings: LotterySettings, granularity: str,
                    rounds: Iterable[int] | None = None) -> None:
    """ConfigError, before anything trains, for a control this run cannot train beside
    ``rounds`` (None: every round >= 1): ``invert`` ranks weights by the round's own scores,
    which channel pruning and round 1 of an early-bird ticket do not have."""
    if "invert" not in names:
        return
    if granularity == "channel":
        raise ConfigError("the invert control needs scores per weight and this run prunes "
                          "whole channels (prune.granularity=channel): drop invert from the "
                          "controls, or use prune.granularity=weight")
    if settings.early_bird_ticket and (rounds is None or 1 in set(rounds)):
        raise ConfigError("round 1's mask is the early-bird ticket's, drawn from weights not "
                          "stored: the invert control cannot rank them; drop invert from "
                          "prune.controls and train it beside later rounds with python -m "
                          "experiments.control control=invert rounds=[2,...]")


def control_seed(seed: int, name: str, k: int) -> int:
    """The seed of control ``name`` in round ``k``: fresh init or random mask."""
    return derive_seed(seed, "control", name, k)


def shuffled_mask(mask: Mask, seed: int) -> Mask:
    """Each layer's kept positions permuted at random: same shape and count per layer."""
    gen = torch.Generator().manual_seed(seed)
    out: Mask = {}
    for name in sorted(mask):
        flat = mask[name].flatten().cpu()
        out[name] = flat[torch.randperm(flat.numel(), generator=gen)].view(mask[name].shape)
    return {n: out[n].to(mask[n].device) for n in mask}


def prune_scores(lottery: Lottery, k: int, inputs: PruneInputs) -> dict[str, torch.Tensor]:
    """The scores round ``k``'s pruner ranks ``inputs`` by (the ``invert`` control's)."""
    s = lottery.settings
    return scores_of(lottery.pruner)(inputs.weights, inputs.mask, strategy=s.strategy,
                                     seed=s.prune_seed(k), initial=inputs.initial)


def _random_reinit(lottery: Lottery, k: int, model: nn.Module, ticket: Mask,
                   seed: int) -> Mask:
    """The ticket's mask on a fresh initialisation drawn with ``seed``."""
    torch.manual_seed(seed)
    model.load_state_dict(lottery.make_model().state_dict())
    return ticket


def _random_prune(lottery: Lottery, k: int, model: nn.Module, ticket: Mask,
                  seed: int) -> Mask:
    """The ticket's survivors per layer at random places, from its start weights."""
    return shuffled_mask(ticket, seed)


def _invert(lottery: Lottery, k: int, model: nn.Module, ticket: Mask, seed: int) -> Mask:
    """The lowest-scoring weights by the round's own scores, as many per layer as the
    ticket keeps, from its start weights."""
    if k == 1 and lottery.store.early_bird_mask_path.exists():
        raise ConfigError("round 1's mask is the early-bird ticket's, drawn from weights "
                          "not stored: the invert control cannot rank them; use rounds >= 2")
    states = lottery.states
    inputs = states.prune_inputs(k, states.initial_model())
    return invert_mask(prune_scores(lottery, k, inputs), inputs.mask, ticket)


# name -> the control's mask (the model holds the ticket's start weights, unmasked, and may
# be given other ones): the branch starts of this kind.
ControlStart = Callable[["Lottery", int, nn.Module, Mask, int], Mask]
CONTROLS: dict[str, ControlStart] = {
    "random_reinit": _random_reinit, "random_prune": _random_prune, "invert": _invert,
}


def control_start(lottery: Lottery, k: int, name: str,
                  ticket: RoundStart | None = None) -> RoundStart:
    """Control ``name`` of round ``k`` >= 1, ready to train: the ticket's start state and span,
    with the control's mask or initialisation. The ticket's mask is the stored one of round
    ``k``, or that of ``ticket`` (the round begun, when both train as one group)."""
    (name,) = check_controls([name])
    if k < 1:
        raise ConfigError(f"round {k} is dense: controls exist for rounds >= 1 only")
    began = time.perf_counter()
    states = lottery.states
    model = states.initial_model()
    ticket_mask = ticket.mask if ticket is not None else states.load_mask(model, k)
    span = states.start_weights(k, model)
    seed = control_seed(lottery.settings.seed, name, k)
    mask = CONTROLS[name](lottery, k, model, ticket_mask, seed)
    apply_mask(model, mask)
    branch = Branch(name, {"control": name, "control_seed": seed})
    return RoundStart(k, model, mask, span, {}, began, branch)


def run_control(lottery: Lottery, k: int, name: str) -> Record:
    """Train control ``name`` beside the stored round ``k`` >= 1 of ``lottery``; store it."""
    start = control_start(lottery, k, name)
    return lottery.finish_round(start, lottery.train_round(start))


def pending_controls(store: RunStore, names: Iterable[str],
                     rounds: Iterable[int] | None = None) -> list[tuple[int, str]]:
    """(round, control) pairs not yet in ``store``, for its completed rounds >= 1 (or
    ``rounds``)."""
    names = check_controls(names)
    done = {(r["round"], r["control"]) for r in store.read_controls()}
    completed = store.completed_rounds(rounds, first=1)
    return [(k, n) for k in completed for n in names if (k, n) not in done]


def run_with_controls(
    lottery: Lottery,
    names: Iterable[str],
    on_round: Callable[[Record], None] | None = None,
    on_control: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Run the pending rounds with the named controls beside each round k >= 1.

    Controls missing on rounds stored earlier, up to the last round asked for, are trained
    first (adding a control to a finished run completes it without retraining the ticket).
    Returns all round records.
    """
    names = check_controls(names)
    last = lottery.settings.last_round

    def controls_of(rounds: Iterable[int] | None) -> None:
        for k, name in pending_controls(lottery.store, names, rounds):
            record = run_control(lottery, k, name)
            if on_control is not None:
                on_control(record)

    def after_round(record: Record) -> None:
        if on_round is not None:
            on_round(record)
        if record["round"] >= 1:
            controls_of([record["round"]])

    controls_of([r["round"] for r in lottery.store.read_metrics() if 1 <= r["round"] <= last])
    return lottery.run(on_round=after_round)
