"""Normalizing flows: NICE and RealNVP, written out layer by layer.

A flow is an invertible map :math:`f` from data :math:`x` to a latent
:math:`z = f(x)` with a simple prior :math:`p_Z`. The change of variables
formula (Dinh et al. 2014, eq. 1) gives the exact log-likelihood

.. math::  \\log p_X(x) = \\log p_Z(f(x)) + \\log \\left|\\det \\frac{\\partial f(x)}{\\partial x}\\right|.

Conventions used by every bijection in this module:

======================  =====================================================
``forward(x)``          data side to latent side, returns ``(z, log_det)``
``inverse(z)``          latent side to data side, returns ``(x, log_det)``
``log_det``             shape ``(B,)``, nats, ``log|det d output / d input|``
``mask``                bool ``(D,)``; ``True`` marks the half that passes
                        through unchanged and conditions the other half
======================  =====================================================

Shapes: ``B`` is the batch size and ``D`` the data dimension (784 for MNIST).

References:
    L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components
    Estimation. arXiv:1410.8516, 2014.

    L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP.
    arXiv:1605.08803, 2016 (ICLR 2017).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = [
    "additive_coupling_forward",
    "additive_coupling_inverse",
    "affine_coupling_forward",
    "affine_coupling_inverse",
    "logistic_log_prob",
    "standard_normal_log_prob",
    "nice_log_likelihood",
    "alternating_mask",
    "AdditiveCoupling",
    "AffineCoupling",
    "Scaling",
    "FlowModel",
    "NICE",
    "RealNVP",
    "TrainConfig",
    "train",
    "evaluate_log_likelihood",
]

PRIORS = ("logistic", "gaussian")
PRIOR_STD = {"logistic": math.pi / math.sqrt(3), "gaussian": 1.0}
"""Standard deviation of each factorised prior, per coordinate."""


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------
def _check_batch(x: Tensor, dim: int, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is a floating tensor of shape (B, dim)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (B, {dim}), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_mask(mask: Tensor, dim: int | None = None) -> None:
    """Raise ValueError unless ``mask`` is a bool (D,) tensor with both halves non-empty."""
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool or mask.ndim != 1:
        got = f"{mask.dtype} {tuple(mask.shape)}" if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a bool tensor of shape (D,), got {got}")
    if dim is not None and mask.shape[0] != dim:
        raise ValueError(f"mask must have shape ({dim},), got {tuple(mask.shape)}")
    if mask.all() or not mask.any():
        raise ValueError("mask must mark at least one True and one False entry")


def alternating_mask(dim: int, parity: int) -> Tensor:
    """The NICE partition by index parity: ``mask[i] = (i % 2 == parity)``.

    Args:
        dim: data dimension D (at least 2).
        parity: 0 or 1; consecutive couplings alternate it so every
            coordinate is transformed (NICE §3.2 and §5.1).

    Returns:
        bool tensor of shape (D,).

    Raises:
        ValueError: if ``dim < 2`` or ``parity`` is not 0 or 1.
    """
    if dim < 2:
        raise ValueError(f"dim must be at least 2, got {dim}")
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity}")
    return torch.arange(dim) % 2 == parity


# ----------------------------------------------------------------------------
# Pure functions: the equations of the chapter
# ----------------------------------------------------------------------------
def additive_coupling_forward(x: Tensor, mask: Tensor, shift_net: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Additive coupling, NICE eq. (6)-(7): ``y1 = x1``, ``y2 = x2 + m(x1)``.

    Here ``x1 = x[:, mask]`` (passes through, conditions) and
    ``x2 = x[:, ~mask]`` (is shifted).

    Args:
        x: (B, D) input.
        mask: bool (D,); True marks x1.
        shift_net: the coupling function m, mapping (B, |x1|) to (B, |x2|).
            It can be any function; it never needs to be inverted.

    Returns:
        ``(y, log_det)`` with y of shape (B, D) and log_det of shape (B,),
        all zeros: the Jacobian is unit triangular, so det = 1 (NICE eq. 8).

    Raises:
        ValueError: on a wrong mask or a shift of the wrong shape.
    """
    _check_mask(mask, x.shape[-1])
    x1, x2 = x[:, mask], x[:, ~mask]
    shift = shift_net(x1)
    if shift.shape != x2.shape:
        raise ValueError(f"shift_net must return shape {tuple(x2.shape)}, got {tuple(shift.shape)}")
    y = x.clone()
    y[:, ~mask] = x2 + shift
    return y, x.new_zeros(x.shape[0])


def additive_coupling_inverse(y: Tensor, mask: Tensor, shift_net: Callable[[Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`additive_coupling_forward`, NICE eq. (9): ``x2 = y2 - m(y1)``.

    Because ``y1 = x1``, the shift can be recomputed from the output, so the
    inverse costs one evaluation of m and never inverts m itself.

    Args:
        y: (B, D) output of the forward pass.
        mask: bool (D,); True marks y1 = x1.
        shift_net: the same coupling function m as in the forward pass.

    Returns:
        ``(x, log_det)``: x of shape (B, D) and a zero (B,) log-determinant.

    Raises:
        ValueError: on a wrong mask or a shift of the wrong shape.
    """
    _check_mask(mask, y.shape[-1])
    y1, y2 = y[:, mask], y[:, ~mask]
    shift = shift_net(y1)
    if shift.shape != y2.shape:
        raise ValueError(f"shift_net must return shape {tuple(y2.shape)}, got {tuple(shift.shape)}")
    x = y.clone()
    x[:, ~mask] = y2 - shift
    return x, y.new_zeros(y.shape[0])


def affine_coupling_forward(
    x: Tensor, mask: Tensor, scale_shift_net: Callable[[Tensor], tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Affine coupling, RealNVP eq. (4)-(6): ``y1 = x1``, ``y2 = x2 * exp(s(x1)) + t(x1)``.

    The Jacobian is triangular with ``exp(s)`` on the diagonal of the
    transformed block, so ``log|det| = sum_j s_j(x1)`` (RealNVP eq. 6).

    Args:
        x: (B, D) input.
        mask: bool (D,); True marks x1 (passes through, conditions).
        scale_shift_net: maps x1 (B, |x1|) to ``(s, t)``, each (B, |x2|).

    Returns:
        ``(y, log_det)``: y (B, D) and log_det (B,) in nats.

    Raises:
        ValueError: on a wrong mask or ``s``/``t`` of the wrong shape.
    """
    _check_mask(mask, x.shape[-1])
    x1, x2 = x[:, mask], x[:, ~mask]
    s, t = scale_shift_net(x1)
    if s.shape != x2.shape or t.shape != x2.shape:
        raise ValueError(f"scale_shift_net must return s and t of shape {tuple(x2.shape)}")
    y = x.clone()
    y[:, ~mask] = x2 * torch.exp(s) + t
    return y, s.sum(dim=1)


def affine_coupling_inverse(
    y: Tensor, mask: Tensor, scale_shift_net: Callable[[Tensor], tuple[Tensor, Tensor]]
) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`affine_coupling_forward`, RealNVP eq. (8): ``x2 = (y2 - t(y1)) * exp(-s(y1))``.

    Args:
        y: (B, D) output of the forward pass.
        mask: bool (D,); True marks y1 = x1.
        scale_shift_net: the same network as in the forward pass.

    Returns:
        ``(x, log_det)``: x (B, D) and ``log_det = -sum_j s_j`` (B,), nats,
        the log-determinant of the inverse map.

    Raises:
        ValueError: on a wrong mask or ``s``/``t`` of the wrong shape.
    """
    _check_mask(mask, y.shape[-1])
    y1, y2 = y[:, mask], y[:, ~mask]
    s, t = scale_shift_net(y1)
    if s.shape != y2.shape or t.shape != y2.shape:
        raise ValueError(f"scale_shift_net must return s and t of shape {tuple(y2.shape)}")
    x = y.clone()
    x[:, ~mask] = (y2 - t) * torch.exp(-s)
    return x, -s.sum(dim=1)


def logistic_log_prob(z: Tensor) -> Tensor:
    """Elementwise log-density of the standard logistic distribution, in nats.

    ``log p(z) = -(softplus(z) + softplus(-z))`` (NICE §3.4), written with
    softplus so it never overflows for large ``|z|``.

    Args:
        z: any shape.

    Returns:
        Tensor of the same shape as ``z``.
    """
    return -(F.softplus(z) + F.softplus(-z))


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Elementwise log-density of N(0, 1), in nats: ``-z^2/2 - log(2 pi)/2``.

    Args:
        z: any shape.

    Returns:
        Tensor of the same shape as ``z``.
    """
    return -0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)


def _prior_log_prob(prior: str) -> Callable[[Tensor], Tensor]:
    if prior == "logistic":
        return logistic_log_prob
    if prior == "gaussian":
        return standard_normal_log_prob
    raise ValueError(f"prior must be one of {PRIORS}, got {prior!r}")


def nice_log_likelihood(h: Tensor, log_scale: Tensor, prior: str = "logistic") -> Tensor:
    """NICE log-likelihood given the couplings' output and the scaling layer (NICE eq. 4 and §3.3).

    The last NICE layer rescales each coordinate, ``z = exp(s) * h``, so

    .. math:: \\log p(x) = \\sum_d \\log p_Z(e^{s_d} h_d) + \\sum_d s_d.

    The additive couplings before it add nothing: their log-det is zero.

    Args:
        h: (B, D) output of the last additive coupling.
        log_scale: (D,) the scaling layer's ``s``.
        prior: ``"logistic"`` (the paper's choice for MNIST) or ``"gaussian"``.

    Returns:
        (B,) log-likelihood in nats.

    Raises:
        ValueError: if the shapes disagree or the prior is unknown.
    """
    if h.ndim != 2 or log_scale.shape != (h.shape[1],):
        raise ValueError(
            f"h must have shape (B, D) and log_scale shape (D,), got {tuple(h.shape)} and {tuple(log_scale.shape)}"
        )
    log_pz = _prior_log_prob(prior)
    return log_pz(h * torch.exp(log_scale)).sum(dim=1) + log_scale.sum()


# ----------------------------------------------------------------------------
# Modules: parameters only, no state besides them
# ----------------------------------------------------------------------------
def _relu_mlp(in_dim: int, out_dim: int, hidden_dim: int, num_hidden: int) -> nn.Sequential:
    """ReLU MLP with ``num_hidden`` hidden layers of ``hidden_dim`` units (NICE §5.1)."""
    if num_hidden < 1 or hidden_dim < 1:
        raise ValueError(f"num_hidden and hidden_dim must be >= 1, got {num_hidden} and {hidden_dim}")
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
    for _ in range(num_hidden - 1):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


class AdditiveCoupling(nn.Module):
    """NICE additive coupling layer (Dinh et al. 2014, §3.2, eq. 6-9).

    ``y1 = x1``, ``y2 = x2 + m(x1)`` where m is a ReLU MLP. Volume preserving:
    ``log_det`` is zero.

    Args:
        dim: data dimension D.
        mask: bool (D,); True marks the half that passes through unchanged
            and conditions the other half.
        hidden_dim: width of m's hidden layers.
        num_hidden: number of hidden layers of m.

    Raises:
        ValueError: on a mask that is not bool (D,) with both halves non-empty.

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §3.2.
    """

    def __init__(self, dim: int, mask: Tensor, hidden_dim: int = 1000, num_hidden: int = 5):
        super().__init__()
        _check_mask(mask, dim)
        self.dim = dim
        self.register_buffer("mask", mask.clone())
        n_cond = int(mask.sum())
        self.shift_net = _relu_mlp(n_cond, dim - n_cond, hidden_dim, num_hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(y (B, D), log_det (B,))``; log_det is zero."""
        _check_batch(x, self.dim)
        return additive_coupling_forward(x, self.mask, self.shift_net)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x (B, D), log_det (B,))``; log_det is zero."""
        _check_batch(y, self.dim, "z")
        return additive_coupling_inverse(y, self.mask, self.shift_net)


class AffineCoupling(nn.Module):
    """RealNVP affine coupling layer (Dinh et al. 2016, §3.2-3.3, eq. 4-8).

    ``y1 = x1``, ``y2 = x2 * exp(s(x1)) + t(x1)``; ``log_det = sum s``.
    One ReLU MLP outputs both s and t. The scale is ``s = a * tanh(raw)``
    with a learnt per-coordinate ``a`` (initialised at 1): the tanh keeps
    ``exp(s)`` bounded early in training, a common stabiliser in RealNVP
    implementations. The last layer starts at zero, so the layer starts as
    the identity.

    Args:
        dim: data dimension D.
        mask: bool (D,); True marks the half that passes through unchanged
            and conditions the other half.
        hidden_dim: width of the hidden layers.
        num_hidden: number of hidden layers.

    Raises:
        ValueError: on a mask that is not bool (D,) with both halves non-empty.

    References:
        Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP, 2016, §3.
    """

    def __init__(self, dim: int, mask: Tensor, hidden_dim: int = 256, num_hidden: int = 2):
        super().__init__()
        _check_mask(mask, dim)
        self.dim = dim
        self.register_buffer("mask", mask.clone())
        n_cond = int(mask.sum())
        n_trans = dim - n_cond
        self.net = _relu_mlp(n_cond, 2 * n_trans, hidden_dim, num_hidden)
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(n_trans))

    def scale_shift(self, x1: Tensor) -> tuple[Tensor, Tensor]:
        """x1 (B, |x1|) -> ``(s, t)``, each (B, |x2|)."""
        raw_s, t = self.net(x1).chunk(2, dim=1)  # (B, 2*|x2|) -> 2 x (B, |x2|)
        return self.scale * torch.tanh(raw_s), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(y (B, D), log_det (B,))``, log_det in nats."""
        _check_batch(x, self.dim)
        return affine_coupling_forward(x, self.mask, self.scale_shift)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x (B, D), log_det (B,))``, log_det of the inverse map."""
        _check_batch(y, self.dim, "z")
        return affine_coupling_inverse(y, self.mask, self.scale_shift)


class Scaling(nn.Module):
    """NICE diagonal scaling layer (Dinh et al. 2014, §3.3): ``z = exp(s) * h``.

    The only layer of NICE that changes volume; ``log_det = sum_d s_d`` for
    every example. Large ``s_d`` marks a coordinate the model considers
    unimportant (the paper reads it as a spectrum, like PCA's).

    Args:
        dim: data dimension D.

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §3.3.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.log_scale = nn.Parameter(torch.zeros(dim))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(z (B, D), log_det (B,))``."""
        _check_batch(h, self.dim)
        log_det = self.log_scale.sum().expand(h.shape[0])  # (B,)
        return h * torch.exp(self.log_scale), log_det

    @torch.no_grad()
    def init_from_data(self, h: Tensor, prior_std: float = PRIOR_STD["logistic"]) -> None:
        """Data-dependent initialisation: choose ``s`` so that ``exp(s) * h`` has the prior's spread.

        Sets ``s_d = log(prior_std / std_d(h))``, the idea of ActNorm (Kingma &
        Dhariwal 2018, Glow §3.1), which NICE itself does not use. Without it
        the scale of near-constant pixels (MNIST's background, std about
        1e-3 after dequantization) takes thousands of Adam steps to learn,
        because Adam moves each parameter by about one learning rate per step.

        Args:
            h: (B, D) inputs to this layer for a batch of data.
            prior_std: standard deviation of the prior (the standard logistic's is pi/sqrt(3)).
        """
        _check_batch(h, self.dim, "h")
        self.log_scale.copy_(torch.log(prior_std / h.std(dim=0).clamp_min(1e-6)))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(h (B, D), log_det (B,))``; log_det is ``-sum s``."""
        _check_batch(z, self.dim, "z")
        log_det = -self.log_scale.sum().expand(z.shape[0])  # (B,)
        return z * torch.exp(-self.log_scale), log_det


class FlowModel(nn.Module):
    """A stack of bijections with a factorised prior: the composition rule in code.

    ``forward`` applies the layers in order and adds their log-dets;
    ``inverse`` applies the inverses in reverse order (f^{-1} = f_1^{-1} o ... o f_K^{-1}).

    Args:
        dim: data dimension D.
        layers: bijections with ``forward``/``inverse`` returning ``(out, log_det)``.
        prior: ``"logistic"`` or ``"gaussian"``, factorised over the D coordinates.

    Raises:
        ValueError: on an unknown prior.
    """

    def __init__(self, dim: int, layers: list[nn.Module], prior: str):
        super().__init__()
        _prior_log_prob(prior)  # validates the name
        self.dim = dim
        self.prior = prior
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent: x (B, D) -> ``(z (B, D), log_det (B,))`` in nats.

        Raises:
            ValueError: if ``x`` is not (B, D).
        """
        _check_batch(x, self.dim)
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld  # log-dets of a composition add up
        return x, log_det

    def inverse(self, z: Tensor) -> Tensor:
        """Latent to data: z (B, D) -> x (B, D).

        Raises:
            ValueError: if ``z`` is not (B, D).
        """
        _check_batch(z, self.dim, "z")
        for layer in reversed(self.layers):
            z, _ = layer.inverse(z)
        return z

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p_Z(z) summed over coordinates: (B, D) -> (B,), nats."""
        return _prior_log_prob(self.prior)(z).sum(dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-likelihood by change of variables (NICE eq. 3): (B, D) -> (B,), nats."""
        z, log_det = self(x)
        return self.prior_log_prob(z) + log_det

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, D) latents from the prior on the model's device."""
        if n < 1:
            raise ValueError(f"n must be a positive int, got {n}")
        device = next(self.parameters()).device
        if self.prior == "gaussian":
            return torch.randn(n, self.dim, generator=generator, device=device)
        # Inverse-CDF sampling of the logistic: z = log u - log(1 - u).
        u = torch.rand(n, self.dim, generator=generator, device=device).clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling: z ~ p_Z, x = f^{-1}(z). Returns (n, D).

        Raises:
            ValueError: if ``n < 1``.
        """
        return self.inverse(self.sample_prior(n, generator))


class NICE(FlowModel):
    """NICE: additive couplings with alternating partitions, then a diagonal scaling.

    With the defaults this is the MNIST model of the paper (§5.1): 4 coupling
    layers, each coupling function a ReLU MLP of 5 hidden layers of 1000
    units, and a logistic prior.

    Args:
        dim: data dimension D.
        num_coupling: number of additive coupling layers (partitions alternate).
        hidden_dim: width of each coupling MLP.
        num_hidden: hidden layers per coupling MLP.
        prior: ``"logistic"`` (paper) or ``"gaussian"``.

    Raises:
        ValueError: on ``num_coupling < 1`` or an unknown prior.

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §3 and §5.1.
    """

    def __init__(self, dim: int, num_coupling: int = 4, hidden_dim: int = 1000, num_hidden: int = 5, prior: str = "logistic"):
        if num_coupling < 1:
            raise ValueError(f"num_coupling must be >= 1, got {num_coupling}")
        layers: list[nn.Module] = [
            AdditiveCoupling(dim, alternating_mask(dim, i % 2), hidden_dim, num_hidden) for i in range(num_coupling)
        ]
        layers.append(Scaling(dim))
        super().__init__(dim, layers, prior)

    @torch.no_grad()
    def init_from_data(self, x: Tensor) -> None:
        """Initialise the scaling layer from a (B, D) batch of data (see :meth:`Scaling.init_from_data`).

        Raises:
            ValueError: if ``x`` is not (B, D).
        """
        _check_batch(x, self.dim)
        h = x
        for layer in self.layers[:-1]:
            h, _ = layer(h)
        self.layers[-1].init_from_data(h, prior_std=PRIOR_STD[self.prior])


class RealNVP(FlowModel):
    """RealNVP for vectors: affine couplings with alternating partitions.

    Args:
        dim: data dimension D.
        num_coupling: number of affine coupling layers.
        hidden_dim: width of each coupling MLP.
        num_hidden: hidden layers per coupling MLP.
        prior: ``"gaussian"`` (the paper's choice) or ``"logistic"``.

    Raises:
        ValueError: on ``num_coupling < 1`` or an unknown prior.

    References:
        Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP, 2016, §3.
    """

    def __init__(self, dim: int, num_coupling: int = 6, hidden_dim: int = 256, num_hidden: int = 2, prior: str = "gaussian"):
        if num_coupling < 1:
            raise ValueError(f"num_coupling must be >= 1, got {num_coupling}")
        layers = [AffineCoupling(dim, alternating_mask(dim, i % 2), hidden_dim, num_hidden) for i in range(num_coupling)]
        super().__init__(dim, layers, prior)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Maximum-likelihood training of a flow."""

    epochs: int = 10
    """Passes over the training set."""
    batch_size: int = 100
    """Examples per gradient step."""
    lr: float = 1e-3
    """Adam learning rate (the NICE paper uses 1e-3)."""
    weight_decay: float = 0.0
    """L2 penalty added by Adam."""
    seed: int = 0
    """Seed for shuffling and dequantization noise."""
    max_seconds: float | None = None
    """Stop after this many seconds of training (checked after each step); None for no limit."""
    checkpoint_path: str | None = None
    """Where to save a checkpoint after every epoch; None for no checkpoint."""
    resume: bool = True
    """Continue from ``checkpoint_path`` when it exists."""
    progress: bool = True
    """Show a tqdm progress bar."""


def _save_atomic(obj: dict, path: str) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written checkpoint."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@torch.no_grad()
def evaluate_log_likelihood(
    model: FlowModel,
    data: Tensor,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 1000,
) -> float:
    """Mean log-likelihood of ``data`` under ``model``, in nats per example.

    Args:
        model: a :class:`FlowModel`.
        data: (N, D) tensor, already on any device; batches are moved to the
            model's device.
        transform: applied to each batch before the model (e.g. dequantization).
        batch_size: evaluation batch size.

    Returns:
        The mean of ``model.log_prob`` over the N examples (nats).
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, data.shape[0], batch_size):
        batch = data[start : start + batch_size].to(device)
        if transform is not None:
            batch = transform(batch)
        total += model.log_prob(batch).sum().item()
        count += batch.shape[0]
    model.train(was_training)
    return total / count


def train(
    model: FlowModel,
    train_data: Tensor,
    config: TrainConfig = TrainConfig(),
    test_data: Tensor | None = None,
    transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    test_transform: Callable[[Tensor], Tensor] | None = None,
) -> tuple[FlowModel, dict]:
    """Fit a flow by maximum likelihood (minimise the mean negative log-likelihood).

    Args:
        model: a :class:`FlowModel` already on its device; batches follow it.
        train_data: (N, D) training examples (any dtype ``transform`` accepts).
        config: a :class:`TrainConfig`.
        test_data: optional (M, D) examples, evaluated after every epoch.
        transform: ``transform(batch, generator) -> float batch``, applied to
            each training batch, e.g. fresh dequantization noise every epoch.
        test_transform: ``transform(batch) -> float batch`` for test batches;
            make it deterministic so that epochs compare.

    Returns:
        ``(model, history)``. ``history`` is a dict of equal-length lists, one
        entry per epoch: ``epoch``, ``step``, ``seconds`` (training wall time,
        cumulative), ``train_log_likelihood`` and ``test_log_likelihood``
        (nats per example; the latter NaN without test data).

    Raises:
        FloatingPointError: when a loss is NaN or infinite; the message names
            the step and epoch, and no checkpoint is written for that epoch.
        ValueError: on data of the wrong shape.

    Checkpoints (``config.checkpoint_path``) hold state dicts, counters and
    the history, and are read back with ``torch.load(..., weights_only=True)``.
    """
    if train_data.ndim != 2 or train_data.shape[1] != model.dim:
        raise ValueError(f"train_data must have shape (N, {model.dim}), got {tuple(train_data.shape)}")
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history: dict[str, list] = {k: [] for k in ("epoch", "step", "seconds", "train_log_likelihood", "test_log_likelihood")}
    start_epoch, step, elapsed = 0, 0, 0.0

    if config.checkpoint_path and config.resume and os.path.exists(config.checkpoint_path):
        state = torch.load(config.checkpoint_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, step, elapsed = state["epoch"], state["step"], state["seconds"]
        history = {k: list(v) for k, v in state["history"].items()}

    generator = torch.Generator().manual_seed(config.seed)
    # Skip the random draws of finished epochs, so a resumed run sees the same batches.
    for _ in range(start_epoch):
        torch.randperm(train_data.shape[0], generator=generator)

    n = train_data.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    bar = tqdm(total=config.epochs * steps_per_epoch, initial=start_epoch * steps_per_epoch, disable=not config.progress, desc="train")
    out_of_time = False
    model.train()
    for epoch in range(start_epoch, config.epochs):
        tic = time.perf_counter()
        perm = torch.randperm(n, generator=generator)
        sum_ll = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            batch = train_data[idx]
            if transform is not None:
                batch = transform(batch, generator)
            batch = batch.to(device, non_blocking=True)
            loss = -model.log_prob(batch).mean()  # negative log-likelihood, nats per example
            if not torch.isfinite(loss):
                bar.close()
                raise FloatingPointError(f"loss is {loss.item()} at step {step} (epoch {epoch}); lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            sum_ll -= loss.item() * batch.shape[0]
            bar.update(1)
            bar.set_postfix(nll=f"{loss.item():.1f}")
            if config.max_seconds is not None and elapsed + time.perf_counter() - tic > config.max_seconds:
                out_of_time = True
                break
        elapsed += time.perf_counter() - tic
        seen = min(n, (i + 1) * config.batch_size)
        test_ll = float("nan") if test_data is None else evaluate_log_likelihood(model, test_data, test_transform)
        for key, value in zip(history, (epoch + 1, step, elapsed, sum_ll / seen, test_ll)):
            history[key].append(value)
        if config.checkpoint_path:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "step": step,
                "seconds": elapsed,
                "config": asdict(config),
                "history": history,
            }
            _save_atomic(state, config.checkpoint_path)
        if out_of_time:
            break
    bar.close()
    model.eval()
    return model, history
