"""Normalizing flows on vectors: the coupling equations, priors, the NICE log-likelihood, the layers, NICE and RealNVP.

Part of :mod:`course_lib.flows`, whose docstring gives the change of variables
formula and the conventions every bijection here follows (``forward`` and
``inverse`` return ``(out, log_det)``, ``log_det`` of shape ``(B,)`` in nats,
bool ``(D,)`` masks, the input checks).

References:
    Dinh, Krueger, Bengio. NICE: Non-linear Independent Components Estimation,
    2014 (arXiv:1410.8516); Dinh, Sohl-Dickstein, Bengio. Density estimation
    using Real NVP, 2016 (arXiv:1605.08803, ICLR 2017).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks
from course_lib.flows._partition import check_mask, partition

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
]

PRIORS = ("logistic", "gaussian")
PRIOR_STD = {"logistic": math.pi / math.sqrt(3), "gaussian": 1.0}
"""Standard deviation of each factorised prior, per coordinate."""


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------
def _param_dtype(module: nn.Module) -> torch.dtype:
    return next(module.parameters()).dtype


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def alternating_mask(dim: int, parity: int) -> Tensor:
    """The NICE partition by index parity: ``mask[i] = (i % 2 == parity)``.

    Args:
        dim: data dimension D (an int, at least 2).
        parity: 0 or 1; consecutive couplings alternate it so every
            coordinate is transformed (NICE §3.2 and §5.1).

    Returns:
        bool tensor of shape (D,).

    Raises:
        ValueError: if ``dim < 2`` or ``parity`` is not 0 or 1 (TypeError too for a non-int).
    """
    dim = checks.positive_int("dim", dim, minimum=2)
    parity = checks.nonnegative_int("parity", parity)
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity}")
    return torch.arange(dim) % 2 == parity


def _check_output(name: str, value, like: Tensor, what: str) -> None:
    if not isinstance(value, Tensor) or value.shape != like.shape:
        got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{name} must return {what} of shape {tuple(like.shape)}, got {got}")


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
        ValueError: on a wrong mask, an ``x`` that is not (B, D), or a shift of the wrong shape.
    """
    part = partition(mask, x)
    x1, x2 = part.split(x)                  # x[:, mask], x[:, ~mask]
    shift = shift_net(x1)
    _check_output("shift_net", shift, x2, "a shift")
    y = part.merge(x1, x2 + shift)          # y[:, mask] = x1, y[:, ~mask] = x2 + m(x1)
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
        ValueError: on a wrong mask, a ``y`` that is not (B, D), or a shift of the wrong shape.
    """
    part = partition(mask, y, "y")
    y1, y2 = part.split(y)
    shift = shift_net(y1)
    _check_output("shift_net", shift, y2, "a shift")
    x = part.merge(y1, y2 - shift)
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
        ValueError: on a wrong mask, an ``x`` that is not (B, D), or ``s``/``t`` of the wrong shape.
    """
    part = partition(mask, x)
    x1, x2 = part.split(x)
    s, t = scale_shift_net(x1)
    _check_output("scale_shift_net", s, x2, "s")
    _check_output("scale_shift_net", t, x2, "t")
    y = part.merge(x1, x2 * torch.exp(s) + t)
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
        ValueError: on a wrong mask, a ``y`` that is not (B, D), or ``s``/``t`` of the wrong shape.
    """
    part = partition(mask, y, "y")
    y1, y2 = part.split(y)
    s, t = scale_shift_net(y1)
    _check_output("scale_shift_net", s, y2, "s")
    _check_output("scale_shift_net", t, y2, "t")
    x = part.merge(y1, (y2 - t) * torch.exp(-s))
    return x, -s.sum(dim=1)


def _as_float(name: str, z) -> Tensor:
    z = checks.tensor(name, z)
    return z if z.is_floating_point() else z.float()


def logistic_log_prob(z: Tensor) -> Tensor:
    """Elementwise log-density of the standard logistic distribution, in nats.

    ``log p(z) = -(softplus(z) + softplus(-z))`` (NICE §3.4), written with
    softplus so it never overflows for large ``|z|``.

    Shapes: ``z`` any shape (integers become float32) -> the same shape.
    Raises ArgumentTypeError (a TypeError) when ``z`` is not a tensor.
    """
    z = _as_float("z", z)
    return -(F.softplus(z) + F.softplus(-z))


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """Elementwise log-density of N(0, 1), in nats: ``-z^2/2 - log(2 pi)/2``.

    Shapes: ``z`` any shape (integers become float32) -> the same shape.
    Raises ArgumentTypeError (a TypeError) when ``z`` is not a tensor.
    """
    z = _as_float("z", z)
    return -0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)


def _prior_log_prob(prior: str) -> Callable[[Tensor], Tensor]:
    checks.one_of("prior", prior, PRIORS)
    return logistic_log_prob if prior == "logistic" else standard_normal_log_prob


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
        ArgumentTypeError (a TypeError): ``h`` or ``log_scale`` is not a tensor.
    """
    checks.tensor("h", h)
    checks.tensor("log_scale", log_scale)
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
    hidden_dim = checks.positive_int("hidden_dim", hidden_dim)
    num_hidden = checks.positive_int("num_hidden", num_hidden)
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim), nn.ReLU()]
    for _ in range(num_hidden - 1):
        layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
    layers.append(nn.Linear(hidden_dim, out_dim))
    return nn.Sequential(*layers)


class _Coupling(nn.Module):
    """What both coupling layers share: the mask buffer and the input check."""

    def __init__(self, dim: int, mask: Tensor):
        super().__init__()
        self.dim = checks.positive_int("dim", dim, minimum=2)
        check_mask(mask, self.dim)
        self.register_buffer("mask", mask.clone())

    def _input(self, x, name: str) -> Tensor:
        return checks.float_batch(name, x, self.dim, dtype=_param_dtype(self))


class AdditiveCoupling(_Coupling):
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
        ValueError: on a mask that is not bool (D,) with both halves non-empty,
            or sizes that are not positive ints.

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §3.2.
    """

    def __init__(self, dim: int, mask: Tensor, hidden_dim: int = 1000, num_hidden: int = 5):
        super().__init__(dim, mask)
        n_cond = int(mask.sum())
        self.shift_net = _relu_mlp(n_cond, dim - n_cond, hidden_dim, num_hidden)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(y (B, D), log_det (B,))``; log_det is zero."""
        return additive_coupling_forward(self._input(x, "x"), self.mask, self.shift_net)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x (B, D), log_det (B,))``; log_det is zero."""
        return additive_coupling_inverse(self._input(y, "z"), self.mask, self.shift_net)


class AffineCoupling(_Coupling):
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
        ValueError: on a mask that is not bool (D,) with both halves non-empty,
            or sizes that are not positive ints.

    References:
        Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP, 2016, §3.
    """

    def __init__(self, dim: int, mask: Tensor, hidden_dim: int = 256, num_hidden: int = 2):
        super().__init__(dim, mask)
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
        return affine_coupling_forward(self._input(x, "x"), self.mask, self.scale_shift)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(x (B, D), log_det (B,))``, log_det of the inverse map."""
        return affine_coupling_inverse(self._input(y, "z"), self.mask, self.scale_shift)


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
        self.dim = checks.positive_int("dim", dim)
        self.log_scale = nn.Parameter(torch.zeros(self.dim))

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(z (B, D), log_det (B,))``."""
        h = checks.float_batch("x", h, self.dim, dtype=self.log_scale.dtype)
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
            h: (B, D) inputs to this layer for a batch of data, B >= 2, all finite.
            prior_std: standard deviation of the prior (the standard logistic's is pi/sqrt(3)).

        Raises:
            ValueError: ``h`` not (B, D), fewer than 2 rows (no spread to measure),
                NaN or inf entries, or ``prior_std`` not a positive finite float.
        """
        h = checks.float_batch("h", h, self.dim, dtype=self.log_scale.dtype)
        if h.shape[0] < 2:
            raise ValueError(f"h must have at least 2 rows to measure a spread, got {h.shape[0]}")
        checks.finite("h", h)
        prior_std = checks.positive_float("prior_std", prior_std)
        self.log_scale.copy_(torch.log(prior_std / h.std(dim=0).clamp_min(1e-6)))

    def inverse(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) -> ``(h (B, D), log_det (B,))``; log_det is ``-sum s``."""
        z = checks.float_batch("z", z, self.dim, dtype=self.log_scale.dtype)
        log_det = -self.log_scale.sum().expand(z.shape[0])  # (B,)
        return z * torch.exp(-self.log_scale), log_det


class FlowModel(nn.Module):
    """A stack of bijections with a factorised prior: the composition rule in code.

    ``forward`` applies the layers in order and adds their log-dets;
    ``inverse`` applies the inverses in reverse order (f^{-1} = f_1^{-1} o ... o f_K^{-1}).
    Inputs are converted to the model's dtype (``model.double()`` works on float32 data too).

    Args:
        dim: data dimension D.
        layers: bijections with ``forward``/``inverse`` returning ``(out, log_det)``.
        prior: ``"logistic"`` or ``"gaussian"``, factorised over the D coordinates.

    Raises:
        ValueError: on an unknown prior or a ``dim`` that is not a positive int.
    """

    def __init__(self, dim: int, layers: list[nn.Module], prior: str):
        super().__init__()
        _prior_log_prob(prior)  # validates the name
        self.dim = checks.positive_int("dim", dim)
        self.prior = prior
        self.layers = nn.ModuleList(layers)

    def _input(self, x, name: str) -> Tensor:
        return checks.float_batch(name, x, self.dim, dtype=_param_dtype(self))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data to latent: x (B, D) -> ``(z (B, D), log_det (B,))`` in nats. Raises ValueError unless (B, D)."""
        x = self._input(x, "x")
        log_det = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld  # log-dets of a composition add up
        return x, log_det

    def inverse(self, z: Tensor) -> Tensor:
        """Latent to data: z (B, D) -> x (B, D). Raises ValueError unless (B, D)."""
        z = self._input(z, "z")
        for layer in reversed(self.layers):
            z, _ = layer.inverse(z)
        return z

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p_Z(z) summed over coordinates: (B, D) -> (B,), nats."""
        z = self._input(z, "z")
        return _prior_log_prob(self.prior)(z).sum(dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-likelihood by change of variables (NICE eq. 3): (B, D) -> (B,), nats."""
        z, log_det = self(x)
        return self.prior_log_prob(z) + log_det

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw (n, D) latents from the prior, on the model's device and in its dtype.

        Raises:
            ValueError: ``n`` not a positive int (TypeError too for ``2.5`` or ``True``).
        """
        n = checks.positive_int("n", n)
        _check_generator(generator)
        p = next(self.parameters())
        kw = dict(generator=generator, device=p.device, dtype=p.dtype)
        if self.prior == "gaussian":
            return torch.randn(n, self.dim, **kw)
        # Inverse-CDF sampling of the logistic: z = log u - log(1 - u).
        u = torch.rand(n, self.dim, **kw).clamp(1e-6, 1 - 1e-6)
        return torch.log(u) - torch.log1p(-u)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Ancestral sampling: z ~ p_Z, x = f^{-1}(z). Returns (n, D) in the model's dtype (errors: see sample_prior)."""
        return self.inverse(self.sample_prior(n, generator))


class NICE(FlowModel):
    """NICE: additive couplings with alternating partitions, then a diagonal scaling.

    With the defaults this is the MNIST model of the paper (§5.1): 4 coupling
    layers, each coupling function a ReLU MLP of 5 hidden layers of 1000
    units, and a logistic prior.

    Args:
        dim: data dimension D (at least 2).
        num_coupling: number of additive coupling layers (partitions alternate).
        hidden_dim: width of each coupling MLP.
        num_hidden: hidden layers per coupling MLP.
        prior: ``"logistic"`` (paper) or ``"gaussian"``.

    Raises:
        ValueError: on a size that is not a positive int or an unknown prior.

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §3 and §5.1.
    """

    def __init__(self, dim: int, num_coupling: int = 4, hidden_dim: int = 1000, num_hidden: int = 5, prior: str = "logistic"):
        _prior_log_prob(prior)
        num_coupling = checks.positive_int("num_coupling", num_coupling)
        layers: list[nn.Module] = [
            AdditiveCoupling(dim, alternating_mask(dim, i % 2), hidden_dim, num_hidden) for i in range(num_coupling)
        ]
        layers.append(Scaling(dim))
        super().__init__(dim, layers, prior)

    @torch.no_grad()
    def init_from_data(self, x: Tensor, center: bool = True) -> None:
        """Data-dependent initialisation from a (B, D) batch: centre the couplings' output, then scale it.

        With ``center``, each coordinate's mean is subtracted through the bias of the
        last coupling that shifts it, so ``h = couplings(x)`` starts centred like the
        prior; then :meth:`Scaling.init_from_data` gives ``exp(s) * h`` the prior's
        spread. Without it, MNIST's near-constant background lies several prior
        standard deviations off centre after the scaling, and training spends its
        first epochs moving it back (compare ``benchmarks/nice_mnist.py`` with
        ``center=False``). A coordinate no coupling shifts (``num_coupling=1``) is left.

        Raises:
            ValueError: if ``x`` is not (B, D), has fewer than 2 rows, or holds NaN or inf.
        """
        x = self._input(x, "x")
        if x.shape[0] < 2:
            raise ValueError(f"x must have at least 2 rows to measure a spread, got {x.shape[0]}")
        checks.finite("x", x)
        if not isinstance(center, bool):
            raise checks.ArgumentTypeError(f"center must be a bool, got {center!r}")
        couplings = self.layers[:-1]
        last = {}  # coordinate -> index of the last coupling that shifts it
        for k, layer in enumerate(couplings):
            for d in (~layer.mask).nonzero().flatten().tolist():
                last[d] = k
        h = x
        for k, layer in enumerate(couplings):
            h_in = h
            h, _ = layer(h_in)
            owned = torch.tensor([d for d, j in last.items() if j == k], dtype=torch.long, device=h.device)
            if center and owned.numel():
                transformed = (~layer.mask).nonzero().flatten()  # the order of shift_net's outputs
                position = torch.searchsorted(transformed, owned)
                layer.shift_net[-1].bias[position] -= h[:, owned].mean(dim=0)
                h, _ = layer(h_in)  # recompute with the new bias
        self.layers[-1].init_from_data(h, prior_std=PRIOR_STD[self.prior])


class RealNVP(FlowModel):
    """RealNVP for vectors: affine couplings with alternating partitions.

    Args:
        dim: data dimension D (at least 2).
        num_coupling: number of affine coupling layers.
        hidden_dim: width of each coupling MLP.
        num_hidden: hidden layers per coupling MLP.
        prior: ``"gaussian"`` (the paper's choice) or ``"logistic"``.

    Raises:
        ValueError: on a size that is not a positive int or an unknown prior.

    References:
        Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP, 2016, §3.
    """

    def __init__(self, dim: int, num_coupling: int = 6, hidden_dim: int = 256, num_hidden: int = 2, prior: str = "gaussian"):
        _prior_log_prob(prior)
        num_coupling = checks.positive_int("num_coupling", num_coupling)
        layers = [AffineCoupling(dim, alternating_mask(dim, i % 2), hidden_dim, num_hidden) for i in range(num_coupling)]
        super().__init__(dim, layers, prior)
