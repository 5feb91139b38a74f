"""Latent-space helpers shared by the generative chapters (flows now, VAEs later)."""

from __future__ import annotations

import torch
from torch import Tensor

from course_lib import checks

__all__ = ["interpolate"]


def interpolate(z0: Tensor, z1: Tensor, steps: int, method: str = "linear") -> Tensor:
    """Points on a path from ``z0`` to ``z1``.

    ``linear``: ``(1 - t) z0 + t z1``. ``spherical`` (slerp, Shoemake 1985,
    advocated for latent spaces by White 2016, "Sampling Generative
    Networks"): interpolates along the great circle, keeping the norm
    roughly constant, which matters because most prior mass of a
    high-dimensional distribution lies on a thin shell, not near the straight
    line's midpoint.

    Args:
        z0, z1: latents of shape (D,).
        steps: number of points, at least 2; ``t`` runs over ``linspace(0, 1, steps)``.
        method: ``"linear"`` or ``"spherical"``.

    Returns:
        (steps, D) tensor; the first row is ``z0`` and the last ``z1``.

    Raises:
        ValueError: on mismatched shapes, integer or non-finite latents, ``steps < 2``
            or an unknown method.
        ArgumentTypeError (a TypeError and a ValueError): ``z0``/``z1`` not tensors,
            ``steps`` not an int (``2.5``).
    """
    for name, z in (("z0", z0), ("z1", z1)):
        checks.tensor(name, z)
        if not z.is_floating_point():  # integer latents would interpolate in integer steps
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {z.dtype}; convert it with .float()")
        checks.finite(name, z)
    if z0.ndim != 1 or z0.shape != z1.shape:
        raise ValueError(f"z0 and z1 must both have shape (D,), got {tuple(z0.shape)} and {tuple(z1.shape)}")
    if z0.dtype != z1.dtype:
        raise ValueError(f"z0 and z1 must have the same dtype, got {z0.dtype} and {z1.dtype}")
    steps = checks.positive_int("steps", steps, minimum=2)
    checks.one_of("method", method, ("linear", "spherical"))
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device)[:, None]  # (steps, 1)
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "spherical":
        raise ValueError(f"method must be 'linear' or 'spherical', got {method!r}")
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))
    if omega.abs() < 1e-4:  # nearly parallel: slerp degenerates to lerp
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
