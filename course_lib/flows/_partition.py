"""Splitting a (B, D) batch by a coupling mask, fast: strided views instead of boolean indexing.

Private helper of :mod:`course_lib.flows` (Chapter 1, NICE eq. 6-9 and RealNVP
eq. 4-8: ``x1 = x[:, mask]``, ``x2 = x[:, ~mask]`` and the merge back). Boolean
indexing costs a ``nonzero`` (a device sync) and a scatter on every call; for
the alternating NICE masks with even D the halves are the strided views
``x[:, p::2]`` and the merge is one ``stack`` (what fmu2/NICE does by hand), and
any other mask uses index tensors computed once. ``benchmarks/nice_mnist.py``
prints the step-time ratio against the hand-written strided layer.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from course_lib import checks

__all__ = ["check_mask", "partition"]


def check_mask(mask: Tensor, dim: int | None = None) -> None:
    """Raise ValueError unless ``mask`` is a bool (D,) tensor with both halves non-empty."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.ndim != 1:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape (D,), got {got}")
    if dim is not None and mask.shape[0] != dim:
        raise ValueError(f"mask must have shape ({dim},), got {tuple(mask.shape)}")
    if mask.all() or not mask.any():
        raise ValueError("mask must mark at least one True and one False entry")


class _Partition:
    """``x[:, mask]`` and ``x[:, ~mask]`` of a (B, D) batch, and the way back, without boolean indexing.

    Boolean indexing costs a ``nonzero`` (a device sync) and a scatter on every
    call. For the alternating NICE masks with even D the two halves are strided
    views ``x[:, p::2]`` and the merge is a ``stack``; any other mask uses index
    tensors computed once. Built once per mask tensor (see :func:`partition`).
    """

    def __init__(self, mask: Tensor):
        check_mask(mask)
        m = mask.detach().cpu()
        self.dim = m.shape[0]
        self.parity = None
        if self.dim % 2 == 0:
            even = torch.arange(self.dim) % 2 == 0
            self.parity = 0 if torch.equal(m, even) else 1 if torch.equal(m, ~even) else None
        idx1, idx2 = m.nonzero().flatten(), (~m).nonzero().flatten()
        inverse = torch.argsort(torch.cat([idx1, idx2]))  # position of column d in cat([x1, x2])
        self.indices = tuple(t.to(mask.device) for t in (idx1, idx2, inverse))

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x1 (B, |x1|), x2 (B, |x2|))``."""
        if self.parity is not None:
            return x[:, self.parity :: 2], x[:, 1 - self.parity :: 2]
        return x.index_select(1, self.indices[0]), x.index_select(1, self.indices[1])

    def merge(self, x1: Tensor, x2: Tensor) -> Tensor:
        """The inverse of :meth:`split`: ``y[:, mask] = x1``, ``y[:, ~mask] = x2``."""
        if self.parity is not None:
            pair = (x1, x2) if self.parity == 0 else (x2, x1)
            return torch.stack(pair, dim=2).reshape(x1.shape[0], self.dim)
        return torch.cat([x1, x2], dim=1).index_select(1, self.indices[2])


_PARTITIONS: dict[int, tuple[weakref.ref, int, _Partition]] = {}


def partition(mask: Tensor, x: Tensor, name: str = "x") -> _Partition:
    """The :class:`_Partition` of ``mask`` (checked and built once per mask tensor), after checking ``x``.

    Raises:
        ValueError: ``mask`` not bool (D,) with both halves non-empty, or ``x`` not (B, D).
        ArgumentTypeError: ``x`` not a tensor.
    """
    checks.tensor(name, x)
    if not isinstance(mask, Tensor):
        check_mask(mask)
    entry = _PARTITIONS.get(id(mask))
    if entry is None or entry[0]() is not mask or entry[1] != mask._version:
        part = _Partition(mask)
        key = id(mask)
        _PARTITIONS[key] = (weakref.ref(mask, lambda _, key=key: _PARTITIONS.pop(key, None)), mask._version, part)
    else:
        part = entry[2]
    if x.ndim != 2 or x.shape[1] != part.dim:
        raise ValueError(f"{name} must have shape (B, {part.dim}) to match the mask, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return part


