"""Chapter 3, the math and the models: Gaussian and Bernoulli densities, the KL, the
reparameterization trick, the IWAE bound, gradient estimators, the pPCA check model and the VAE.

Re-exported by :mod:`course_lib.vae` (see its docstring for the map, shapes, units and references).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from course_lib import checks
from course_lib.nets import mlp

__all__ = [
    "standard_normal_log_prob",
    "diag_gaussian_log_prob",
    "bernoulli_log_prob",
    "discretized_logistic_log_prob",
    "gaussian_kl",
    "free_bits_kl",
    "reparameterize",
    "log_mean_exp",
    "single_sample_elbo",
    "iwae_asymptotic_gap",
    "reparameterization_gradient",
    "score_function_gradient",
    "active_units",
    "LinearGaussian",
    "VAE",
    "AutoregressiveVAE",
    "MixturePriorVAE",
    "VampPriorVAE",
    "ConditionalVAE",
    "GreyVAE",
]

_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------
# Argument checks shared by the functions below
# ----------------------------------------------------------------------------
def _check_mu_logvar(mu, logvar, names: tuple[str, str] = ("mu", "logvar")) -> tuple[Tensor, Tensor]:
    mu_name, logvar_name = names  # the caller's argument names, for the messages
    mu = checks.float_batch(mu_name, mu)
    logvar = checks.float_batch(logvar_name, logvar)
    if logvar.shape != mu.shape:
        raise ValueError(f"{logvar_name} must have the shape of {mu_name} {tuple(mu.shape)}, got {tuple(logvar.shape)}")
    checks.finite(mu_name, mu)
    checks.finite(logvar_name, logvar)
    return mu, logvar


def _check_binary_batch(name: str, x, dim: int, dtype: torch.dtype) -> Tensor:
    x = checks.float_batch(name, x, dim, dtype=dtype)
    checks.binary(name, x)
    return x


def _check_grey_batch(name: str, x, dim: int, dtype: torch.dtype, num_bins: int = 256) -> Tensor:
    # (B, D) grey levels k / (num_bins - 1), k = 0..num_bins-1: pixels / 255 for 8-bit images
    x = checks.finite(name, checks.float_batch(name, x, dim, dtype=dtype))
    k = x * (num_bins - 1)
    off_grid = ((x < 0) | (x > 1) | ((k - k.round()).abs() > 1e-3)) if x.numel() else torch.zeros(0, dtype=torch.bool)
    if bool(off_grid.any()):
        example = x[off_grid].flatten()[0].item()
        raise ValueError(f"{name} must hold grey levels k / {num_bins - 1} in [0, 1] (8-bit pixels divided by "
                         f"{num_bins - 1}), got {int(off_grid.sum())} other entries (e.g. {example!r})")
    return x


# ----------------------------------------------------------------------------
# Pure math
# ----------------------------------------------------------------------------
def standard_normal_log_prob(z: Tensor) -> Tensor:
    """``log N(z; 0, I)`` summed over the last axis: ``-(||z||^2 + Z log 2 pi) / 2``.

    Args:
        z: (..., Z).

    Returns:
        (...,), nats.

    Raises:
        TypeError: if ``z`` is not a tensor.

    References: Kingma & Welling 2014, §3 (the prior ``p(z) = N(0, I)``).
    """
    z = checks.tensor("z", z)
    return -0.5 * (z.pow(2) + _LOG_2PI).sum(-1)


def diag_gaussian_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """``log N(z; mu, diag(exp(logvar)))`` summed over the last axis.

    Args:
        z: (..., Z), broadcastable against ``mu`` and ``logvar`` (e.g. z of
            shape (k, B, Z) with mu, logvar of shape (B, Z)).
        mu, logvar: (..., Z): mean and log-variance.

    Returns:
        (...,), nats.

    Raises:
        TypeError: if an argument is not a tensor.

    References: Kingma & Welling 2014, eq. 9 (the Gaussian encoder).
    """
    z, mu, logvar = (checks.tensor(n, v) for n, v in (("z", z), ("mu", mu), ("logvar", logvar)))
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """``log p(x | z)`` of independent Bernoulli pixels with the given logits, summed over pixels.

    ``sum_d x_d log sigmoid(l_d) + (1 - x_d) log sigmoid(-l_d)``, computed as
    minus a binary cross-entropy with logits (stable for large ``|l|``).

    Args:
        logits: (..., D) decoder outputs; ``p(x_d = 1) = sigmoid(logits_d)``.
        x: (..., D) with values in {0, 1} (float, integer or bool), broadcastable against ``logits``.

    Returns:
        (...,), nats (always <= 0).

    Raises:
        ArgumentTypeError (TypeError and ValueError): an argument is not a tensor.
        ValueError: ``x`` has an entry other than 0 and 1 (a Bernoulli likelihood of
            x = 2 or x = 0.5 is not a probability), or does not broadcast against ``logits``.

    References: Kingma & Welling 2014, Appendix C.1 (Bernoulli MLP decoder).
    """
    logits, x = checks.tensor("logits", logits), checks.tensor("x", x)
    try:
        torch.broadcast_shapes(logits.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"x {tuple(x.shape)} must broadcast against logits {tuple(logits.shape)}") from None
    checks.binary("x", x)
    return _bernoulli_log_prob(logits, x)


def _bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    # bernoulli_log_prob without the checks, for x already checked (the models' bounds, every training step)
    logits, x = torch.broadcast_tensors(logits, x.to(logits.dtype))
    return -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def discretized_logistic_log_prob(x: Tensor, loc: Tensor, log_scale: Tensor, num_bins: int = 256) -> Tensor:
    """``log P(x)`` of independent pixels, each a logistic distribution discretized into ``num_bins`` bins.

    A pixel takes the grey levels ``x = k / (num_bins - 1)``, k = 0..num_bins-1. Its
    probability is the logistic's mass over the bin ``[x - h, x + h]``,
    ``h = 1 / (2 (num_bins - 1))``:
    ``sigmoid((x + h - loc) / s) - sigmoid((x - h - loc) / s)`` with ``s = exp(log_scale)``.
    The two edge bins take the tails: ``x = 0`` gets all the mass below ``h`` and
    ``x = 1`` all the mass above ``1 - h``, so the probabilities of the
    ``num_bins`` levels sum to 1 (without the edges they would not). A middle bin's
    log-probability is computed as ``log sigmoid(u) + log sigmoid(-l) + log(1 - exp(l - u))``
    (u, l the standardized edges), an identity that needs no subtraction of two numbers
    near 1 and so stays accurate in float32 and for scales far below a bin's width.

    Args:
        x: (..., D) grey levels on the grid above (e.g. 8-bit pixels / 255).
        loc, log_scale: (..., D) location and log-scale of each pixel's logistic,
            broadcastable against ``x``.
        num_bins: number of grey levels (256 for 8-bit images; at least 2).

    Returns:
        (...,), nats, summed over the last axis (always <= 0: a probability of a discrete value).

    Raises:
        ArgumentTypeError (TypeError and ValueError): an argument is not a tensor.
        ValueError: ``x`` off the grid or outside [0, 1], shapes that do not
            broadcast, or ``num_bins`` < 2 (named).

    References: Salimans et al. 2017 (PixelCNN++), §2.1 and eq. 2; Kingma et al.
    2016 (IAF), §5.2 (the discretized logistic as a VAE decoder).
    """
    x, loc, log_scale = (checks.tensor(n, v) for n, v in (("x", x), ("loc", loc), ("log_scale", log_scale)))
    num_bins = checks.positive_int("num_bins", num_bins, minimum=2)
    try:
        torch.broadcast_shapes(x.shape, loc.shape, log_scale.shape)
    except RuntimeError:
        raise ValueError(f"x {tuple(x.shape)}, loc {tuple(loc.shape)} and log_scale {tuple(log_scale.shape)} "
                         "must broadcast against each other") from None
    _check_grey_batch("x", x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1), None, loc.dtype, num_bins)
    return _discretized_logistic_log_prob(x.to(loc.dtype), loc, log_scale, num_bins)


def _discretized_logistic_log_prob(x: Tensor, loc: Tensor, log_scale: Tensor, num_bins: int = 256) -> Tensor:
    # discretized_logistic_log_prob without the checks (every training step)
    half = 0.5 / (num_bins - 1)                      # half a bin
    inv_s = torch.exp(-log_scale)
    upper = (x - loc + half) * inv_s                 # the bin's edges, standardized
    lower = (x - loc - half) * inv_s
    log_cdf_upper = F.logsigmoid(upper)              # x = 0: all the mass below its upper edge
    log_sf_lower = F.logsigmoid(-lower)              # x = 1: all the mass above its lower edge
    # the middle bins: sigmoid(u) - sigmoid(l) = sigmoid(u) sigmoid(-l) (1 - exp(-(u - l))), in logs: exact and
    # stable (no difference of two numbers near 1, even for a scale far below the bin width)
    log_mid = log_cdf_upper + log_sf_lower + torch.log(-torch.expm1(-(upper - lower)))
    log_p = torch.where(x < half, log_cdf_upper, torch.where(x > 1 - half, log_sf_lower, log_mid))
    return log_p.sum(-1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """``KL(N(mu, diag sigma^2) || N(0, I))`` per row, in closed form.

    ``KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1)``.

    Args:
        mu: (B, Z) means.
        logvar: (B, Z) log-variances ``log sigma^2``.

    Returns:
        (B,), nats, >= 0 (0 exactly when mu = 0 and logvar = 0).

    Raises:
        ArgumentTypeError (TypeError and ValueError): an argument is not a tensor.
        ValueError: an argument is not 2-D, the shapes differ, or an entry is NaN or infinite
            (the message names ``mu`` or ``logvar``).

    References: Kingma & Welling 2014, Appendix B (the solution of
    ``-D_KL``, with the opposite sign).
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(-1)


def free_bits_kl(mu: Tensor, logvar: Tensor, free_bits: float) -> Tensor:
    """The KL term of the free-bits objective: ``sum_j max(lambda, mean_b KL_bj)``, a scalar in nats per digit.

    ``KL_bj = 1/2 (mu_bj^2 + sigma_bj^2 - log sigma_bj^2 - 1)`` is latent coordinate
    j's KL for row b (:func:`gaussian_kl` sums it over j). Averaged over the batch
    first and then clamped below at ``lambda = free_bits``, a coordinate whose
    average KL is under its allowance costs a constant and gets no gradient from the
    KL term, so the optimizer has no reason to push it all the way to the prior (an
    inactive unit) early in training. With ``free_bits = 0`` it is ``gaussian_kl(mu,
    logvar).mean()``. The clamp is of the batch mean, not of each row's KL: clamping
    per row would let every digit keep lambda nats for free.

    Args:
        mu: (B, Z) means.
        logvar: (B, Z) log-variances.
        free_bits: lambda, nats per latent coordinate (>= 0).

    Returns:
        () tensor, nats.

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``mu``/``logvar`` not tensors, ``free_bits`` not a number.
        ValueError: shapes as :func:`gaussian_kl`; ``free_bits`` negative or not finite.

    References: Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling 2016,
    "Improved Variational Inference with Inverse Autoregressive Flow", NeurIPS
    (the "free bits" objective of its appendix, with one group per latent coordinate).
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    free_bits = checks.nonnegative_float("free_bits", free_bits)
    kl_per_dim = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)            # (B, Z)
    return kl_per_dim.mean(0).clamp(min=free_bits).sum()


def _location_scale(mu: Tensor, logvar: Tensor, eps: Tensor) -> Tensor:
    # z = mu + sigma * eps, broadcasting a leading sample axis of eps; the one place it is written
    return mu + torch.exp(0.5 * logvar) * eps


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A sample ``z = mu + sigma * eps``, ``eps ~ N(0, I)``, differentiable in ``mu`` and ``logvar``.

    Args:
        mu: (B, Z) means.
        logvar: (B, Z) log-variances; ``sigma = exp(logvar / 2)``.
        generator: the ``torch.Generator`` for ``eps`` (on the device of
            ``mu``); the global one if None.

    Returns:
        (B, Z) sample of ``q(z) = N(mu, diag sigma^2)``.

    Raises:
        ArgumentTypeError (TypeError and ValueError): an argument is not a tensor.
        ValueError: wrong shapes, or a NaN or infinite entry (the message names the argument).

    References: Kingma & Welling 2014, §2.4 and eq. 10.
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return _location_scale(mu, logvar, eps)


def log_mean_exp(log_w: Tensor, dim: int = 0) -> Tensor:
    """``log (1/k) sum_j exp(log_w_j)`` along ``dim``, without overflow (the max is factored out).

    With ``log_w_j = log p(x, z_j) - log q(z_j | x)`` over k samples this is
    the importance-weighted bound IWAE_k.

    Args:
        log_w: (k, ...) log-weights.
        dim: the axis to average over.

    Returns:
        ``log_w`` with ``dim`` removed, same units (nats).

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``log_w`` is not a tensor.
        ValueError: ``log_w`` has size 0 along ``dim``.

    References: Burda et al. 2016, eq. 8.
    """
    log_w = checks.tensor("log_w", log_w)
    k = log_w.shape[dim]
    if k < 1:
        raise ValueError(f"log_w must hold at least one sample along dim {dim}, got shape {tuple(log_w.shape)}")
    return torch.logsumexp(log_w, dim=dim) - math.log(k)


def single_sample_elbo(x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor, decode: Callable[[Tensor], Tensor]) -> Tensor:
    """The one-sample ELBO estimate ``log p(x | z) - KL(q || p(z))`` with ``z = mu + sigma * eps``.

    The reconstruction term is estimated with the one reparameterized sample,
    the KL term is exact (:func:`gaussian_kl`): the estimator of Kingma &
    Welling's eq. 10 with L = 1.

    Args:
        x: (B, D) binary data (entries 0 and 1).
        mu, logvar: (B, Z) parameters of ``q(z | x)``.
        eps: (B, Z) standard normal noise.
        decode: maps (B, Z) latents to (B, D) Bernoulli logits, the shape of ``x``.

    Returns:
        (B,), nats.

    Raises:
        ArgumentTypeError (TypeError and ValueError): an argument is not a tensor, or
            ``decode`` is not callable.
        ValueError: bad shapes, non-finite ``mu`` / ``logvar``, an ``x`` entry other than
            0 and 1, or ``decode`` returning logits whose shape is not ``x``'s (named).

    References: Kingma & Welling 2014, eq. 10.
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    eps = checks.float_batch("eps", eps)
    if eps.shape != mu.shape:
        raise ValueError(f"eps must have the shape of mu {tuple(mu.shape)}, got {tuple(eps.shape)}")
    x = checks.tensor("x", x)
    if x.ndim != 2 or x.shape[0] != mu.shape[0]:
        raise ValueError(f"x must have shape (B, D) with B = {mu.shape[0]} (the rows of mu), got {tuple(x.shape)}")
    checks.binary("x", x)
    if not callable(decode):
        raise checks.ArgumentTypeError(f"decode must be callable (latents -> logits), got {type(decode).__name__}")
    z = _location_scale(mu, logvar, eps)
    logits = decode(z)
    if not isinstance(logits, Tensor) or logits.shape != x.shape:
        got = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"decode must return logits of x's shape {tuple(x.shape)} (one per pixel), got {got}")
    return _bernoulli_log_prob(logits, x) - gaussian_kl(mu, logvar)


def iwae_asymptotic_gap(log_weight_variance: float, k: int) -> float:
    """Large-k gap ``log p(x) - IWAE_k`` when the log-weights are Gaussian with this variance: nats.

    For ``log w ~ N(mu_w, s2)``, ``Var[w] / E[w]^2 = exp(s2) - 1``, and the
    delta method gives ``log p(x) - IWAE_k ~ (exp(s2) - 1) / (2k)`` for large k:
    the gap falls as 1/k, with a constant that grows quickly with the spread
    of the log-weights.

    Args:
        log_weight_variance: ``s2 >= 0``.
        k: number of samples, >= 1.

    Raises:
        ValueError: a negative or non-finite variance, or k < 1 (named).

    References: Burda et al. 2016, §3 and Theorem 1 (monotonicity);
    Maddison et al. 2017, "Filtering Variational Objectives", Proposition 1 (the 1/k rate).
    """
    s2 = checks.nonnegative_float("log_weight_variance", log_weight_variance)
    k = checks.positive_int("k", k)
    return math.expm1(s2) / (2 * k)


def reparameterization_gradient(
    f: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample reparameterization estimates of ``grad_{mu, logvar} E_{z ~ N(mu, sigma^2)}[f(z)]``.

    Sample ``eps_i``, set ``z_i = mu + sigma eps_i`` and differentiate
    ``f(z_i)`` through the sample path. Their mean is an unbiased estimate;
    their spread is the estimator's variance.

    Args:
        f: maps (n, B, Z) to (n, B), differentiably (e.g. ``log p(x | z)``).
        mu, logvar: (B, Z), treated as the parameters (detached copies are used).
        n: number of independent samples, >= 1.
        generator: for ``eps``.

    Returns:
        ``(grad_mu, grad_logvar)``, each (n, B, Z): one gradient per sample.

    Raises:
        ValueError: bad shapes, non-finite entries, ``n < 1``, or ``f`` not returning
            an (n, B) tensor (named).

    References: Kingma & Welling 2014, §2.4; Schulman et al. 2015 (pathwise derivative).
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    n = checks.positive_int("n", n)
    mu_p = mu.detach().expand(n, *mu.shape).clone().requires_grad_(True)
    lv_p = logvar.detach().expand(n, *mu.shape).clone().requires_grad_(True)
    eps = torch.randn(mu_p.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    z = mu_p + torch.exp(0.5 * lv_p) * eps
    g_mu, g_lv = torch.autograd.grad(_check_f_output(f, z, n, mu.shape[0]).sum(), (mu_p, lv_p))
    return g_mu, g_lv


def _check_f_output(f, z: Tensor, n: int, b: int) -> Tensor:
    """``f(z)``, refused unless it is the (n, B) tensor the estimators promise (else it would broadcast into garbage)."""
    if not callable(f):
        raise checks.ArgumentTypeError(f"f must be callable ((n, B, Z) samples -> (n, B) values), got {type(f).__name__}")
    fz = f(z)
    if not isinstance(fz, Tensor) or fz.shape != (n, b):
        got = tuple(fz.shape) if isinstance(fz, Tensor) else type(fz).__name__
        raise ValueError(f"f must map the (n, B, Z) = {tuple(z.shape)} samples to (n, B) = {(n, b)} values, got {got}")
    return fz


def score_function_gradient(
    f: Callable[[Tensor], Tensor], mu: Tensor, logvar: Tensor, n: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Per-sample score-function (REINFORCE) estimates of ``grad_{mu, logvar} E_{z ~ q}[f(z)]``.

    ``f(z_i) grad log q(z_i)`` with ``z_i ~ q = N(mu, diag sigma^2)``, where
    ``d log q / d mu = (z - mu) / sigma^2`` and
    ``d log q / d logvar = ((z - mu)^2 / sigma^2 - 1) / 2``. Needs only values
    of ``f``, no derivative of it: the estimator of Chapter 4.

    Args:
        f: maps (n, B, Z) to (n, B) (only evaluated, never differentiated).
        mu, logvar: (B, Z).
        n: number of samples, >= 1.
        generator: for the samples.

    Returns:
        ``(grad_mu, grad_logvar)``, each (n, B, Z).

    Raises:
        ValueError: bad shapes, non-finite entries, ``n < 1``, or ``f`` not returning
            an (n, B) tensor (named).

    References: Williams 1992 (REINFORCE); Kingma & Welling 2014, §2.4 (why
    the reparameterized estimator is preferred).
    """
    mu, logvar = _check_mu_logvar(mu, logvar)
    n = checks.positive_int("n", n)
    mu, logvar = mu.detach(), logvar.detach()
    eps = torch.randn((n, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
    with torch.no_grad():
        z = _location_scale(mu, logvar, eps)
        fz = _check_f_output(f, z, n, mu.shape[0])[..., None]  # (n, B, 1)
    # (z - mu) / sigma^2 = eps / sigma;  (z - mu)^2 / sigma^2 = eps^2
    return fz * eps * torch.exp(-0.5 * logvar), fz * 0.5 * (eps.pow(2) - 1.0)


def active_units(mu: Tensor, threshold: float = 1e-2) -> int:
    """Number of latent coordinates whose posterior mean varies across the data.

    Unit ``j`` is *active* when ``Var_x(E_q[z_j | x]) > threshold``; an
    inactive unit has collapsed to the prior (its posterior ignores x).

    Args:
        mu: (B, Z) encoder means ``E_q[z | x]`` over B examples, B >= 2.
        threshold: variance threshold (Burda et al. use 1e-2).

    Returns:
        an int in [0, Z].

    Raises:
        ValueError: ``mu`` not (B, Z) with B >= 2, non-finite, or a non-positive threshold.

    References: Burda et al. 2016, §5.2 (the active-units statistic).
    """
    mu = checks.float_batch("mu", mu)
    checks.finite("mu", mu)
    threshold = checks.positive_float("threshold", threshold)
    if mu.shape[0] < 2:
        raise ValueError(f"mu must hold at least 2 examples to measure a variance, got {tuple(mu.shape)}")
    return int((mu.var(0) > threshold).sum())


# ----------------------------------------------------------------------------
# The exact check model: probabilistic PCA
# ----------------------------------------------------------------------------
class LinearGaussian(nn.Module):
    """Probabilistic PCA: ``z ~ N(0, I_Z)``, ``x | z ~ N(W z + b, noise_std^2 I_D)``.

    Every quantity the chapter approximates is exact here (float64):
    ``p(x) = N(b, W W^T + s^2 I)`` and ``p(z | x) = N(M^-1 W^T (x - b), s^2 M^-1)``
    with ``M = W^T W + s^2 I`` (Tipping & Bishop 1999, eqs. 6 and 7).

    ``W`` is drawn with orthogonal columns, ``W = U diag(scales)``. That loses
    no generality: ``p(x)`` is unchanged when ``W`` is replaced by ``W R`` for
    a rotation ``R`` of the latent space, and the maximum-likelihood ``W``
    has this form (Tipping & Bishop 1999, eq. 7). It makes ``M`` and hence the
    exact posterior covariance diagonal, so a diagonal ``q`` can equal the
    posterior (check (a) of the chapter).

    Args:
        data_dim: D >= latent_dim.
        latent_dim: Z >= 1.
        noise_std: s > 0.
        generator: draws ``U`` (QR of a Gaussian matrix), ``scales`` (uniform in [1, 2])
            and ``b`` (entries N(0, 1)).

    Raises:
        ValueError: a non-positive size or noise_std (named).

    References: Tipping & Bishop 1999; Kingma & Welling 2014, eq. 1-3 (the ELBO
    this class evaluates in closed form).
    """

    def __init__(self, data_dim: int, latent_dim: int, noise_std: float, generator: torch.Generator | None = None):
        super().__init__()
        self.data_dim = checks.positive_int("data_dim", data_dim)
        self.latent_dim = checks.positive_int("latent_dim", latent_dim)
        self.noise_std = checks.positive_float("noise_std", noise_std)
        if self.latent_dim > self.data_dim:
            raise ValueError(f"latent_dim must be <= data_dim ({data_dim}), got {latent_dim}")
        U, _ = torch.linalg.qr(torch.randn(data_dim, latent_dim, generator=generator, dtype=torch.float64))
        scales = 1.0 + torch.rand(latent_dim, generator=generator, dtype=torch.float64)
        # buffers, not parameters: the check model is fixed, never trained
        self.register_buffer("W", U * scales)
        self.register_buffer("b", torch.randn(data_dim, generator=generator, dtype=torch.float64))

    def _x(self, x) -> Tensor:
        x = checks.float_batch("x", x, self.data_dim, dtype=torch.float64)
        return checks.finite("x", x)

    def _q(self, x: Tensor, q_mu, q_logvar) -> tuple[Tensor, Tensor]:
        q_mu, q_logvar = _check_mu_logvar(q_mu, q_logvar, ("q_mu", "q_logvar"))
        if q_mu.shape != (x.shape[0], self.latent_dim):
            raise ValueError(f"q_mu must have shape {(x.shape[0], self.latent_dim)}, got {tuple(q_mu.shape)}")
        return q_mu.to(torch.float64), q_logvar.to(torch.float64)

    def marginal(self) -> tuple[Tensor, Tensor]:
        """``(mean (D,), covariance (D, D))`` of ``p(x)``."""
        return self.b, self.W @ self.W.T + self.noise_std**2 * torch.eye(self.data_dim, dtype=torch.float64)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)``: x of shape (B, D) -> (B,), nats.

        Raises:
            ValueError: x not (B, D) or not finite (named ``x``).
        """
        x = self._x(x)
        mean, cov = self.marginal()
        return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Exact ``p(z | x)``: ``(mu (B, Z), cov (Z, Z))``; the covariance is the same for every x.

        Raises:
            ValueError: x not (B, D) or not finite (named ``x``).
        """
        x = self._x(x)
        M = self.W.T @ self.W + self.noise_std**2 * torch.eye(self.latent_dim, dtype=torch.float64)
        mu = torch.linalg.solve(M, self.W.T @ (x - self.b).T).T
        return mu, self.noise_std**2 * torch.linalg.inv(M)

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        """``log p(x | z)``: x (B, D), z (..., B, Z) -> (..., B), nats."""
        x = self._x(x)
        z = checks.tensor("z", z).to(torch.float64)
        if z.shape[-2:] != (x.shape[0], self.latent_dim):
            raise ValueError(f"z must have shape (..., {x.shape[0]}, {self.latent_dim}), got {tuple(z.shape)}")
        r = x - z @ self.W.T - self.b
        return -0.5 * (r.pow(2).sum(-1) / self.noise_std**2 + self.data_dim * (_LOG_2PI + 2 * math.log(self.noise_std)))

    def elbo(self, x: Tensor, q_mu: Tensor, q_logvar: Tensor) -> Tensor:
        """The ELBO of ``q(z) = N(q_mu, diag exp(q_logvar))`` in closed form: (B,), nats.

        ``E_q[log p(x | z)] - KL(q || p(z))`` with
        ``E_q||x - W z - b||^2 = ||x - W m - b||^2 + sum_j (W^T W)_jj s_j^2``.

        Args:
            x: (B, D).
            q_mu, q_logvar: (B, Z).

        Raises:
            ValueError: wrong shapes or non-finite entries (named).
        """
        x = self._x(x)
        q_mu, q_logvar = self._q(x, q_mu, q_logvar)
        r = x - q_mu @ self.W.T - self.b
        trace = (q_logvar.exp() * (self.W.pow(2).sum(0))).sum(-1)
        expected_ll = -0.5 * ((r.pow(2).sum(-1) + trace) / self.noise_std**2
                              + self.data_dim * (_LOG_2PI + 2 * math.log(self.noise_std)))
        return expected_ll - gaussian_kl(q_mu, q_logvar)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws of x: (n, D)."""
        n = checks.positive_int("n", n)
        z = torch.randn(n, self.latent_dim, generator=generator, dtype=torch.float64)
        return z @ self.W.T + self.b + self.noise_std * torch.randn(n, self.data_dim, generator=generator, dtype=torch.float64)


# ----------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------
class VAE(nn.Module):
    """Variational autoencoder with a Gaussian encoder and a Bernoulli decoder.

    Encoder: MLP ``D -> hidden_dims -> 2Z`` giving ``(mu, logvar)`` of
    ``q(z | x)``; decoder: MLP ``Z -> reversed(hidden_dims) -> D`` giving the
    logits of ``p(x | z)``; prior ``N(0, I)``. ReLU activations.

    Args:
        data_dim: D (784 for MNIST).
        latent_dim: Z.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).

    Shapes: ``x`` is (B, D) with values in {0, 1}; ``z`` is (B, Z).

    Raises:
        ValueError: non-positive sizes (named).

    References: Kingma & Welling 2014, §3 and Appendix C; Burda et al. 2016, §3.
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256)):
        super().__init__()
        self.data_dim = checks.positive_int("data_dim", data_dim)
        self.latent_dim = checks.positive_int("latent_dim", latent_dim)
        self.hidden_dims = checks.int_sizes("hidden_dims", hidden_dims)
        self.encoder = mlp((self.data_dim, *self.hidden_dims, 2 * self.latent_dim), nn.ReLU)
        self.decoder = mlp((self.latent_dim, *self.hidden_dims[::-1], self.data_dim), nn.ReLU)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    #: The data this model's likelihood is for: binary pixels (a fresh binarization every epoch
    #: in :func:`train_vae`); :class:`GreyVAE` sets False (the grey levels themselves).
    binary_data = True

    def _x(self, x, name: str = "x") -> Tensor:
        # the data check of every method that reads x (and of train_vae / evaluate_bounds, with their names)
        return _check_binary_batch(name, x, self.data_dim, self._dtype())

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of ``q(z | x)``, each (B, Z). Raises ValueError for bad ``x`` (named)."""
        mu, logvar = self.encoder(self._x(x)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Logits of ``p(x | z)``: z (..., Z) -> (..., D). Raises ValueError for a bad ``z`` (named)."""
        z = checks.tensor("z", z)
        if z.ndim < 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., B, {self.latent_dim}), got {tuple(z.shape)}")
        return self.decoder(z.to(self._dtype()))

    def elbo_terms(self, x: Tensor, generator: torch.Generator | None = None, **cond) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)``, each (B,) in nats: a one-sample ``log p(x | z)`` and the exact KL.

        ``elbo = reconstruction - kl``; ``-reconstruction`` is the *distortion*
        and ``kl`` the *rate* of the beta-VAE plot. ``cond``: the conditioning
        keywords of a subclass (``y=`` of :class:`ConditionalVAE`), passed to its
        encoder and decoder; none for this class.
        """
        x = self._x(x)
        mu, logvar = self.encode(x, **cond)
        z = reparameterize(mu, logvar, generator)
        return self._log_px_given_z(z, x, **cond), gaussian_kl(mu, logvar)

    def log_px_given_z(self, z: Tensor, x: Tensor) -> Tensor:
        """``log p(x | z)`` in nats: z (..., B, Z) and binary x (B, D) -> (..., B).

        Independent Bernoulli pixels with logits ``decode(z)`` (in :class:`AutoregressiveVAE`,
        plus the autoregressive term ``autoregressive_logits(x)``).

        Raises:
            ValueError: ``x`` not (B, D) with entries 0 and 1, or ``z`` not (..., B, Z) or (..., 1, Z) (named).
        """
        x = self._x(x)
        z = checks.tensor("z", z)
        if z.ndim < 2 or z.shape[-2] not in (x.shape[0], 1):  # 1: one z for every row of x (broadcast)
            raise ValueError(f"z must have shape (..., B, {self.latent_dim}) with B = {x.shape[0]} (the rows of x) "
                             f"or 1, got {tuple(z.shape)}")
        return self._log_px_given_z(z, x)

    def _log_px_given_z(self, z: Tensor, x: Tensor) -> Tensor:
        # log_px_given_z for an x already checked (the bounds check x once; this runs in every training step).
        # Subclasses with another decoder (AutoregressiveVAE) override this one method.
        return _bernoulli_log_prob(self.decode(z), x)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # A subclass written against the earlier hook overrides log_px_given_z itself: use it in the bounds too.
        if "log_px_given_z" in cls.__dict__ and "_log_px_given_z" not in cls.__dict__:
            cls._log_px_given_z = cls.__dict__["log_px_given_z"]

    def elbo(self, x: Tensor, beta: float = 1.0, generator: torch.Generator | None = None, **cond) -> Tensor:
        """One-sample estimate of ``E_q[log p(x | z)] - beta KL(q(z | x) || p(z))``: (B,), nats.

        With ``beta = 1`` a lower bound on ``log p(x)`` (in expectation over the sample).

        Raises:
            ValueError: x not (B, D) binary, or beta negative / not finite (named).

        References: Kingma & Welling 2014, eq. 10; Higgins et al. 2017, eq. 4 (beta).
        """
        beta = checks.nonnegative_float("beta", beta)
        rec, kl = self.elbo_terms(x, generator, **cond)
        return rec - beta * kl

    def log_weights(self, x: Tensor, k: int, generator: torch.Generator | None = None, **cond) -> Tensor:
        """``log p(x, z_j) - log q(z_j | x)`` for ``z_j ~ q(z | x)``, j = 1..k: (k, B), nats.

        Raises:
            ValueError: x not (B, D) binary, or k < 1 (named).
        """
        x = self._x(x)
        k = checks.positive_int("k", k)
        mu, logvar = self.encode(x, **cond)
        eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = _location_scale(mu, logvar, eps)
        log_q = -0.5 * (eps.pow(2) + logvar + _LOG_2PI).sum(-1)  # diag_gaussian_log_prob(z, mu, logvar)
        return self._log_px_given_z(z, x, **cond) + self.prior_log_prob(z) - log_q

    def iwae_bound(self, x: Tensor, k: int, generator: torch.Generator | None = None, chunk: int = 100,
                   **cond) -> Tensor:
        """The importance-weighted bound ``log (1/k) sum_j p(x, z_j) / q(z_j | x)``: (B,), nats.

        ``IWAE_1`` is the ELBO; the bound grows with k towards ``log p(x)``.
        The k samples are drawn ``chunk`` at a time, so memory stays bounded for k = 5000.

        Raises:
            ValueError: x not (B, D) binary, k < 1 or chunk < 1 (named).

        References: Burda et al. 2016, eq. 8 and Theorem 1.
        """
        x = self._x(x)
        k = checks.positive_int("k", k)
        chunk = checks.positive_int("chunk", chunk)
        log_w = torch.cat([self.log_weights(x, min(chunk, k - j), generator, **cond) for j in range(0, k, chunk)])
        return log_mean_exp(log_w, dim=0)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """``log p(z)`` of the prior, here ``N(0, I)``: (..., Z) -> (...), nats."""
        return standard_normal_log_prob(z)

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes ``z ~ p(z)`` (here ``N(0, I)``): (n, Z), on the model's device.

        ``generator`` must live on the model's device (``torch.randn``'s rule).
        Raises ValueError for ``n`` < 1 (named).
        """
        n = checks.positive_int("n", n)
        device = next(self.parameters()).device
        return torch.randn(n, self.latent_dim, generator=generator, device=device, dtype=self._dtype())

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` binary images from ``z ~ p(z)``, ``x ~ p(x | z)``: (n, D) with values in {0, 1}."""
        n = checks.positive_int("n", n)
        device = next(self.parameters()).device
        z = self.sample_prior(n, generator)
        probs = torch.sigmoid(self.decode(z))
        return (torch.rand(probs.shape, generator=generator, device=device, dtype=probs.dtype) < probs).to(probs.dtype)


class AutoregressiveVAE(VAE):
    """A :class:`VAE` whose decoder also looks at the pixels before each pixel.

    ``p(x | z) = prod_i Bernoulli(x_i; sigmoid(f(z)_i + sum_{j<i} W_ij x_j))``:
    the VAE's decoder logits ``f(z)`` plus a linear autoregressive term over the
    raster order (strictly lower-triangular ``W``, initialised at 0, so training
    starts from the plain VAE). Without ``z`` this is the fully visible sigmoid
    belief net; with it, the simplest VAE with an autoregressive decoder. The
    decoder now models the local correlations between neighbouring pixels that a
    factorized decoder has to push through ``z``; ``log p(x | z)`` is still exact
    in one pass (teacher forcing), so the ELBO and the IWAE bound are computed as
    for the :class:`VAE`; only sampling is sequential (D steps).

    Args:
        data_dim: D (784 for MNIST); the autoregressive weights are (D, D).
        latent_dim: Z.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).

    Shapes: ``x`` is (B, D) with values in {0, 1}; ``z`` is (B, Z) or (k, B, Z);
    ``log_px_given_z`` returns (B,) or (k, B), in nats.

    Raises:
        ValueError: non-positive sizes, a bad ``x`` or ``z`` (named), as :class:`VAE`.

    References: Frey 1998 and Larochelle & Murray 2011 (the fully visible sigmoid
    belief net); Gulrajani et al. 2017 (PixelVAE) and Chen et al. 2017 (Variational
    Lossy Autoencoder): VAEs with autoregressive decoders.
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256)):
        super().__init__(data_dim, latent_dim, hidden_dims)
        self.autoregressive = nn.Linear(self.data_dim, self.data_dim, bias=False)
        nn.init.zeros_(self.autoregressive.weight)
        # mask[i, j] = 1 for j < i: logit i sees only the pixels before it
        self.register_buffer("mask", torch.ones(self.data_dim, self.data_dim).tril(-1), persistent=False)

    def autoregressive_logits(self, x: Tensor) -> Tensor:
        """``sum_{j<i} W_ij x_j`` for each pixel i: (..., D) -> (..., D)."""
        return F.linear(x, self.autoregressive.weight * self.mask)

    def _log_px_given_z(self, z: Tensor, x: Tensor) -> Tensor:
        # log_px_given_z (checks x, then calls this): the decoder's logits plus the autoregressive term
        return _bernoulli_log_prob(self.decode(z) + self.autoregressive_logits(x), x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` binary images, pixel by pixel in raster order: (n, D) in {0, 1}."""
        n = checks.positive_int("n", n)
        device = next(self.parameters()).device
        z = self.sample_prior(n, generator)
        base = self.decode(z)  # (n, D)
        w = self.autoregressive.weight * self.mask  # (D, D)
        x = torch.zeros_like(base)
        for i in range(self.data_dim):  # pixel i depends on the pixels already drawn
            p = torch.sigmoid(base[:, i] + x @ w[i])
            x[:, i] = (torch.rand(n, generator=generator, device=device, dtype=p.dtype) < p).to(x.dtype)
        return x


class MixturePriorVAE(VAE):
    """A :class:`VAE` whose prior is a mixture of K diagonal Gaussians, learned with the rest.

    ``p(z) = sum_k pi_k N(z; m_k, diag(exp(s_k)))`` with ``pi = softmax(prior_logits)``,
    means ``prior_means`` (K, Z) and log-variances ``prior_logvars`` (K, Z), all trained
    by the same ELBO as the encoder and the decoder. Why: with the fixed prior
    ``N(0, I)`` the codes of the training digits (the aggregate posterior) do not fill
    the prior, so many codes drawn from ``N(0, I)`` fall between the classes and
    decode to blends (the "prior hole"). A learned prior moves its mass to where the
    codes are, and the model's own samples improve. The KL to a mixture has no closed
    form, so :meth:`elbo_terms` returns the one-sample estimate
    ``log q(z | x) - log p(z)`` at the same ``z`` as the reconstruction term (unbiased
    for the KL; the ELBO estimate stays unbiased). The IWAE bound uses
    :meth:`prior_log_prob` and is unchanged otherwise.

    Args:
        data_dim: D (784 for MNIST).
        latent_dim: Z.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).
        prior_components: K >= 1. The means start at N(0, I) draws (a fixed seed, so
            two models built alike are equal), the variances at 1, the weights uniform.

    Shapes: ``z`` is (..., Z); :meth:`prior_log_prob` returns (...), nats.

    Raises:
        ValueError: non-positive sizes or ``prior_components`` (named), as :class:`VAE`.

    References: Tomczak & Welling 2018, "VAE with a VampPrior", §3 (eq. 9: the
    mixture-of-Gaussians prior they compare with); Dilokthanakul et al. 2016
    (Gaussian-mixture VAE); Hoffman & Johnson 2016 (the aggregate posterior).
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256),
                 prior_components: int = 10):
        super().__init__(data_dim, latent_dim, hidden_dims)
        self.prior_components = checks.positive_int("prior_components", prior_components)
        init = torch.Generator().manual_seed(0)
        self.prior_means = nn.Parameter(torch.randn(self.prior_components, self.latent_dim, generator=init))
        self.prior_logvars = nn.Parameter(torch.zeros(self.prior_components, self.latent_dim))
        self.prior_logits = nn.Parameter(torch.zeros(self.prior_components))

    def prior_mixture(self) -> tuple[Tensor, Tensor, Tensor]:
        """The prior's ``(means, logvars, log_weights)``: (K, Z), (K, Z), (K,)."""
        return self.prior_means, self.prior_logvars, torch.log_softmax(self.prior_logits, -1)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """``log sum_k pi_k N(z; m_k, diag(exp(s_k)))``: (..., Z) -> (...), nats."""
        means, logvars, log_weights = self.prior_mixture()
        # (..., 1, Z) against (K, Z): one Gaussian log-density per component, (..., K)
        per_component = diag_gaussian_log_prob(z.unsqueeze(-2), means, logvars)
        return torch.logsumexp(per_component + log_weights, dim=-1)

    def elbo_terms(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``(reconstruction, kl)``, each (B,) in nats; ``kl`` is the one-sample estimate
        ``log q(z | x) - log p(z)`` at the ``z`` of the reconstruction (no closed form for a mixture)."""
        x = self._x(x)
        mu, logvar = self.encode(x)
        z = reparameterize(mu, logvar, generator)
        kl = diag_gaussian_log_prob(z, mu, logvar) - self.prior_log_prob(z)
        return self._log_px_given_z(z, x), kl

    @torch.no_grad()
    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` codes from the mixture: a component ``k ~ pi``, then ``z ~ N(m_k, diag(exp(s_k)))``: (n, Z)."""
        n = checks.positive_int("n", n)
        means, logvars, log_weights = self.prior_mixture()
        device = means.device
        # the draws are made where the generator lives (a CPU generator for a model on a GPU is fine)
        where = generator.device if generator is not None else device
        k = torch.multinomial(log_weights.float().exp().to(where), n,
                              replacement=True, generator=generator)  # (n,) component of each code
        eps = torch.randn(n, self.latent_dim, generator=generator, device=where, dtype=self._dtype())
        k, eps = k.to(device), eps.to(device)
        return means[k] + (0.5 * logvars[k]).exp() * eps


class VampPriorVAE(MixturePriorVAE):
    """A :class:`VAE` whose prior is the VampPrior: the encoder's posteriors at K learned pseudo-inputs.

    ``p(z) = (1/K) sum_k q(z | u_k)``, where the pseudo-inputs ``u_k = sigmoid(pseudo_logits_k)``
    (K, D) are images with pixels in (0, 1), learned with the rest by the ELBO. The
    optimal prior for a given encoder is the aggregate posteriors ``(1/N) sum_n q(z | x_n)``;
    the VampPrior approximates it with K "virtual digits", so the prior puts its mass where
    the encoder puts the codes of real digits, each component is as narrow as a real
    digit's posterior, and the codes drawn from it decode to digits rather than to blends.
    As in :class:`MixturePriorVAE`, the KL is the one-sample estimate ``log q(z | x) - log p(z)``.

    Args:
        data_dim: D (784 for MNIST).
        latent_dim: Z.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).
        prior_components: K >= 1 pseudo-inputs; their logits start at -1 + 0.1 N(0, 1) (a fixed
            seed), i.e. grey images of mean intensity about 0.27.

    Shapes: ``pseudo_logits`` is (K, D); ``z`` is (..., Z); :meth:`prior_log_prob` returns (...), nats.

    Raises:
        ValueError: non-positive sizes or ``prior_components`` (named), as :class:`VAE`.

    References: Tomczak & Welling 2018, "VAE with a VampPrior", AISTATS, §3 (eqs. 8 and 10).
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256),
                 prior_components: int = 100):
        super().__init__(data_dim, latent_dim, hidden_dims, prior_components)
        del self.prior_means, self.prior_logvars, self.prior_logits  # the components come from the encoder
        init = torch.Generator().manual_seed(0)
        self.pseudo_logits = nn.Parameter(-1.0 + 0.1 * torch.randn(self.prior_components, self.data_dim, generator=init))

    def prior_mixture(self) -> tuple[Tensor, Tensor, Tensor]:
        """``q(z | u_k)``'s ``(means, logvars)``, (K, Z) each, and uniform ``log_weights`` (K,)."""
        pseudo_inputs = torch.sigmoid(self.pseudo_logits)  # (K, D) images with pixels in (0, 1)
        means, logvars = self.encoder(pseudo_inputs.to(self._dtype())).chunk(2, dim=-1)
        log_weights = torch.full((self.prior_components,), -math.log(self.prior_components),
                                 device=means.device, dtype=means.dtype)
        return means, logvars, log_weights


class ConditionalVAE(VAE):
    """A conditional VAE: the encoder and the decoder both see the class label y.

    ``q(z | x, y)`` and ``p(x | z, y)`` take the one-hot label beside their input
    (``[x, onehot(y)]`` and ``[z, onehot(y)]``); the prior stays ``N(0, I)``. The ELBO
    bounds ``log p(x | y)``. Sampling with a chosen ``y`` draws that class, and the code
    ``z`` then carries what the label does not: the style of the digit (slant, width).

    Args:
        data_dim: D (784 for MNIST).
        latent_dim: Z.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).
        num_classes: C >= 2.

    Shapes: ``x`` (B, D) binary; ``y`` (B,) integer labels in 0..C-1; ``z`` (B, Z) or (k, B, Z).
    Every method of :class:`VAE` that reads ``x`` takes ``y`` as a required keyword here.

    Raises:
        ValueError: non-positive sizes, ``num_classes`` < 2, a missing or bad ``y`` (named).

    References: Sohn, Lee & Yan 2015, "Learning Structured Output Representation using Deep
    Conditional Generative Models", NeurIPS, §4 (the CVAE); Kingma et al. 2014, "Semi-supervised
    Learning with Deep Generative Models", NeurIPS, §3.1 (model M2 with the label observed).
    """

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256),
                 num_classes: int = 10):
        super().__init__(data_dim, latent_dim, hidden_dims)
        self.num_classes = checks.positive_int("num_classes", num_classes)
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        c = self.num_classes
        self.encoder = mlp((self.data_dim + c, *self.hidden_dims, 2 * self.latent_dim), nn.ReLU)
        self.decoder = mlp((self.latent_dim + c, *self.hidden_dims[::-1], self.data_dim), nn.ReLU)

    def _onehot(self, y, batch: int) -> Tensor:
        y = checks.class_labels("y", y, batch, self.num_classes, model="a ConditionalVAE")
        return F.one_hot(y, self.num_classes).to(self._dtype())

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of ``q(z | x, y)``, each (B, Z)."""
        x = self._x(x)
        mu, logvar = self.encoder(torch.cat([x, self._onehot(y, x.shape[0]).to(x.device)], -1)).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Logits of ``p(x | z, y)``: z (..., B, Z) and y (B,) -> (..., B, D)."""
        z = checks.tensor("z", z)
        if z.ndim < 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (..., B, {self.latent_dim}), got {tuple(z.shape)}")
        z = z.to(self._dtype())
        onehot = self._onehot(y, z.shape[-2]).to(z.device).expand(*z.shape[:-1], self.num_classes)  # (..., B, C)
        return self.decoder(torch.cat([z, onehot], -1))

    # elbo_terms, elbo, log_weights and iwae_bound are VAE's: they pass ``y=`` on to encode and
    # _log_px_given_z, so the bounds here are on log p(x | y).

    def log_px_given_z(self, z: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        """``log p(x | z, y)`` in nats: (..., B)."""
        return self._log_px_given_z(z, self._x(x), y)

    def _log_px_given_z(self, z: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        return _bernoulli_log_prob(self.decode(z, y), x)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, y: Tensor | None = None) -> Tensor:
        """``n`` binary images of the classes ``y`` (n,): (n, D) in {0, 1}."""
        n = checks.positive_int("n", n)
        z = self.sample_prior(n, generator)
        probs = torch.sigmoid(self.decode(z, None if y is None else y.to(z.device)))
        return (torch.rand(probs.shape, generator=generator, device=probs.device, dtype=probs.dtype) < probs).to(probs.dtype)


class GreyVAE(VAE):
    """A :class:`VAE` for 8-bit grey-level pixels, with a choice of decoder likelihood.

    The data are the pixels divided by 255, ``x`` in {0, 1/255, ..., 1}, not binarized.
    ``likelihood`` chooses ``p(x | z)``:

    - ``"gaussian"``: ``N(x; mu(z), sigma^2 I)``, one ``sigma`` for every pixel, learned
      (``sigma=None``) or fixed (``sigma=0.1``). With ``sigma`` fixed,
      ``-log p(x | z) = ||x - mu||^2 / (2 sigma^2) + D log(sigma sqrt(2 pi))``: the squared
      error ("MSE") loss, and ``sigma`` sets how much it weighs against the KL term
      (the KL's weight relative to the squared error is ``2 sigma^2``). A density on
      continuous values: its "log-likelihood" is not a probability of the discrete pixels.
    - ``"logistic"``: :func:`discretized_logistic_log_prob`, a location and a log-scale per
      pixel: a proper distribution over the 256 grey levels, whose edge bins can hold most
      of the mass (a background pixel that is exactly 0).

    ``decode(z)`` returns the decoder's raw outputs, (..., D) for "gaussian" (the means) and
    (..., 2D) for "logistic" (locations, then log-scales); :meth:`mean_image` gives the image
    a reader looks at (the mean, clipped to [0, 1]) and :meth:`sample_pixels` a draw from
    ``p(x | z)``, which includes the pixel noise that the mean hides.

    Args:
        data_dim, latent_dim, hidden_dims: as :class:`VAE`.
        likelihood: ``"gaussian"`` or ``"logistic"``.
        sigma: the Gaussian's fixed standard deviation (> 0), or None to learn it; only for
            ``"gaussian"``.

    Shapes: ``x`` (B, D) grey levels; ``z`` (B, Z) or (k, B, Z).

    Raises:
        ValueError: non-positive sizes, an unknown ``likelihood``, a bad ``sigma``, or ``x``
            that is not grey levels k / 255 in [0, 1] (named).

    References: Kingma & Welling 2014, Appendix C.2 (Gaussian MLP decoder); Salimans et al.
    2017 (PixelCNN++), §2.1; Kingma et al. 2016 (IAF), §5.2; Rybkin et al. 2021
    ("Simple and Effective VAE Training with Calibrated Decoders", a learned sigma).
    """

    binary_data = False       # train_vae and evaluate_bounds use the grey levels, not a binarization

    def __init__(self, data_dim: int = 784, latent_dim: int = 32, hidden_dims: Sequence[int] = (512, 256),
                 likelihood: str = "logistic", sigma: float | None = None):
        super().__init__(data_dim, latent_dim, hidden_dims)
        self.likelihood = checks.one_of("likelihood", likelihood, ("gaussian", "logistic"))
        if sigma is not None and self.likelihood != "gaussian":
            raise ValueError(f"sigma is for likelihood='gaussian', got sigma={sigma!r} with likelihood={likelihood!r}")
        self.sigma = None if sigma is None else checks.positive_float("sigma", sigma)
        out = self.data_dim if self.likelihood == "gaussian" else 2 * self.data_dim
        self.decoder = mlp((self.latent_dim, *self.hidden_dims[::-1], out), nn.ReLU)
        if self.likelihood == "gaussian" and self.sigma is None:
            self.log_sigma = nn.Parameter(torch.tensor(math.log(0.3)))   # learned, shared by every pixel

    def _x(self, x, name: str = "x") -> Tensor:
        return _check_grey_batch(name, x, self.data_dim, self._dtype())

    def _params(self, z: Tensor) -> tuple[Tensor, Tensor]:
        # (location, log-scale) of every pixel's distribution: (..., D) each
        out = self.decode(z)
        if self.likelihood == "logistic":
            loc, log_scale = out.chunk(2, dim=-1)
            return loc, log_scale.clamp_min(-7.0)       # PixelCNN++'s floor: a scale of 1e-3 at least
        log_sigma = self.log_sigma if self.sigma is None else out.new_tensor(math.log(self.sigma))
        return out, log_sigma.expand_as(out)

    def _log_px_given_z(self, z: Tensor, x: Tensor) -> Tensor:
        loc, log_scale = self._params(z)
        if self.likelihood == "logistic":
            return _discretized_logistic_log_prob(x, loc, log_scale)
        return diag_gaussian_log_prob(x, loc, 2 * log_scale)

    @torch.no_grad()
    def mean_image(self, z: Tensor) -> Tensor:
        """The decoder's mean image (its location), clipped to [0, 1]: z (..., Z) -> (..., D)."""
        return self._params(z)[0].clamp(0, 1)

    @torch.no_grad()
    def sample_pixels(self, z: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A draw ``x ~ p(x | z)``: z (..., Z) -> (..., D).

        Gaussian: ``mu + sigma * eps``, continuous values not clipped (they leave [0, 1]).
        Logistic: ``loc + s * logit(u)`` rounded to the nearest grey level and clipped to
        [0, 1], which is exactly a draw from the discretized distribution.
        """
        loc, log_scale = self._params(z)
        if self.likelihood == "gaussian":
            eps = torch.randn(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
            return loc + log_scale.exp() * eps
        u = torch.rand(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype).clamp(1e-6, 1 - 1e-6)
        x = loc + log_scale.exp() * (torch.log(u) - torch.log1p(-u))
        return (x * 255).round().clamp(0, 255) / 255

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` images from ``z ~ p(z)``, ``x ~ p(x | z)``: (n, D) (see :meth:`sample_pixels`)."""
        return self.sample_pixels(self.sample_prior(checks.positive_int("n", n), generator), generator)
