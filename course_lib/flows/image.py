"""RealNVP for images: logit preprocessing, checkerboard masks, and the dequantization bound (Chapter 1).

:mod:`course_lib.flows.core` builds flows on flat vectors with alternating masks.
This module (also importable as ``course_lib.image_flows``) adds the three
pieces RealNVP uses on images (Dinh et al. 2016, §3.4 and §4.1):

* :func:`checkerboard_mask`: a ``(H*W,)`` mask whose ``True`` pixels are the
  black squares of a checkerboard, so each coupling conditions every pixel on
  its four neighbours;
* :func:`logit_transform` / :class:`LogitTransform`: ``y = logit(alpha + (1 - 2 alpha) x)``
  maps ``[0, 1]^D`` onto ``R^D``, with its exact ``log_det``;
* :func:`dequantized_log_likelihood`: the log-likelihood that a continuous
  density on ``[0, 1]^D`` assigns to 8-bit data, averaged over ``K``
  dequantization draws. It is a lower bound on the discrete log-likelihood
  (Theis et al. 2016, §3.1), so the bits/dim it gives are an upper bound;
  ``K > 1`` tightens it.

References:
    L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP.
    arXiv:1605.08803, 2016, §3.4 (masks), §4.1 (logit preprocessing).

    L. Theis, A. van den Oord, M. Bethge. A note on the evaluation of
    generative models. ICLR 2016, §3.1 (dequantization bound).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from course_lib import checks
from course_lib.flows.core import AffineCoupling, FlowModel

__all__ = ["checkerboard_mask", "logit_transform", "LogitTransform", "ImageRealNVP", "dequantized_log_likelihood"]


def checkerboard_mask(height: int, width: int, parity: int) -> Tensor:
    """Bool ``(height * width,)`` checkerboard: ``True`` where ``(row + col) % 2 == parity``.

    Flattened row by row, as MNIST's 784 pixels are.

    Raises:
        ValueError: ``height``/``width`` not positive ints, ``height * width < 2``, ``parity`` not 0 or 1.

    References:
        Dinh, Sohl-Dickstein, Bengio. Real NVP, 2016, §3.4, Figure 3 (left).
    """
    height = checks.positive_int("height", height)
    width = checks.positive_int("width", width)
    if height * width < 2:
        raise ValueError(f"height * width must be at least 2 so both halves are non-empty, got {height} x {width}")
    if isinstance(parity, bool) or parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity!r}")
    rows = torch.arange(height)[:, None]
    cols = torch.arange(width)[None, :]
    return ((rows + cols) % 2 == parity).flatten()


def logit_transform(x: Tensor, alpha: float = 0.05) -> tuple[Tensor, Tensor]:
    """``y = logit(p)`` with ``p = alpha + (1 - 2 alpha) x``; returns ``(y (B, D), log_det (B,))``.

    ``log_det = sum_d [log(1 - 2 alpha) - log p_d - log(1 - p_d)]`` in nats, the
    log-determinant of the diagonal Jacobian ``dy/dx``.

    Args:
        x: float ``(B, D)`` in ``[0, 1]`` (dequantized pixels).
        alpha: in ``(0, 0.5)``; keeps ``p`` away from 0 and 1 (RealNVP uses 0.05).

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``x`` is not a tensor.
        ValueError: ``x`` not a ``(B, D)`` tensor, entries outside ``[0, 1]`` or
            non-finite (NaN included), ``alpha`` outside ``(0, 0.5)``.

    References:
        Dinh, Sohl-Dickstein, Bengio. Real NVP, 2016, §4.1.
    """
    _check_alpha(alpha)
    x = checks.float_batch("x", x)
    if not bool(((x >= 0) & (x <= 1)).all()):  # one pass; False for NaN too (every comparison with NaN is)
        checks.finite("x", x)  # NaN or inf: say so
        raise ValueError(f"x must lie in [0, 1] (dequantized pixels), got range [{x.min().item():.3g}, {x.max().item():.3g}]")
    p = alpha + (1 - 2 * alpha) * x
    y = torch.log(p) - torch.log1p(-p)
    log_det = (math.log(1 - 2 * alpha) - torch.log(p) - torch.log1p(-p)).sum(dim=1)
    return y, log_det


def _check_alpha(alpha) -> float:
    alpha = checks.positive_float("alpha", alpha)
    if not alpha < 0.5:
        raise ValueError(f"alpha must lie in (0, 0.5), got {alpha}")
    return alpha


class LogitTransform(nn.Module):
    """:func:`logit_transform` as a flow layer with no parameters: ``forward`` and ``inverse`` give ``(out, log_det)``.

    Raises:
        ValueError: ``alpha`` outside ``(0, 0.5)``; from the methods, as :func:`logit_transform`.

    References:
        Dinh, Sohl-Dickstein, Bengio. Real NVP, 2016, §4.1.
    """

    def __init__(self, alpha: float = 0.05):
        super().__init__()
        self.alpha = _check_alpha(alpha)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) in [0, 1] -> ``(y (B, D), log_det (B,))``."""
        return logit_transform(x, self.alpha)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x (B, D) in [0, 1], log_det (B,))``, the log-det of the inverse map.

        Raises ValueError for a ``y`` that is not ``(B, D)`` or has a NaN entry (named ``y``);
        ``y = +-inf`` is the limit ``x = (1 - alpha) / (1 - 2 alpha)`` or ``-alpha / (1 - 2 alpha)``.
        """
        y = checks.float_batch("y", y)
        if bool(torch.isnan(y).any()):
            raise ValueError(f"y contains {int(torch.isnan(y).sum())} NaN entries (of {y.numel()}); "
                             "a NaN latent has no preimage")
        p = torch.sigmoid(y)
        x = (p - self.alpha) / (1 - 2 * self.alpha)
        log_det = (torch.log(p) + torch.log1p(-p) - math.log(1 - 2 * self.alpha)).sum(dim=1)
        return x, log_det


class ImageRealNVP(FlowModel):
    """RealNVP on flat images: :class:`LogitTransform`, then affine couplings with alternating checkerboard masks.

    A single scale (no squeeze, no multi-scale factoring) and MLP couplings, so
    it stays small enough for a CPU; ``log_prob`` is the density on ``[0, 1]^D``,
    directly comparable with :class:`course_lib.flows.NICE` on the same data.

    Args:
        height, width: image size; ``dim = height * width``.
        num_coupling: number of affine couplings (masks alternate parity 0, 1, 0, ...).
        hidden_dim, num_hidden: size of each coupling MLP.
        alpha: logit preprocessing constant, in ``(0, 0.5)``.

    Raises:
        ValueError: sizes that are not positive ints, ``alpha`` outside ``(0, 0.5)``.

    References:
        Dinh, Sohl-Dickstein, Bengio. Real NVP, 2016, §3.4 and §4.1 (Gaussian prior).
    """

    def __init__(self, height: int = 28, width: int = 28, num_coupling: int = 6, hidden_dim: int = 256,
                 num_hidden: int = 2, alpha: float = 0.05):
        num_coupling = checks.positive_int("num_coupling", num_coupling)
        dim = checks.positive_int("height", height) * checks.positive_int("width", width)
        layers = [LogitTransform(alpha)] + [
            AffineCoupling(dim, checkerboard_mask(height, width, i % 2), hidden_dim, num_hidden) for i in range(num_coupling)
        ]
        super().__init__(dim, layers, prior="gaussian")


def dequantized_log_likelihood(
    log_prob: Callable[[Tensor], Tensor], x: Tensor, num_draws: int, generator: torch.Generator | None = None
) -> Tensor:
    """Lower bound on ``log P(x)`` of 8-bit data under a density ``p`` on ``[0, 1]^D``; ``(B,)`` nats.

    ``P(x) = int_{[0,1)^D} p((x + u) / 256) 256^{-D} du``. With ``K = num_draws``
    uniform draws ``u_k``, returns ``log (1/K sum_k p((x + u_k)/256)) - D log 256``
    (on the 256-level scale). By Jensen its expectation is at most ``log P(x)`` and
    it rises towards it as ``K`` grows; ``K = 1`` is the usual single-draw figure.
    Convert to bits/dim with ``-value / (D log 2)``.

    Args:
        log_prob: maps a float ``(B, D)`` batch in ``[0, 1]`` to ``(B,)`` log-densities (nats).
        x: integer pixels ``(B, D)`` in ``0..255`` (uint8 or int64).
        num_draws: ``K >= 1``.
        generator: optional torch generator for the uniform noise.

    Raises:
        ValueError: ``x`` not an integer ``(B, D)`` tensor in ``0..255``, ``num_draws`` not a positive int,
            ``log_prob`` returning the wrong shape or a NaN (``-inf``, a zero density, is allowed).

    References:
        Theis, van den Oord, Bethge. A note on the evaluation of generative models, 2016, §3.1;
        the ``K``-draw average as in Ho et al. 2019 (Flow++), §3.1.
    """
    checks.tensor("x", x)
    if x.is_floating_point() or x.ndim != 2:
        raise ValueError(f"x must be an integer (B, D) tensor of 8-bit pixels, got dtype {x.dtype} and shape {tuple(x.shape)}")
    if x.numel() and (x.min() < 0 or x.max() > 255):
        raise ValueError(f"x must hold pixels in 0..255, got range [{int(x.min())}, {int(x.max())}]")
    num_draws = checks.positive_int("num_draws", num_draws)
    if not callable(log_prob):
        raise checks.ArgumentTypeError(f"log_prob must be callable, got {type(log_prob).__name__}")
    B, D = x.shape
    draws = []
    for _ in range(num_draws):
        u = torch.rand(x.shape, generator=generator)
        lp = log_prob((x.double() + u.double()).float() / 256.0)
        if not isinstance(lp, Tensor) or lp.shape != (B,):
            raise ValueError(f"log_prob must return a (B,) = ({B},) tensor, got {getattr(lp, 'shape', type(lp))}")
        if bool(torch.isnan(lp).any()):
            raise ValueError(f"log_prob returned {int(torch.isnan(lp).sum())} NaN log-densities (of {B}); "
                             "a NaN bound is no bound (a diverged model?)")
        draws.append(lp.detach().double().cpu())
    stacked = torch.stack(draws)  # (K, B)
    return torch.logsumexp(stacked, dim=0) - math.log(num_draws) - D * math.log(256)
