"""Mask transport: another run's ticket mask, moved into this run's coordinates, trained from
this run's start weights ("Aligning Lottery Ticket Masks using Weight Symmetry", ICML 2025).

Run A's mask of round k is permuted into run B's coordinates by the permutation that aligns
A's trained dense network (round 0) to B's (weight matching, ``lth.lottery.pairs``), and
trained beside B's round k as a branch of kind ``transport`` from B's start weights of round
k (its rewind point) over the span and data order of B's own ticket, so only the mask
differs. Beside it, with the same start:

- ``permuted``: A's mask permuted into B's coordinates;
- ``unpermuted``: A's mask as it is (Frankle & Carbin's "another init" case);
- ``random``: the permuted mask's survivors per layer at random places (the same layer
  densities; seed ``derive_seed(B's seed, "transport", "random", k)``).

B's own ticket is B's round k. Each branch is ``round_<k>/transport/<variant>-<key>/`` with
its record in ``transport.jsonl``; the key (``transport_key``) names A's and B's config
hashes, the round, the dense round matched and the matching, so another source, round or
method is another branch. The permutation is stored once in
``round_0/transport/<key>.perm.pt``. The record adds the variant, A's identity, B's own
ticket's test accuracy and the mask's Jaccard overlap with B's ticket (and its chance level).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from lth.errors import ConfigError
from lth.lottery.controls import shuffled_mask
from lth.lottery.driver import Branch, Lottery, Record, RoundStart
from lth.lottery.pairs import MatchOptions, OtherRun, mask_overlap, pair_key, stored_perm
from lth.lottery.seeds import derive_seed
from lth.permute import Perm, apply_perm, perm_spec, weight_matching
from lth.pruning import Mask, apply_mask, check_mask
from lth.store import RunStore
from lth.tracking.wandb_sink import round_metrics

KIND = "transport"
VARIANTS = ("permuted", "unpermuted", "random")
MATCHED_ROUND = 0  # the trained dense networks are aligned


def check_variants(names: Iterable[str]) -> tuple[str, ...]:
    """The variant names in order, without repeats; ConfigError naming the choices."""
    out: list[str] = []
    for name in names:
        if name not in VARIANTS:
            raise ConfigError(f"variant {name!r} is unknown; choose from {', '.join(VARIANTS)}")
        out += [] if name in out else [name]
    return tuple(out)


def check_retrain(retrain: str) -> None:
    """ConfigError unless B rewinds its weights (the transported mask starts from them)."""
    if retrain != "weight_rewind":
        raise ConfigError(f"run_b retrains with {retrain}: mask transport starts from B's "
                          "rewind point; use a run with prune.retrain=weight_rewind")


def transport_key(other: OtherRun, store: RunStore, k: int, match: MatchOptions) -> str:
    """What names the branches of ``other``'s round-``k`` mask in the run ``store``."""
    return pair_key({"kind": KIND, "run_a": other.hash, "run_b": store.root.name,
                     "round": k, "matched_round": MATCHED_ROUND, **match.fields()})


def branch_name(variant: str, key: str) -> str:
    return f"{variant}-{key}"


def transport_perm(lottery: Lottery, other: OtherRun, match: MatchOptions) -> Perm:
    """The permutation aligning A's trained dense network to B's (stored once per A, B and
    matching, whatever the round)."""
    key = pair_key({"kind": KIND, "run_a": other.hash, "run_b": lottery.store.root.name,
                    "matched_round": MATCHED_ROUND, **match.fields()})
    model, states = lottery.states.initial_model(), lottery.states
    b = states.load_state(model, lottery.store.final_path(MATCHED_ROUND))
    a = states.load_state(model, other.store.final_path(MATCHED_ROUND))
    return stored_perm(lottery.store, MATCHED_ROUND, KIND, key, lambda: weight_matching(
        perm_spec(model), b, a, max_iter=match.max_iter, seed=match.seed))


def transported(lottery: Lottery, other: OtherRun, k: int, match: MatchOptions) -> Mask:
    """A's round-k mask in B's coordinates."""
    model = lottery.states.initial_model()
    mask = other.store.load_tensors(other.store.mask_path(k))
    check_mask(model, mask, str(other.store.mask_path(k)))
    return apply_perm(perm_spec(model), transport_perm(lottery, other, match), mask)


def transport_start(lottery: Lottery, other: OtherRun, k: int, variant: str,
                    match: MatchOptions) -> RoundStart:
    """Variant ``variant`` of A's round-``k`` mask on B's start weights of round ``k``."""
    (variant,) = check_variants([variant])
    check_retrain(lottery.settings.retrain)
    began, states = time.perf_counter(), lottery.states
    model = states.initial_model()
    span = states.start_weights(k, model)
    seed = derive_seed(lottery.settings.seed, KIND, "random", k)
    if variant == "unpermuted":
        mask = other.store.load_tensors(other.store.mask_path(k))
        check_mask(model, mask, str(other.store.mask_path(k)))
    else:
        mask = transported(lottery, other, k, match)
        mask = shuffled_mask(mask, seed) if variant == "random" else mask
    apply_mask(model, mask)
    own = states.load_mask(model, k)
    jaccard, chance = mask_overlap(mask, own)
    key = transport_key(other, lottery.store, k, match)
    ticket = next(r for r in lottery.store.read_metrics() if r["round"] == k)
    fields = {"transport": variant, "transport_key": key, "run_a": other.identity,
              "run_a_hash": other.hash, "matched_round": MATCHED_ROUND, **match.fields(),
              "ticket_test_acc": ticket["test_acc"], "jaccard_ticket": jaccard,
              "chance_jaccard_ticket": chance,
              **({"random_seed": seed} if variant == "random" else {})}
    return RoundStart(k, model, mask, span, {}, began,
                      Branch(branch_name(variant, key), fields, kind=KIND))


def transport_metrics(record: Record) -> dict:
    """The W&B row: ``round`` and ``transport/<variant>/<metric>``."""
    rest = {k: v for k, v in record.items()
            if k not in ("round", "transport", "run_a", "run_a_hash", "transport_key",
                         "method", "layer_density")}
    return {"round": record["round"], **{f"transport/{record['transport']}/{key}": value
                                         for key, value in round_metrics(rest).items()}}


def pending_transport(store: RunStore, other: OtherRun, rounds: Iterable[int],
                      variants: Iterable[str], match: MatchOptions) -> list[tuple[int, str]]:
    """(round, variant) pairs not yet stored in B's ``store``."""
    done = {(r["round"], r["transport"], r["transport_key"])
            for r in store.read_branches(KIND)}
    return [(k, v) for k in rounds for v in check_variants(variants)
            if (k, v, transport_key(other, store, k, match)) not in done]


def run_transport(lottery: Lottery, other: OtherRun, k: int, variant: str,
                  match: MatchOptions) -> Record:
    """Train variant ``variant`` of A's round-``k`` mask beside B's round ``k``; store it."""
    start = transport_start(lottery, other, k, variant, match)
    record = lottery.finish_round(start, lottery.train_round(start))
    lottery.sink.log_round(transport_metrics(record))
    return record
