"""Ticket transfer across datasets (Morcos et al. 2019, "One ticket to win them all").

A stored run's ticket of round k (its mask and its start weights, the rewind point) is
trained on another dataset with the same input shape, as round 0 of a run of its own. When
the class count differs the output layer (the last ``nn.Linear``, ``lth.models.base``) cannot
be carried over: it is re-initialised (the target run's own initialisation, seed
``derive_seed(seed, "init")`` as any run's) and kept dense; every other layer keeps the
ticket's weights and mask. Variants, each its own run:

- ``ticket``: the ticket's mask on its start weights;
- ``random_prune``: the ticket's survivors per layer at random places (seed
  ``derive_seed(seed, "transfer", "random_prune")``), on its start weights;
- ``random_reinit``: the ticket's mask on a fresh initialisation drawn with
  ``derive_seed(seed, "transfer", "random_reinit")`` (not the run's init seed: a target run
  of the source's seed and model would draw the source's own initialisation again).

The run's ``init.pt`` holds the transferred start weights; its record adds ``transfer``
(the variant), ``source``, ``source_round``, ``source_test_acc`` and
``output_reinitialised``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from lth.errors import ConfigError
from lth.lottery.controls import shuffled_mask
from lth.lottery.driver import Lottery, Record, RoundStart
from lth.lottery.seeds import derive_seed
from lth.pruning import apply_mask, check_mask
from lth.store import RunStore
from lth.train import Span

VARIANTS = ("ticket", "random_prune", "random_reinit")


@dataclass(frozen=True)
class Source:
    """The ticket transferred: round ``round`` of the run ``identity`` (``<name>/<hash>``),
    its start weights (the rewind point), its mask, its test accuracy and where the mask was
    read (for messages). Read from a run directory (``from_store``) or a ticket file."""

    identity: str
    round: int
    rewind: dict[str, torch.Tensor]
    mask: dict[str, torch.Tensor]
    test_acc: float
    where: str

    @classmethod
    def from_store(cls, store: RunStore, identity: str, round: int) -> Source:
        """Round ``round`` of the stored run ``store`` (a completed round)."""
        record = next(r for r in store.read_metrics() if r["round"] == round)
        return cls(identity, round, store.load_tensors(store.rewind_path),
                   store.load_tensors(store.mask_path(round)), record["test_acc"],
                   str(store.mask_path(round)))


def output_layer(model: nn.Module) -> str:
    """The name of the output layer, the last ``nn.Linear`` in ``model.modules()`` order."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no Linear output layer to re-initialise")
    return names[-1]


def check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ConfigError(f"variant={variant!r} is unknown; choose one of {', '.join(VARIANTS)}")
    return variant


def carried(target: dict[str, torch.Tensor], ticket: dict[str, torch.Tensor],
            out: str) -> bool:
    """Whether the output layer is carried over (same class count); ConfigError when another
    tensor does not fit (another input shape or model)."""
    odd = [n for n in target if n in ticket and not n.startswith(f"{out}.")
           and ticket[n].shape != target[n].shape] + sorted(set(target) ^ set(ticket))
    if odd:
        name = odd[0]
        got = tuple(ticket[name].shape) if name in ticket else "none"
        want = tuple(target[name].shape) if name in target else "none"
        raise ConfigError(f"the source's {name} is {got} but the target dataset needs {want}: "
                          "the ticket transfers to datasets with the source's input shape")
    return all(ticket[n].shape == target[n].shape for n in target if n.startswith(f"{out}."))


def transfer_start(lottery: Lottery, source: Source, variant: str) -> RoundStart:
    """The transferred ticket as round 0 of ``lottery`` (the target run), ready to train;
    its start weights are saved as the run's init.pt the first time."""
    check_variant(variant)
    began, s, store = time.perf_counter(), lottery.settings, lottery.store
    torch.manual_seed(s.init_seed)
    fresh = lottery.make_model().to(lottery.device)
    own = {n: t.clone() for n, t in fresh.state_dict().items()}
    ticket, mask = source.rewind, dict(source.mask)
    out = output_layer(fresh)
    keep_output = carried(own, ticket, out)
    if variant == "random_reinit":
        torch.manual_seed(derive_seed(s.seed, "transfer", "random_reinit"))
        other = lottery.make_model().to(lottery.device).state_dict()
        own = {n: (own[n] if n.startswith(f"{out}.") else t) for n, t in other.items()}
    start = dict(own) if variant == "random_reinit" else {
        n: (t if keep_output or not n.startswith(f"{out}.") else own[n]).to(own[n].device)
        for n, t in ticket.items()}
    if not keep_output:  # a new output layer: dense
        mask = {n: (torch.ones_like(own[n], dtype=torch.bool) if n.startswith(f"{out}.")
                    else m) for n, m in mask.items()}
    if variant == "random_prune":
        mask = shuffled_mask(mask, derive_seed(s.seed, "transfer", "random_prune"))
    if not store.init_path.exists():
        store.save_tensors(store.init_path, start)
    model = lottery.states.initial_model()  # init.pt, checked
    mask = {n: m.to(lottery.device) for n, m in mask.items()}
    check_mask(model, mask, source.where)
    apply_mask(model, mask)
    extra = {"transfer": variant, "source": source.identity, "source_round": source.round,
             "source_test_acc": source.test_acc, "output_reinitialised": not keep_output}
    return RoundStart(0, model, mask, Span(0, s.iterations, lottery.lr_factor), {}, began,
                      extra=extra)


def run_transfer(lottery: Lottery, source: Source, variant: str) -> Record:
    """Train (or resume) the transferred ticket as the target run's round 0; store it."""
    start = transfer_start(lottery, source, variant)
    return lottery.finish_round(start, lottery.train_round(start))
