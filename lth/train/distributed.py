"""Data-parallel training over torch.distributed ranks (``torchrun --nproc_per_node=N``).

The global batch ``batch(it)`` of one process is split into N equal slices, rank r trains on
slice r, and the gradients are averaged across ranks with one all-reduce per step (with the
loss and the preemption flag in the same buffer), so every rank applies the global batch's
mean gradient with the single process's learning rate: results agree with one process up to
the order of the reduction. The all-reduced gradients are the same tensors on every rank, so
the weights, and the masks pruned from them, stay identical on every rank; masks are checked
against rank 0's after each pruning. BatchNorm statistics are each rank's own (per-slice), as
in PyTorch's DDP without SyncBatchNorm.

Everything else is rank 0's job: only it writes the run store, W&B and the table; the other
ranks read the files rank 0 wrote (after a barrier at the start of each round) and compute
the same things.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lth.errors import TrainingError
from lth.train import preempt

PREEMPT_EVERY = 16  # iterations between host reads of the all-reduced preemption flag


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` ranks."""

    rank: int
    world: int

    def average(self, params: Iterable[torch.Tensor], loss: torch.Tensor, it: int
                ) -> torch.Tensor:
        """Average the gradients of ``params`` and ``loss`` (0-d, or [K] for K replicas) over
        the ranks, in place, in one all-reduce; agree on preemption (any rank's signal stops
        every rank at the same iteration). Returns the global batch's mean loss.

        The preemption flag is read on the host every ``PREEMPT_EVERY`` iterations only (the
        same ones on every rank): reading it is a device synchronisation."""
        return self.average_grads([p.grad for p in params if p.grad is not None], loss, it)

    def average_grads(self, grads: list[torch.Tensor], loss: torch.Tensor, it: int
                      ) -> torch.Tensor:
        """``average`` of gradient tensors themselves (e.g. a mask update's dense ones)."""
        flag = torch.tensor([float(preempt.seen() is not None)], device=loss.device)
        losses = loss.reshape(-1).float()
        flat = torch.cat([g.reshape(-1) for g in grads] + [losses, flag])
        dist.all_reduce(flat)
        flat.div_(self.world)
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()
        if it % PREEMPT_EVERY == 0 and flat[-1] > 0:
            preempt.agree()
        return flat[-1 - losses.numel():-1].view_as(loss).to(loss.dtype)

    def shard(self, t: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """Rank r's slice of a global batch along ``dim`` (0: [B, ...]; 1: K replicas'
        [K, B, ...]): rows r*B/N .. (r+1)*B/N."""
        n = t.shape[dim] // self.world
        return t.narrow(dim, self.rank * n, n)


def from_env(device_type: str) -> Dist | None:
    """The job's Dist when started by torchrun (WORLD_SIZE > 1), process group initialised
    (gloo on CPU, nccl on CUDA); None for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        # A rank that dies leaves the others blocked in a collective: they give up after this.
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=120))
    preempt.set_collective(True)  # the ranks agree on a preemption in each all-reduce
    return Dist(dist.get_rank(), dist.get_world_size())


def local_device(name: str) -> str:
    """``cuda`` -> ``cuda:<LOCAL_RANK>`` under torchrun: one GPU per rank."""
    if name in ("cuda", "auto") and "LOCAL_RANK" in os.environ and torch.cuda.is_available():
        return f"cuda:{os.environ['LOCAL_RANK']}"
    return name


def barrier(d: Dist | None) -> None:
    """Wait for every rank (no-op for a single process)."""
    if d is not None:
        dist.barrier()


def check_same_mask(mask: Mapping[str, torch.Tensor], d: Dist | None, what: str) -> None:
    """TrainingError unless every rank holds rank 0's ``mask`` (broadcast and compared)."""
    if d is None:
        return
    names = sorted(mask)
    local = torch.cat([mask[n].reshape(-1).to(torch.uint8) for n in names])
    theirs = local.clone()
    dist.broadcast(theirs, src=0)
    differs = torch.tensor([float(not torch.equal(local, theirs))], device=local.device)
    dist.all_reduce(differs)
    if differs.item() > 0:
        raise TrainingError(f"the mask of {what} differs between ranks: the ranks' weights "
                            "diverged; rerun with one process to check the run")


def current() -> Dist | None:
    """This process's Dist once ``from_env`` has initialised the process group, else None."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return Dist(dist.get_rank(), dist.get_world_size())
