"""Weight matching (Ainsworth, Hayase & Srinivasa 2023, "Git Re-Basin", Algorithm 1).

Find the permutation of network B's hidden units that maximises ``sum_l <W_l^A, P_l W_l^B
P_{l-1}^T>``: coordinate descent over the unit groups, each step a linear assignment problem
(``scipy.optimize.linear_sum_assignment``) for one group with the others held fixed, the
groups visited in a random order each sweep, until a sweep improves nothing (or
``max_iter`` sweeps). It is the reference's ``weight_matching``
(samuela/git-re-basin, ``src/weight_matching.py``), ported to PyTorch's layouts; the
reference's core is ported in ``tests/test_permute.py`` and compared on the same inputs.

Differences from the reference, on purpose: the similarity matrices are summed in float64
(the reference's float32 sums make "no progress" depend on rounding); the visiting order
comes from a ``torch.Generator`` seeded with ``seed`` (the reference: JAX's PRNG), and the
matched tensors are the parameters (weights, biases, BatchNorm affines), not BatchNorm's
running statistics, as the reference matches its parameters and not its batch statistics.
A group acting on two axes of one tensor (in the residual MLP, a residual layer's input and
output are one stream) makes the objective quadratic in that group: its similarity matrix
linearises it at the current permutation (both axes' terms summed), and the step is taken
only when it raises the true objective, so the descent cannot cycle (the reference's specs
never put one permutation on two axes of a tensor; without this check the residual MLP of
the default experiment ran all 100 sweeps, ``scripts.bench_rebasin``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from lth.errors import ConfigError
from lth.permute.apply import Perm, identity, permuted_tensor
from lth.permute.spec import PermSpec

INSTALL = 'pip install -e ".[match]"'
Order = Callable[[int, int], list[int]]  # (sweep, number of groups) -> visiting order


def linear_sum_assignment() -> Callable:
    """scipy's solver; ConfigError naming the install command when scipy is missing."""
    try:
        from scipy.optimize import linear_sum_assignment as lsa
    except ImportError:
        raise ConfigError(f"weight matching needs scipy: install it with {INSTALL}") from None
    return lsa


def seeded_order(seed: int) -> Order:
    """Each sweep's visiting order of the groups, a fresh random order drawn with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    return lambda sweep, n: torch.randperm(n, generator=gen).tolist()


def similarity(spec: PermSpec, perm: Perm, p: str, a: Mapping[str, torch.Tensor],
               b: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``S[i, j]``: how well B's unit j of group ``p`` matches A's unit i, with B's other
    groups permuted by ``perm`` (float64, on the CPU)."""
    n = spec.sizes[p]
    s = torch.zeros(n, n, dtype=torch.float64)
    for name, axis in spec.perm_to_axes()[p]:
        if not spec.axes[name].match:
            continue
        ax = spec.axes[name]
        w_a = a[name].reshape(ax.view) if ax.view is not None else a[name]
        w_b = permuted_tensor(spec, perm, name, b[name], except_axis=axis)
        w_a = w_a.detach().cpu().double().movedim(axis, 0).reshape(n, -1)
        w_b = w_b.detach().cpu().double().movedim(axis, 0).reshape(n, -1)
        s += w_a @ w_b.T
    return s


def doubled(spec: PermSpec) -> set[str]:
    """Groups that act on two axes of one tensor (a residual MLP layer's stream): there the
    objective is quadratic in the group, not linear."""
    out = set()
    for ax in spec.axes.values():
        used = [p for p in ax.perms if p is not None]
        out |= {p for p in used if used.count(p) > 1}
    return out


def objective(spec: PermSpec, perm: Perm, p: str, a: Mapping[str, torch.Tensor],
              b: Mapping[str, torch.Tensor]) -> float:
    """``sum <W_A, W_B permuted>`` over the matched tensors group ``p`` touches (float64)."""
    names = {name for name, _ in spec.perm_to_axes()[p] if spec.axes[name].match}
    total = 0.0
    for name in sorted(names):
        ax = spec.axes[name]
        w_a = a[name].reshape(ax.view) if ax.view is not None else a[name]
        w_b = permuted_tensor(spec, perm, name, b[name])
        total += float((w_a.detach().cpu().double() * w_b.detach().cpu().double()).sum())
    return total


def weight_matching(spec: PermSpec, a: Mapping[str, torch.Tensor],
                    b: Mapping[str, torch.Tensor], *, max_iter: int = 100, seed: int = 0,
                    order: Order | None = None, init: Perm | None = None) -> Perm:
    """The permutation of ``b``'s units that aligns it to ``a`` (``apply_perm(spec, perm, b)``
    is B in A's coordinates). ``order``: the groups' visiting order per sweep (default
    ``seeded_order(seed)``)."""
    if max_iter < 1:
        raise ConfigError(f"max_iter={max_iter} must be at least 1 sweep")
    solve = linear_sum_assignment()
    order = order or seeded_order(seed)
    perm = {p: t.clone() for p, t in (init or identity(spec)).items()}
    names, quadratic = list(spec.sizes), doubled(spec)
    for sweep in range(max_iter):
        progress = False
        for i in order(sweep, len(names)):
            p = names[i]
            s = similarity(spec, perm, p, a, b)
            rows, cols = solve(s.numpy(), maximize=True)
            new = torch.as_tensor(cols, dtype=torch.long)
            if p in quadratic:  # the linearised step may not improve: take it only if it does
                old_l = objective(spec, perm, p, a, b)
                new_l = objective(spec, {**perm, p: new}, p, a, b)
                if new_l <= old_l + 1e-12:
                    continue
            else:
                rows_t = torch.arange(len(rows))
                old_l, new_l = float(s[rows_t, perm[p]].sum()), float(s[rows_t, new].sum())
            progress = progress or new_l > old_l + 1e-12
            perm[p] = new
        if not progress:
            break
    return perm
