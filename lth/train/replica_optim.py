"""The optimizer step of lth.train.replicas, on per-replica views of the stacked tensors.

Views, not the stacked tensors: a fused kernel splits each tensor into a vectorised body and a
scalar tail by its own length, and the two round differently in the last bit. Stepping replica
k's tensors as tensors of the single run's shapes makes its update the single run's update.

Not ``optimizer.step()`` when it can be avoided: over K x L views its per-tensor Python (state
lookup, one step-counter add per tensor) costs ~0.3 ms per step for 8 replicas of a 3-layer MLP,
more than the update itself. For the fused SGD, Adam and AdamW that lth builds by default
(lth.train.optim.prefer_fused), ``ReplicaStep`` makes the kernel call ``optimizer.step()``
would make, once per step, with state kept in stacked [K, ...] tensors. Anything else (unfused,
several parameter groups, capturable, ...) goes through ``optimizer.step()`` on the views.
"""

from __future__ import annotations

import torch

_KERNELS = {torch.optim.Adam: torch._fused_adam_, torch.optim.AdamW: torch._fused_adamw_}


def _fused_plain(optimizer: torch.optim.Optimizer) -> bool:
    groups = optimizer.param_groups
    if len(groups) != 1 or optimizer.state or type(optimizer) not in (*_KERNELS,
                                                                       torch.optim.SGD):
        return False
    g = groups[0]
    return bool(g.get("fused")) and not g.get("capturable") and not g.get("differentiable")


class ReplicaStep:
    """Steps ``optimizer`` (built over ``views``) with the stacked params' gradients.

    ``stacked`` are the [K, ...] leaf tensors; ``views`` their per-replica slices, replica by
    replica (``views[k * L + i]`` is ``stacked[i][k]``), which ``optimizer`` was built over.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, stacked: list[torch.Tensor],
                 views: list[torch.Tensor]) -> None:
        self.optimizer, self.stacked, self.views = optimizer, stacked, views
        self.k = stacked[0].shape[0] if stacked else 0
        self.direct = _fused_plain(optimizer)
        if not self.direct:
            return
        g = optimizer.param_groups[0]

        def state() -> list[torch.Tensor]:
            return self._per_replica([torch.zeros_like(t) for t in stacked])

        if isinstance(optimizer, torch.optim.SGD):
            self.buffers = state() if g["momentum"] != 0 else []
            self.first = True
        else:
            self.exp_avgs, self.exp_avg_sqs = state(), state()
            self.max_exp_avg_sqs = state() if g["amsgrad"] else []
            self.steps = torch.zeros(len(views), device=stacked[0].device)
            self.step_views = list(self.steps.unbind(0))

    def state_of(self, j: int) -> dict[str, torch.Tensor]:
        """The optimizer state tensors of view ``j`` (live: masking them masks the state)."""
        if not self.direct:
            return self.optimizer.state.get(self.views[j], {})
        if isinstance(self.optimizer, torch.optim.SGD):
            return {"momentum_buffer": self.buffers[j]} if self.buffers else {}
        state = {"exp_avg": self.exp_avgs[j], "exp_avg_sq": self.exp_avg_sqs[j]}
        if self.max_exp_avg_sqs:
            state["max_exp_avg_sq"] = self.max_exp_avg_sqs[j]
        return state

    def _per_replica(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        """Replica-major views of [K, ...] tensors, in the order of ``views``."""
        slices = [t.unbind(0) for t in tensors]
        return [s[k] for k in range(self.k) for s in slices]

    @torch.no_grad()
    def step(self) -> None:
        """One update of every replica from the stacked params' current ``.grad``."""
        grads = self._per_replica([t.grad for t in self.stacked])
        if not self.direct:
            for v, grad in zip(self.views, grads):
                v.grad = grad
            self.optimizer.step()
            return
        g = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, torch.optim.SGD):
            torch._fused_sgd_(self.views, grads, self.buffers, weight_decay=g["weight_decay"],
                              momentum=g["momentum"], lr=g["lr"], dampening=g["dampening"],
                              nesterov=g["nesterov"], maximize=g["maximize"],
                              is_first_step=self.first and g["momentum"] != 0)
            self.first = False
            return
        self.steps.add_(1)  # one add for all: the kernel reads each tensor's own counter
        kernel = (torch._fused_adamw_ if g.get("decoupled_weight_decay")
                  or isinstance(self.optimizer, torch.optim.AdamW) else torch._fused_adam_)
        beta1, beta2 = g["betas"]
        kernel(self.views, grads, self.exp_avgs, self.exp_avg_sqs, self.max_exp_avg_sqs,
               self.step_views, lr=g["lr"], beta1=beta1, beta2=beta2,
               weight_decay=g["weight_decay"], eps=g["eps"], amsgrad=g["amsgrad"],
               maximize=g["maximize"])

    # -- checkpoints: one state dict per replica, in its single run's optimizer format -------
    def _group(self) -> dict:
        group = {k: v for k, v in self.optimizer.param_groups[0].items() if k != "params"}
        return {**group, "params": list(range(len(self.stacked)))}

    def _direct_state(self, j: int) -> dict[str, torch.Tensor]:
        """The single-run optimizer state of view ``j`` (empty before the first step)."""
        if isinstance(self.optimizer, torch.optim.SGD):
            if not self.buffers or self.first:
                return {}
            return {"momentum_buffer": self.buffers[j].clone()}  # a view would save all K
        if not bool(self.steps[j]):
            return {}
        state = {"step": self.steps[j].clone(), "exp_avg": self.exp_avgs[j].clone(),
                 "exp_avg_sq": self.exp_avg_sqs[j].clone()}
        if self.max_exp_avg_sqs:
            state["max_exp_avg_sq"] = self.max_exp_avg_sqs[j].clone()
        return state

    def state_dicts(self) -> list[dict]:
        """Replica k's optimizer state as ``optimizer.state_dict()`` of its single run."""
        n = len(self.stacked)
        if self.direct:
            states = [self._direct_state(j) for j in range(len(self.views))]
            groups = [self._group()]
        else:
            full = self.optimizer.state_dict()
            states = [full["state"].get(j, {}) for j in range(len(self.views))]
            groups = [{**g, "params": list(range(n))} for g in full["param_groups"]]
        return [{"state": {i: states[k * n + i] for i in range(n) if states[k * n + i]},
                 "param_groups": [dict(g) for g in groups]} for k in range(self.k)]

    @torch.no_grad()
    def load_state_dicts(self, states: list[dict]) -> None:
        """Restore what ``state_dicts`` returned (ValueError if they do not fit)."""
        n = len(self.stacked)
        if len(states) != self.k:
            raise ValueError(f"{len(states)} optimizer states for {self.k} replicas")
        per_view = [s["state"].get(i, {}) for s in states for i in range(n)]
        if not self.direct:
            groups = [{**g, "params": list(range(len(self.views)))}
                      for g in states[0]["param_groups"]]
            self.optimizer.load_state_dict({"state": {j: st for j, st in enumerate(per_view)
                                                      if st}, "param_groups": groups})
            return
        for j, st in enumerate(per_view):
            if isinstance(self.optimizer, torch.optim.SGD):
                if "momentum_buffer" in st and self.buffers:
                    self.buffers[j].copy_(st["momentum_buffer"])
                    self.first = False
                continue
            if st:
                self.steps[j] = st["step"]  # the kernel reads each view's own counter
                self.exp_avgs[j].copy_(st["exp_avg"])
                self.exp_avg_sqs[j].copy_(st["exp_avg_sq"])
                if self.max_exp_avg_sqs:
                    self.max_exp_avg_sqs[j].copy_(st["max_exp_avg_sq"])
