"""Profiles, device resolution and seeding shared by every chapter.

A *profile* decides how big an experiment is:

``"small"``
    CPU, the embedded 4,000/1,000 MNIST split, every chapter executes in at
    most about 90 s on 2 cores. The rendered book is always built with it.
``"full"``
    GPU, the full 60,000/10,000 MNIST, paper-scale training.

The environment variable ``COURSE_PROFILE`` wins; otherwise the profile is
``"full"`` when CUDA is available and ``"small"`` if not.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import numpy as np
import torch

PROFILES = ("small", "full")


def profile() -> str:
    """Return the active profile, ``"small"`` or ``"full"``.

    ``COURSE_PROFILE`` (case-insensitive) takes precedence; without it the
    answer is ``"full"`` when ``torch.cuda.is_available()`` and ``"small"``
    otherwise.

    Raises:
        ValueError: if ``COURSE_PROFILE`` is set to anything other than
            ``small`` or ``full``.
    """
    env = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if env:
        if env not in PROFILES:
            raise ValueError(
                f"COURSE_PROFILE must be one of {PROFILES}, got {os.environ['COURSE_PROFILE']!r}"
            )
        return env
    return "full" if torch.cuda.is_available() else "small"


def get_device() -> torch.device:
    """Return the best available device: ``cuda``, then ``mps``, then ``cpu``.

    Call it once per notebook or script; library code takes the device from
    its inputs (``x.device``, ``next(model.parameters()).device``) instead of
    calling this again.
    """
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy and PyTorch (CPU and every CUDA device).

    Args:
        seed: a non-negative integer.

    Raises:
        ValueError: if ``seed`` is not a non-negative ``int``.

    Bit-for-bit reproducibility across machines is not promised (BLAS and
    cuDNN kernels differ); runs on the same machine repeat.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def by_profile(table: dict, name: str | None = None):
    """Pick the entry of ``table`` for the active profile (the chapters' config cell).

    Args:
        table: a mapping with the keys ``"small"`` and ``"full"``.
        name: the profile to use; defaults to :func:`profile`.

    Raises:
        ValueError: if ``name`` is not a profile (``"small"`` or ``"full"``), or
            ``table`` lacks the profile's key.
        TypeError: if ``table`` is not a mapping.
    """
    if not isinstance(table, Mapping):
        raise TypeError(f"table must be a dict keyed by profile ('small', 'full'), got {type(table).__name__}")
    name = profile() if name is None else name
    if not isinstance(name, str) or name not in PROFILES:
        raise ValueError(f"name must be one of the profiles {PROFILES}, got {name!r}")
    if name not in table:
        raise ValueError(f"table must have a {name!r} entry, got keys {sorted(table)}")
    return table[name]


def set_num_threads(num_threads: int | None = None) -> int:
    """Pick how many CPU threads torch (and NumPy's BLAS) use, and return torch's number in force.

    This is the one documented way to set it in ``course_lib``. On a small
    machine that other processes share (a 2-core CI runner, a laptop running
    the book build), torch's default of one thread per core can make a run
    tens of times slower through oversubscription; benchmarks call this and
    print the result.

    Args:
        num_threads: the count; ``None`` reads ``COURSE_NUM_THREADS`` and, when
            that is unset, uses **one thread in the small profile** (the CPU
            profile: the book's small models gain little from more threads, and a
            busy 2-core machine loses a lot) and keeps torch's current setting in
            the full profile (see :func:`profile`).

    Raises:
        ValueError: for a count < 1 or a ``COURSE_NUM_THREADS`` that is not a positive int.
    """
    if num_threads is None:
        env = os.environ.get("COURSE_NUM_THREADS", "").strip()
        if not env:
            if profile() != "small":
                return torch.get_num_threads()
            env = "1"
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"COURSE_NUM_THREADS must be a positive int, got {env!r}")
        num_threads = int(env)
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"num_threads must be an int >= 1, got {num_threads!r}")
    torch.set_num_threads(int(num_threads))
    # NumPy's BLAS (and any other native pool already loaded: scikit-learn's OpenMP) gets the
    # same count: a Gaussian-mixture fit on a busy 2-core machine was 8x slower with its default.
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    else:
        threadpool_limits(limits=int(num_threads))
    return torch.get_num_threads()
