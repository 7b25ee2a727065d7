"""Compressed sparse checkpoints of tickets: a mask and the kept values, nothing else.

A pruned tensor is stored as its shape, the positions of the kept weights and their values.
Positions are a bitmask (1 bit per weight) or int32 indices (4 bytes per kept weight),
whichever is smaller, so a file shrinks with density: at 10% density a float32 tensor takes
1/8 + 10% of its dense size with the bitmask, and below 1/32 density indices win. Tensors the
mask does not cover (biases, norms, buffers) are stored as they are. The file is a plain
``torch.save`` of tensors, lists and strings, so it loads with ``weights_only=True``.

Loading gives back the state dict exactly: every kept value and unmasked tensor bit for bit,
and +0.0 at pruned positions (``torch.equal`` holds; a pruned weight that training left as
-0.0, from multiplying by the mask, comes back as +0.0, which computes the same).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from lth.errors import CheckpointError
from lth.files import atomic_write
from lth.pruning.mask import Mask

FORMAT = "lth-sparse-v1"


def _encode(weight: torch.Tensor, keep: torch.Tensor) -> dict[str, object]:
    flat_keep = keep.flatten().cpu()
    entry: dict[str, object] = {"shape": list(weight.shape),
                                "values": weight.detach().cpu().flatten()[flat_keep].clone()}
    count = int(flat_keep.sum())
    if 4 * count < (flat_keep.numel() + 7) // 8:
        entry["indices"] = flat_keep.nonzero().flatten().to(torch.int32)
    else:
        entry["bits"] = torch.from_numpy(np.packbits(flat_keep.numpy().astype(np.uint8)))
    return entry


def _decode(entry: dict[str, object]) -> tuple[torch.Tensor, torch.Tensor]:
    shape = [int(d) for d in entry["shape"]]  # type: ignore[union-attr]
    values = entry["values"]
    assert isinstance(values, torch.Tensor)
    numel = int(np.prod(shape)) if shape else 1
    keep = torch.zeros(numel, dtype=torch.bool)
    if "indices" in entry:
        keep[entry["indices"].long()] = True  # type: ignore[union-attr]
    else:
        bits = np.unpackbits(entry["bits"].numpy(), count=numel)  # type: ignore[union-attr]
        keep = torch.from_numpy(bits.astype(bool))
    weight = torch.zeros(numel, dtype=values.dtype)
    weight[keep] = values
    return weight.view(shape), keep.view(shape)


def sparse_state(state: dict[str, torch.Tensor], mask: Mask) -> dict[str, object]:
    """The checkpoint's content: ``mask``'s tensors compressed, the others as they are.

    ValueError if a masked tensor has a nonzero weight outside its mask (apply the mask first).
    """
    sparse, dense = {}, {}
    for name, tensor in state.items():
        if name in mask:
            if bool((tensor.detach().cpu()[~mask[name].cpu()] != 0).any()):
                raise ValueError(f"{name} has nonzero weights outside its mask")
            sparse[name] = _encode(tensor, mask[name])
        else:
            dense[name] = tensor.detach().cpu()
    return {"format": FORMAT, "order": list(state), "sparse": sparse, "dense": dense}


def save_sparse(path: str | Path, state: dict[str, torch.Tensor], mask: Mask) -> Path:
    """Write ``state`` (a state dict with ``mask`` applied) as a compressed checkpoint."""
    buffer = io.BytesIO()
    torch.save(sparse_state(state, mask), buffer)
    return atomic_write(path, buffer.getvalue())


def load_sparse(path: str | Path) -> tuple[dict[str, torch.Tensor], Mask]:
    """(state dict, mask) from a file of ``save_sparse``; CheckpointError if unreadable."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not an lth sparse checkpoint")
        state, mask = {}, {}
        for name in data["order"]:
            if name in data["sparse"]:
                state[name], mask[name] = _decode(data["sparse"][name])
            else:
                state[name] = data["dense"][name]
    except Exception as e:  # torch and numpy raise many types for damaged files
        raise CheckpointError(
            f"{path} is not a readable sparse checkpoint ({type(e).__name__}); export it again"
        ) from None
    return state, mask
