"""Training a span resumably, once for every kind of run: rounds, branches, replica groups and
students.

A *member* is one begun training (a round of a run, a branch beside a stored round, a
student) with the store it belongs to, its data order and where its checkpoint goes. ``train``
trains one member, or several as one replica group, over their common span through the loop
core, and writes each member's mid-training checkpoint in the single run's format (model,
optimizer, loop state with the current mask and the mask update's state, RNGs, wall time), so
a member killed in a group resumes alone and the other way round. A group resumes when every
member has a checkpoint at the same iteration, and starts again otherwise (a kill between the
members' writes). After each write the test-only kill point ``checkpoint:<k>:<it>[:<kind>:
<name>]`` of every member is offered (``lth.faults``). ``finish`` stores what a finished
member leaves: its final mask (and its start mask where the two differ), weights, curve, its
record last, and removes its checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lth.data import Dataset
from lth.faults import kill_point, with_signal_hook
from lth.store import RunStore
from lth.train import Callbacks, LoopOptions, Span, TrainResult, TrainState, checkpoint, run_loop
from lth.train.checkpoint import Checkpoint
from lth.train.core import Stepper
from lth.train.masking import NO_UPDATE, Mask, MaskChange, MaskUpdate, same_mask

Hook = Callable[[nn.Module], None]
Record = dict[str, Any]
StepperFactory = Callable[[list[nn.Module], list[Mask], list[int]], Stepper]


@dataclass(frozen=True)
class Branch:
    """A run trained beside a stored round: ``round_<k>/<kind>/<name>/``, its record in the
    kind's JSONL file (``RunStore.branch_log_path``) with ``fields`` added (e.g. the
    control's name and seed). ``data_seed`` replaces the run's data order (None: the
    ticket's own, as controls replay it)."""

    name: str
    fields: Mapping[str, Any]
    kind: str = "controls"
    data_seed: int | None = None


@dataclass
class RoundStart:
    """A training ready to start: its model (at the start state), mask, span, hooks and mask
    update; ``branch`` None for a round of the run itself."""

    k: int
    model: nn.Module
    mask: Mask
    span: Span
    hooks: dict[int, Hook]
    began: float  # perf_counter() when it began (earlier by a resumed run's time)
    branch: Branch | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # more record keys, set while training
    update: MaskUpdate = NO_UPDATE  # changes the mask within the span (IMP: never)


@dataclass
class Member:
    """A begun training and the run it belongs to: its store, data order and curve sink."""

    start: RoundStart
    store: RunStore
    seed: int
    on_eval: Callable[[int, dict[str, float]], None] | None = None
    label: str = ""  # how messages name it in a group (e.g. "seed 3")
    on_change: Callable[[int, MaskChange], None] | None = None  # its mask update's changes

    @property
    def place(self) -> tuple[int, str | None, str]:
        """(round, branch name or None, kind) in the store's naming."""
        b = self.start.branch
        return (self.start.k, None, "controls") if b is None else (self.start.k, b.name, b.kind)

    @property
    def checkpoint_path(self) -> Path:
        return self.store.checkpoint_path(*self.place)

    @property
    def kill_suffix(self) -> str:
        b = self.start.branch
        return f":{b.kind}:{b.name}" if b else ""


def _fix(member: Member) -> str:
    return f"delete it to restart round {member.start.k} from its beginning"


def load_checkpoint(member: Member) -> Checkpoint | None:
    """The member's mid-training checkpoint, if there is one (not restored)."""
    path, st = member.checkpoint_path, member.start
    if not path.exists():
        return None
    obj = member.store.load(path, _fix(member))
    return checkpoint.unpack(obj, path, st.k, (st.span.start, st.span.end))


def save_checkpoints(members: Sequence[Member], stepper: Stepper,
                     states: Sequence[TrainState]) -> None:
    """Every member's checkpoint of ``states``, then every member's kill point."""
    models, optims = stepper.models(), stepper.optimizer_states()
    for m, model, state, optim in zip(members, models, states, optims):
        wall = time.perf_counter() - m.start.began
        ckpt = checkpoint.capture(state, model, optim, wall)
        span = (m.start.span.start, m.start.span.end)
        m.store.save(m.checkpoint_path, checkpoint.pack(m.start.k, span, ckpt))
    for m in members:
        kill_point(f"checkpoint:{m.start.k}:{states[0].it}{m.kill_suffix}")


def _resumable(members: Sequence[Member]) -> list[Checkpoint] | None:
    """Every member's checkpoint, all at one iteration; None (and the partial ones deleted)
    otherwise."""
    found = [load_checkpoint(m) for m in members]
    if all(c is not None for c in found) and len({c.state.it for c in found}) == 1:
        return found  # type: ignore[return-value]
    for m, c in zip(members, found):  # a kill between the members' writes: start again
        if c is not None:
            m.store.remove(m.checkpoint_path)
    return None


def _hooks(members: Sequence[Member]) -> dict[int, Callable[[list[nn.Module]], None]]:
    """One loop hook per iteration that runs each member's hook of it on its model."""
    own = [with_signal_hook(m.start.hooks, m.start.k) for m in members]

    def run(it: int, models: list[nn.Module]) -> None:
        for hooks, model in zip(own, models):
            if it in hooks:
                hooks[it](model)

    return {it: (lambda models, it=it: run(it, models)) for it in {i for h in own for i in h}}


def train(members: Sequence[Member], build: StepperFactory, data: Dataset,
          options: LoopOptions) -> list[TrainResult]:
    """Train ``members`` (one, or a group sharing one span) from their checkpoints if they
    have them; their models hold the trained weights on return."""
    span = members[0].start.span
    if any((m.start.span.start, m.start.span.end) != (span.start, span.end) for m in members):
        raise ValueError("the members of a group must share one span")
    ckpts = _resumable(members)
    if ckpts:
        for m, c in zip(members, ckpts):
            with checkpoint.fitting(f"{m.checkpoint_path} does not fit this run", _fix(m)):
                m.start.model.load_state_dict(c.model)
            m.start.began -= c.wall_s
        checkpoint.set_rng_state(ckpts[0].rng)
    # Resumed: the masks of the checkpoint (an update may have changed them), so that the
    # stepper does not zero weights regrown since the start.
    masks = [m.start.mask if c is None or c.state.mask is None else c.state.mask
             for m, c in zip(members, ckpts or [None] * len(members))]
    stepper = build([m.start.model for m in members], masks, [m.seed for m in members])
    resume = None
    if ckpts:
        what = (f"{members[0].checkpoint_path} does not fit this run" if len(members) == 1
                else "the optimizer states of " + ", ".join(str(m.checkpoint_path)
                                                            for m in members)
                + " do not fit this run")
        with checkpoint.fitting(what, _fix(members[0])):
            stepper.load_optimizer_states([c.optimizer for c in ckpts])
        resume = [c.state for c in ckpts]
    callbacks = Callbacks(
        _hooks(members),
        on_eval=lambda j, it, point: (members[j].on_eval(it, point)
                                      if members[j].on_eval is not None else None),
        on_checkpoint=lambda states: save_checkpoints(members, stepper, states),
        on_change=lambda j, it, change: (members[j].on_change(it, change)
                                         if members[j].on_change is not None else None))
    results = run_loop(stepper, data, span, options, callbacks, resume,
                       [m.start.update for m in members])
    stepper.models()  # the trained weights back into each member's model (replicas)
    return results


def finish(member: Member, result: TrainResult, record: Record,
           versions: Mapping[str, str] | None = None) -> None:
    """Store a finished member: final mask (start mask beside it where they differ), weights,
    curve, then its record, the line that makes it complete; its checkpoint is removed."""
    store, st = member.store, member.start
    k, name, kind = member.place
    if result.mask:
        store.save_tensors(store.mask_path(k, name, kind), result.mask)
        if not same_mask(result.mask, st.mask):
            store.save_tensors(store.start_mask_path(k, name, kind), st.mask)
    store.save_tensors(store.final_path(k, name, kind), st.model.state_dict())
    store.write_text(store.curve_path(k, name, kind), json.dumps(result.evals))
    if st.branch is not None:
        store.append_branch(kind, record)
    else:
        if versions:
            store.note_round_versions(k, versions)
        store.append_metrics(record)
    store.remove(member.checkpoint_path)
