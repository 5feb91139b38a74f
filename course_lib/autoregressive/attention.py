"""Causal self-attention over the pixels of an image, in raster order (the pixel transformer's layer).

Part of :mod:`course_lib.autoregressive`. Masked convolutions (PixelCNN) and
recurrences (PixelRNN) make a network causal by construction; masked
self-attention is the third way. The H x W positions are a sequence in raster
order, each position attends only to allowed earlier positions, and the
allowed set is a free choice instead of a field grown layer by layer:

* ``"full"``: every earlier position (quadratic in D = H * W);
* ``"local1d"``: the ``size`` positions just before, in raster order (a strip
  that wraps from one row to the row above);
* ``"local2d"``: a block of the ``size`` rows above and the current row,
  ``size`` columns either side in the rows above and up to ``size`` to the left
  in the current row (the Image Transformer's local 2-D neighbourhood).

References:
    N. Parmar, A. Vaswani, J. Uszkoreit, L. Kaiser, N. Shazeer, A. Ku, D. Tran,
    "Image Transformer", ICML 2018 (arXiv:1802.05751): §3.1 (masked
    self-attention over pixels in raster order), §3.2 (local 1-D and local 2-D
    attention), Figure 2.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks

__all__ = ["attention_mask", "CausalSelfAttention2d", "ATTENTION_KINDS"]

#: The neighbourhoods :func:`attention_mask` knows.
ATTENTION_KINDS = ("full", "local1d", "local2d")


def attention_mask(height: int, width: int, kind: str = "full", size: int | None = None, include_self: bool = True) -> Tensor:
    """Bool (D, D) mask, D = height * width: entry [i, j] is True where query pixel i may attend to key pixel j.

    Pixels are numbered in raster order (i = row * width + column). Only j < i
    (or j <= i with ``include_self``) is ever allowed, so a layer using the mask
    is causal: mask-B-like with ``include_self`` (use it after a layer that already
    excludes the current pixel), mask-A-like without.

    Args:
        height, width: image size (positive ints).
        kind: ``"full"``, ``"local1d"`` or ``"local2d"`` (see the module docstring).
        size: the neighbourhood size of the local kinds (positive int); ignored for ``"full"``.
        include_self: allow j = i.

    Raises:
        ValueError: a size out of range, an unknown ``kind``, a local kind without ``size``.
        ArgumentTypeError (a TypeError and a ValueError): a size that is not an int.

    References:
        Parmar et al. 2018, "Image Transformer", §3.2 (local 1-D and 2-D attention).
    """
    h, w = checks.positive_int("height", height), checks.positive_int("width", width)
    if kind not in ATTENTION_KINDS:
        raise ValueError(f"kind must be one of {ATTENTION_KINDS}, got {kind!r}")
    if kind != "full":
        if size is None:
            raise ValueError(f"size is required for kind={kind!r} (a positive int)")
        size = checks.positive_int("size", size)
    order = torch.arange(h * w)
    allowed = order[None, :] <= order[:, None] if include_self else order[None, :] < order[:, None]
    if kind == "local1d":
        allowed &= order[:, None] - order[None, :] <= size
    elif kind == "local2d":
        r, c = order // w, order % w
        dr, dc = r[:, None] - r[None, :], c[None, :] - c[:, None]              # rows up, columns right of the query
        allowed &= (dr <= size) & (dc.abs() <= size)
    return allowed


class CausalSelfAttention2d(nn.Module):
    """Single-head masked self-attention over the pixels of a feature map.

    ``out = x + W_o softmax(Q K^T / sqrt(d) + log mask) V`` with ``include_self``
    (mask-B-like, with a residual connection), and ``out = W_o softmax(...) V``
    without it (mask-A-like: no residual, which would pass the current pixel
    through), with Q, K, V 1 x 1 projections of ``x`` at every pixel and the mask
    of :func:`attention_mask`. A query with no allowed key (pixel 0 without
    ``include_self``) gets a zero attention output. A first layer on a pointwise
    embedding of the raw pixels uses ``include_self=False``; it then sees exactly
    the allowed earlier pixels. Without ``include_self`` the query of pixel i is
    computed from pixel i - 1 (raster order), since a query computed from pixel i
    itself would let the attention weights, and so the output, depend on it. Learned position information is left out: the layer is
    meant to follow convolutions, whose features already depend on position
    near the borders.

    Args:
        channels: feature channels C of ``x`` (positive int).
        kind, size, include_self: the neighbourhood, see :func:`attention_mask`.
        key_channels: d, the size of queries and keys (default: ``channels``).

    Shapes: ``forward``: (B, C, H, W) -> (B, C, H, W).

    Raises:
        ValueError / ArgumentTypeError: bad sizes or ``kind`` (as :func:`attention_mask`);
            in ``forward``, an input that is not (B, ``channels``, H, W).

    References:
        Parmar et al. 2018, "Image Transformer", §3.1-3.2.
    """

    def __init__(self, channels: int, kind: str = "full", size: int | None = None, include_self: bool = True, key_channels: int | None = None):
        super().__init__()
        self.channels = checks.positive_int("channels", channels)
        d = self.channels if key_channels is None else checks.positive_int("key_channels", key_channels)
        attention_mask(1, 1, kind, size, include_self)  # validates kind and size now, not at the first forward
        self.kind, self.size, self.include_self = kind, size, include_self
        self.query = nn.Conv2d(channels, d, 1)
        self.key = nn.Conv2d(channels, d, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        checks.tensor("x", x)
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (B, {self.channels}, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        k, v = (f(x).flatten(2).transpose(1, 2) for f in (self.key, self.value))  # (B, D, d), (B, D, C)
        q_in = x
        if not self.include_self:
            # The query must not see the current pixel either: it comes from the previous pixel in
            # raster order (pixel 0 from zeros), the shift by one of a transformer decoder's input.
            q_in = F.pad(x.flatten(2), (1, 0))[:, :, :-1].reshape(b, c, h, w)
        q = self.query(q_in).flatten(2).transpose(1, 2)
        allowed = attention_mask(h, w, self.kind, self.size, self.include_self).to(x.device)
        logits = (q @ k.transpose(1, 2)) / math.sqrt(q.shape[-1])
        logits = logits.masked_fill(~allowed, float("-inf"))
        has_key = allowed.any(1)                                                   # (D,)
        weights = torch.softmax(logits.masked_fill(~has_key[:, None], 0.0), dim=-1) * has_key[:, None]
        attended = (weights @ v).transpose(1, 2).reshape(b, c, h, w)
        return x + self.out(attended) if self.include_self else self.out(attended)
