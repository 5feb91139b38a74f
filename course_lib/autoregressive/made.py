"""MADE: an autoregressive model from a dense network, made causal by masking its weight matrices.

Part of :mod:`course_lib.autoregressive`. The image models of this package make
a network causal with masked *convolutions* (or recurrences, or masked
attention). MADE does it for a plain multilayer perceptron on a vector of D
binary variables. Each unit gets an integer **degree**:

* input ``d`` gets ``m0(d) = order[d] + 1`` in ``1..D``: the step of the chain
  rule at which ``x_d`` is predicted, plus one;
* a hidden unit gets a degree ``m(k)`` in ``1..D-1``: the largest input degree
  it may depend on;
* output ``d`` (the logit of ``p(x_d = 1 | earlier variables)``) has the degree
  of input ``d``.

A hidden unit of layer ``l`` keeps the weight from a unit of the layer below
when ``m_l(k) >= m_{l-1}(j)``; an output keeps the weight from a hidden unit
when ``m0(d) > m_L(k)``, strictly. By induction a hidden unit of degree ``m``
depends only on inputs of degree ``<= m``, so logit ``d`` depends only on inputs
of degree ``< m0(d)``: the variables earlier in the order. The strict ``>`` is
the whole point: with ``>=`` in the output mask, logit ``d`` would read ``x_d``
through a hidden unit of degree ``m0(d)`` and the product of the conditionals
would no longer sum to 1.

Unlike a masked convolution, one masked dense layer already lets a logit read
every earlier variable (no receptive field grown layer by layer, no blind spot),
but nothing is shared between positions: a layer of H units on D inputs has
D * H weights, about D^2, against k^2 per channel pair for a k x k convolution.

References:
    M. Germain, K. Gregor, I. Murray, H. Larochelle, "MADE: Masked Autoencoder
    for Distribution Estimation", ICML 2015 (arXiv:1502.03509): §3 (the
    autoregressive factorization and its negative log-likelihood), §4.1 (masks
    of one hidden layer from degrees m(k) in 1..D-1: hidden mask m(k) >= d,
    output mask d > m(k)), §4.2 (deep MADE: hidden degrees drawn from
    [min of the layer below, D-1], hidden-to-hidden mask m_l(k') >= m_{l-1}(k)),
    §4.3 (orderings other than 1..D).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks

__all__ = ["made_degrees", "made_masks", "MaskedLinear", "MADE"]


def _num_inputs(num_inputs) -> int:
    return checks.positive_int("num_inputs", num_inputs, minimum=2)


def _order(order, num_inputs: int) -> Tensor:
    """``order`` as an int64 tensor holding a permutation of 0..D-1 (None: the identity)."""
    if order is None:
        return torch.arange(num_inputs)
    if isinstance(order, (str, bytes)) or not hasattr(order, "__len__"):
        raise checks.ArgumentTypeError(
            f"order must be a sequence (list, tuple, tensor) holding a permutation of 0..{num_inputs - 1}, got {order!r}"
        )
    values = order.tolist() if isinstance(order, (Tensor, np.ndarray)) else list(order)
    if any(isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)) for v in values):
        raise checks.ArgumentTypeError(f"order must hold ints (a permutation of 0..{num_inputs - 1}), got {values!r}")
    if sorted(values) != list(range(num_inputs)):
        raise ValueError(f"order must be a permutation of 0..{num_inputs - 1} (length {num_inputs}), got {values!r}")
    return torch.tensor(values, dtype=torch.long)


def made_degrees(num_inputs: int, hidden_sizes, order=None, seed: int | None = None) -> list[Tensor]:
    """The degrees of the input and hidden units of a MADE.

    Input ``d`` gets degree ``order[d] + 1`` (1..D). Hidden units get degrees in
    ``[lo, D - 1]``, where ``lo`` is the smallest degree of the layer below (a unit
    of smaller degree would have no input at all). With ``seed=None`` they cycle
    through that range (``lo, lo + 1, ..., D - 1, lo, ...``), so every degree is
    present once a layer has at least ``D - lo`` units and each logit reads
    every earlier variable; with a seed they are drawn uniformly from it, as in
    the paper.

    Args:
        num_inputs: D, the number of binary variables (int >= 2).
        hidden_sizes: widths of the hidden layers (a non-empty sequence of positive ints).
        order: ``order[d]`` is the step (0-based) at which variable ``d`` is
            predicted: a permutation of 0..D-1 (list, tuple, NumPy array or
            tensor); None for the identity (``x_0`` first).
        seed: None for the cyclic degrees, or an int >= 0 to draw them at random.

    Returns:
        ``[m0, m1, ..., mL]``: int64 tensors of shapes (D,), (H_1,), ..., (H_L,).

    Raises:
        ValueError: ``num_inputs`` < 2, an empty ``hidden_sizes`` or one with an
            entry < 1, an ``order`` that is not a permutation of 0..D-1, a negative seed.
        ArgumentTypeError (a TypeError and a ValueError): a non-int
            ``num_inputs`` or ``seed``, an ``order`` that is not a sequence of ints,
            a ``hidden_sizes`` that is not a sequence.

    References:
        Germain et al. 2015, "MADE", §4.1 (degrees m(k) in 1..D-1), §4.2 (deep
        MADE: degrees drawn from [min of the layer below, D-1]), §4.3 (orderings).
    """
    d = _num_inputs(num_inputs)
    sizes = checks.int_sizes("hidden_sizes", hidden_sizes, min_len=1)
    m0 = _order(order, d) + 1
    gen = None if seed is None else torch.Generator().manual_seed(checks.nonnegative_int("seed", seed))
    degrees, lo = [m0], 1
    for h in sizes:
        if gen is None:
            m = lo + torch.arange(h) % (d - lo)
        else:
            m = torch.randint(lo, d, (h,), generator=gen)
        degrees.append(m.long())
        lo = int(m.min())
    return degrees


def made_masks(degrees) -> list[Tensor]:
    """The binary masks of a MADE from its unit degrees (a pure function).

    Hidden layer ``l`` (``l = 1..L``): ``M[k, j] = m_l(k) >= m_{l-1}(j)``, shape
    (H_l, H_{l-1}) with H_0 = D. Output layer: ``M[d, k] = m0(d) > m_L(k)``,
    strictly, shape (D, H_L). The masks are laid out as ``nn.Linear`` weights
    (out_features, in_features).

    Args:
        degrees: ``[m0, m1, ..., mL]`` as from :func:`made_degrees` (1-D integer
            tensors, at least two of them).

    Returns:
        ``L + 1`` bool tensors: L hidden masks, then the output mask.

    Raises:
        ValueError: fewer than two degree vectors, or one that is not a 1-D integer tensor.
        ArgumentTypeError (a TypeError and a ValueError): ``degrees`` is not a list or tuple.

    References:
        Germain et al. 2015, "MADE", §4.1 (hidden mask m(k) >= d, output mask
        d > m(k)), §4.2 (mask between hidden layers m_l(k') >= m_{l-1}(k)).
    """
    if not isinstance(degrees, (list, tuple)):
        raise checks.ArgumentTypeError(f"degrees must be a list of 1-D integer tensors, got {type(degrees).__name__}")
    if len(degrees) < 2:
        raise ValueError(f"degrees must hold the input degrees and at least one hidden layer's, got {len(degrees)} vector(s)")
    for i, m in enumerate(degrees):
        if not isinstance(m, Tensor) or m.ndim != 1 or m.dtype.is_floating_point or m.dtype == torch.bool:
            raise ValueError(f"degrees[{i}] must be a 1-D integer tensor, got {m!r}")
    hidden = [later[:, None] >= earlier[None, :] for earlier, later in zip(degrees[:-1], degrees[1:])]
    output = degrees[0][:, None] > degrees[-1][None, :]
    return hidden + [output]


class MaskedLinear(nn.Linear):
    """A dense layer whose weight is multiplied by a fixed binary mask in every forward pass.

    ``y = x (W * M)^T + b``. The mask is a buffer (saved with the model, moved
    with ``.to``, never trained); multiplying it in ``forward`` rather than
    zeroing ``weight`` once keeps the masked weights out of the output whatever
    an optimizer does to them (as :class:`~course_lib.autoregressive.MaskedConv2d`).

    Args:
        in_features, out_features: sizes (positive ints).
        mask: (out_features, in_features) tensor of 0/1 or bool.
        bias: add a (never masked) bias.

    Shapes: input (B, in_features) -> output (B, out_features).

    Raises:
        ValueError: a mask of the wrong shape or with entries other than 0 and 1;
            an input whose last dimension is not ``in_features``.
        ArgumentTypeError (a TypeError and a ValueError): a mask that is not a tensor,
            non-int sizes.

    References:
        Germain et al. 2015, "MADE", §4.1: h(x) = g(b + (W ⊙ M^W) x).
    """

    def __init__(self, in_features: int, out_features: int, mask: Tensor, bias: bool = True):
        in_features = checks.positive_int("in_features", in_features)
        out_features = checks.positive_int("out_features", out_features)
        checks.tensor("mask", mask)
        if tuple(mask.shape) != (out_features, in_features):
            raise ValueError(f"mask must have shape (out_features, in_features) = ({out_features}, {in_features}), got {tuple(mask.shape)}")
        checks.binary("mask", mask)
        super().__init__(in_features, out_features, bias=bias)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        checks.tensor("x", x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (..., {self.in_features}), got {tuple(x.shape)}")
        return F.linear(x, self.weight * self.mask, self.bias)


class MADE(nn.Module):
    """MADE for D binary variables: masked ReLU layers, then one Bernoulli logit per variable.

    ``h_0 = x``, ``h_l = relu(MaskedLinear_l(h_{l-1}))``, ``logits = MaskedLinear_out(h_L)``,
    with the masks of :func:`made_masks` for the degrees of :func:`made_degrees`.
    Logit ``d`` depends only on the variables ``j`` with ``order[j] < order[d]``, so

        log p(x) = sum_d log Bernoulli(x_d; sigmoid(logit_d))

    is an exact, normalized log-probability for any weights.

    Args:
        num_inputs: D (int >= 2).
        hidden_sizes: hidden widths (non-empty sequence of positive ints; at least
            D - 1 units per layer lets each logit read every earlier variable).
        order: ``order[d]`` = the step at which ``x_d`` is predicted (a permutation
            of 0..D-1; None: ``x_0, x_1, ...``). Stored as the buffer ``order``.
        seed: None for cyclic hidden degrees, an int for random ones (see :func:`made_degrees`).

    Shapes: ``forward``: (B, D) real -> (B, D) logits; ``log_prob``: (B, D) binary -> (B,) nats.

    Raises:
        ValueError, ArgumentTypeError: bad arguments, as :func:`made_degrees` (each
            error names the argument); in ``forward`` and ``log_prob``, an ``x`` that is
            not a (B, D) tensor; in ``log_prob``, an ``x`` with entries other than 0 and 1.

    References:
        Germain et al. 2015, "MADE", §3 (negative log-likelihood of the
        autoregressive factorization), §4.1-4.3.
    """

    def __init__(self, num_inputs: int, hidden_sizes=(64,), order=None, seed: int | None = None):
        super().__init__()
        degrees = made_degrees(num_inputs, hidden_sizes, order, seed)
        masks = made_masks(degrees)
        self.num_inputs = degrees[0].numel()
        self.hidden_sizes = tuple(m.numel() for m in degrees[1:])
        self.register_buffer("order", degrees[0] - 1)
        widths = (self.num_inputs,) + self.hidden_sizes + (self.num_inputs,)
        self.layers = nn.ModuleList(MaskedLinear(a, b, m) for a, b, m in zip(widths[:-1], widths[1:], masks))

    def _check_x(self, x) -> Tensor:
        return checks.float_batch("x", x, self.num_inputs, dtype=self.layers[0].weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """(B, D) -> (B, D) logits; logit d is a function of the variables earlier in ``order`` only."""
        h = self._check_x(x)
        for layer in self.layers[:-1]:
            h = torch.relu(layer(h))
        return self.layers[-1](h)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-probability of binary vectors: (B, D) -> (B,) in nats.

        Raises:
            ValueError: ``x`` not of shape (B, D), or with entries other than 0 and 1.
            ArgumentTypeError: ``x`` is not a tensor.
        """
        x = checks.binary("x", self._check_x(x))
        return -F.binary_cross_entropy_with_logits(self(x), x, reduction="none").sum(1)

    def extra_repr(self) -> str:
        return f"num_inputs={self.num_inputs}, hidden_sizes={self.hidden_sizes}"
