"""Preprocessing of MNIST pixels (torch): dequantization, rescaling, binarization, bits/dim.

Part of :mod:`course_lib.data`, which re-exports every name. :func:`dequantize`
(uniform dequantization, NICE §5.1), :func:`to_unit_interval`, :func:`binarize`
and :func:`bits_per_dim` take and return torch tensors (NumPy arrays are
accepted as input).

Units, once for the whole module: pixels are integers 0..255; a dequantized
image is a point of [0, 1)^D with D = 784; log-likelihoods are in nats unless
a name says bits. A continuous density p on [0, 1]^D evaluated at x = (k + u)/256
gives, by Jensen's inequality,

    log P(k) >= E_u[log p((k + u)/256)] - D log 256,

so ``-(log p - D log 256) / (D log 2)`` is an upper bound, in bits per
dimension, on the discrete model's negative log-likelihood of the 8-bit image
(Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative
models", §3.1; Dinh, Krueger & Bengio 2014, "NICE", §5.1). That is
:func:`bits_per_dim`.

References: L. Dinh, D. Krueger, Y. Bengio, "NICE: Non-linear Independent
Components Estimation", arXiv:1410.8516, §5.1; R. Salakhutdinov, I. Murray,
"On the quantitative analysis of deep belief networks", ICML 2008, §5.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course_lib import checks

__all__ = ["dequantize", "to_unit_interval", "binarize", "bits_per_dim"]


def _as_images(images, name: str = "images") -> torch.Tensor:
    """``images`` as a tensor: NumPy arrays and nested lists are converted; anything else is refused."""
    if isinstance(images, torch.Tensor):
        t = images
    elif isinstance(images, (np.ndarray, list, tuple, np.generic)):
        arr = np.asarray(images)
        if arr.dtype.kind == "u" and arr.dtype != np.uint8:  # torch has little support for uint16/32/64
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "uifb":
            raise checks.ArgumentTypeError(f"{name} must hold numbers, got a NumPy array of dtype {arr.dtype}")
        t = torch.as_tensor(arr)
    else:
        raise checks.ArgumentTypeError(f"{name} must be a tensor or NumPy array of pixels, got {type(images).__name__}")
    if t.dtype in (torch.uint16, torch.uint32, torch.uint64):
        t = t.to(torch.int64)
    return t


def _as_pixel_tensor(images, name: str = "images") -> torch.Tensor:
    t = _as_images(images, name)
    if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
        raise ValueError(f"{name} must hold integer pixels 0..255 (uint8), got dtype {t.dtype}")
    if t.dtype != torch.uint8 and t.numel() and (int(t.min()) < 0 or int(t.max()) > 255):
        raise ValueError(f"{name} must hold pixels in 0..255, got range [{int(t.min())}, {int(t.max())}]")
    return t


def _check_generator(generator) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def dequantize(images, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform dequantization onto [0, 1): ``x = (pixel + u) / 256``, ``u ~ U[0, 1)`` i.i.d.

    As in NICE (Dinh, Krueger & Bengio 2014, arXiv:1410.8516, §5.1: "we add a
    uniform noise of 1/256 to the data and rescale it to be in [0, 1]^D after
    dequantization"). Each pixel value k becomes a uniform point of its own bin
    [k/256, (k+1)/256); the result is guaranteed to stay in that bin, so
    ``floor(256 * x) == pixel`` exactly (float32 rounding that would land on
    the upper edge is pulled back by one ulp).

    Units: a model fitted to these x is a density on [0, 1]^D; its
    log-likelihoods are in nats of that continuous density. To bound the
    discrete log-likelihood of the 8-bit image, subtract D·log 256:
    ``log P(pixels) >= E_u[log p(x)] - D log 256``; in bits per dimension,
    ``-(log p(x) - D log 256) / (D log 2)`` (:func:`bits_per_dim`).

    Args:
        images: integer pixels 0..255, any shape (e.g. (N, 28, 28) or
            (N, 784)); a uint8 tensor or NumPy array (other integer dtypes
            are accepted when in range).
        generator: the :class:`torch.Generator` for the noise (on the
            device of ``images``); the global one if ``None``.

    Returns:
        float32 tensor of the same shape and device, values in [0, 1).

    Raises:
        ValueError: floating-point or boolean input (already rescaled data
            must not be dequantized twice), or integers outside 0..255 (other
            integer dtypes, uint16 included, are accepted when in range).
        ArgumentTypeError (a TypeError and a ValueError): images that are not
            a tensor or array, a ``generator`` that is not a torch.Generator.
    """
    t = _as_pixel_tensor(images)
    _check_generator(generator)
    k = t.to(torch.float32)
    u = torch.rand(t.shape, generator=generator, device=t.device, dtype=torch.float32)
    x = (k + u) / 256.0
    upper = torch.nextafter((k + 1.0) / 256.0, torch.zeros((), device=t.device))
    return torch.minimum(x, upper)


def to_unit_interval(images) -> torch.Tensor:
    """Rescale pixels to [0, 1] without noise: ``pixel / 255`` (for plotting, not for likelihoods).

    Args:
        images: integer pixels 0..255, any shape (tensor or NumPy array).

    Returns:
        float32 tensor, same shape and device; 0 stays 0 and 255 becomes 1.

    Raises:
        ValueError: floating-point or boolean input, or integers outside 0..255.
    """
    return _as_pixel_tensor(images).to(torch.float32) / 255.0


def binarize(images, threshold: float = 0.5, stochastic: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binarize images to {0, 1}.

    Intensities are ``p = pixel / 255`` for integer input, or the values
    themselves for floating-point input in [0, 1].

    * ``stochastic=False``: ``1`` where ``p > threshold`` (strictly), else ``0``.
    * ``stochastic=True``: each pixel is an independent Bernoulli(p) draw
      (``threshold`` is ignored), the dynamic binarization of Salakhutdinov &
      Murray 2008 ("On the quantitative analysis of deep belief networks",
      §5); draw anew every epoch.

    Args:
        images: any shape; uint8 (or other integer) pixels 0..255, or floats in [0, 1].
        threshold: in [0, 1].
        stochastic: sample instead of thresholding.
        generator: the :class:`torch.Generator` for the stochastic draws.

    Returns:
        float32 tensor, same shape and device, values exactly 0.0 or 1.0.

    Raises:
        ValueError: ``threshold`` outside [0, 1] or NaN; floats outside [0, 1],
            NaN or inf; integers outside 0..255; boolean input.
        ArgumentTypeError (a TypeError and a ValueError): a ``threshold`` that is
            not a number (``"0.5"``), a non-bool ``stochastic``, images that are
            not a tensor or array.
    """
    threshold = checks.unit_interval("threshold", threshold)
    if not isinstance(stochastic, (bool, np.bool_)):
        raise checks.ArgumentTypeError(f"stochastic must be a bool, got {stochastic!r}")
    _check_generator(generator)
    t = _as_images(images)
    if t.is_floating_point():
        checks.finite("images", t)  # NaN would silently become 0
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise ValueError(
                f"images: floating-point input must lie in [0, 1], got range [{float(t.min())}, {float(t.max())}]"
            )
        p = t.to(torch.float32)
    else:
        p = _as_pixel_tensor(t).to(torch.float32) / 255.0
    if stochastic:
        u = torch.rand(p.shape, generator=generator, device=p.device, dtype=torch.float32)
        return (u < p).to(torch.float32)
    return (p > threshold).to(torch.float32)


def _binarize_seeded(images: torch.Tensor, seed: int) -> torch.Tensor:
    """One fixed stochastic binarization of ``images``: the same binary images for the same ``seed``.

    The test (and validation) digits of Chapters 2 and 3 both come from this
    one function (``autoregressive.binarize_fixed``, ``vae.binarize_fixed``),
    so with the same seed the two chapters' negative log-likelihoods are
    measured on the very same binary images: :func:`binarize` with
    ``stochastic=True`` and a fresh :class:`torch.Generator` on the device of
    ``images`` seeded with ``seed`` (each pixel Bernoulli(pixel/255),
    Salakhutdinov & Murray 2008, §5).

    Args:
        images: a tensor of integer pixels 0..255, any shape (the callers check their own shapes).
        seed: a non-negative int.

    Returns:
        float32 tensor, same shape and device, values exactly 0.0 or 1.0.

    Raises:
        ValueError: a negative or non-int ``seed`` (named), or as :func:`binarize`.
    """
    seed = checks.nonnegative_int("seed", seed)
    generator = torch.Generator(device=images.device).manual_seed(seed)
    return binarize(images, stochastic=True, generator=generator)


def bits_per_dim(log_prob_nats, dim: int, *, scale: float = 256):
    """Convert a log-likelihood in nats of data rescaled to [0, 1] into bits/dim of the 8-bit data.

    ``bits_per_dim = -(log_prob_nats - dim * log(scale)) / (dim * log 2)``.

    Rescaling the integers 0..255 by 1/``scale`` multiplies densities by
    ``scale**dim``, hence the ``dim * log(scale)`` correction; for dequantized
    data (:func:`dequantize`) the result is an upper bound on the discrete
    model's negative log-likelihood in bits per dimension (Theis et al. 2016,
    §3.1; the unit of Dinh et al. 2017, "Density estimation using Real NVP",
    §5, Table 1). Lower is better.

    Args:
        log_prob_nats: log-likelihood per example, in nats, of data in
            [0, 1]^dim (a float, NumPy array or tensor; a mean over examples
            gives the mean bits/dim).
        dim: number of dimensions D per example (784 for MNIST), a positive int.
        scale: number of quantization levels mapped onto [0, 1] (256 for 8-bit
            data dequantized as in :func:`dequantize`); must be > 0.

    Returns:
        Same type as ``log_prob_nats``: bits per dimension.

    Raises:
        ValueError: ``dim`` not a positive int, or ``scale`` not positive.
    """
    dim = checks.positive_int("dim", dim)
    scale = checks.positive_float("scale", scale)
    return -(log_prob_nats - dim * math.log(scale)) / (dim * math.log(2.0))
