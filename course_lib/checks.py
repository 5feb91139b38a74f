"""Shared argument checkers: every public function validates its inputs at the top with these.

Each checker raises ``ValueError`` (a value out of range, a wrong shape) or
``TypeError`` (a wrong kind of object: a str where a number belongs, a numpy
array where a tensor is required) whose message starts with the argument's
name and says what was expected, so a bad call never ends in a deep stack
trace or a silent wrong answer. Checkers return the value converted to the
form the caller should use (``int``, ``float``, ``torch.device``, a tensor).

Configs call them from ``__post_init__``::

    @dataclass(frozen=True)
    class MyConfig:
        epochs: int = 10
        lr: float = 1e-3

        def __post_init__(self):
            checks.positive_int("epochs", self.epochs)
            checks.positive_float("lr", self.lr)

Nothing here imports from the rest of ``course_lib``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch

__all__ = [
    "ArgumentTypeError",
    "positive_int",
    "nonnegative_int",
    "positive_float",
    "nonnegative_float",
    "finite_float",
    "unit_interval",
    "temperature",
    "int_sizes",
    "fractions",
    "device",
    "one_of",
    "tensor",
    "float_batch",
    "finite",
    "binary",
    "class_labels",
]


class ArgumentTypeError(TypeError, ValueError):
    """A wrong kind of argument (a str where a number belongs, a numpy array where a tensor is needed).

    It is both a ``TypeError`` and a ``ValueError``, so callers that catch
    either (as code written before these checkers did) still catch it.
    """


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def positive_int(name: str, value, minimum: int = 1) -> int:
    """``value`` as an ``int`` ``>= minimum``; bools, floats such as 2.5 and strings are refused.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not an integer (``True``, ``2.5``, ``"3"``).
        ValueError: an integer below ``minimum``.
    """
    if _is_bool(value) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ArgumentTypeError(f"{name} must be an int >= {minimum}, got {value!r} ({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def nonnegative_int(name: str, value) -> int:
    """``value`` as an ``int >= 0`` (a seed, an index). Errors as :func:`positive_int`."""
    return positive_int(name, value, minimum=0)


def _real(name: str, value, what: str) -> float:
    if _is_bool(value) or not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be {what}, got nan")
    return value


def positive_float(name: str, value, *, finite: bool = True) -> float:
    """``value`` as a ``float > 0`` (finite unless ``finite=False``).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not a real number (a str, a bool, None).
        ValueError: ``<= 0``, NaN, or infinite when ``finite``.
    """
    what = "a positive finite float" if finite else "a positive float"
    value = _real(name, value, what)
    if value <= 0 or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return value


def nonnegative_float(name: str, value) -> float:
    """``value`` as a finite ``float >= 0`` (a weight decay, an entropy coefficient)."""
    value = _real(name, value, "a finite float >= 0")
    if value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite float >= 0, got {value!r}")
    return value


def finite_float(name: str, value) -> float:
    """``value`` as a finite ``float`` of any sign (a schedule's endpoint, a target return).

    Python and NumPy numbers are accepted alike (``np.float32(1.0)``, ``np.int64(3)``).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not a real number (a str, a bool, None).
        ValueError: NaN or infinite.
    """
    value = _real(name, value, "a finite float")
    if math.isinf(value):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    return value


def unit_interval(name: str, value, *, closed_right: bool = True) -> float:
    """``value`` as a float in ``[0, 1]`` (or ``[0, 1)`` when ``closed_right=False``): a discount, a λ, an ε.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not a real number.
        ValueError: outside the interval, or NaN.
    """
    interval = "[0, 1]" if closed_right else "[0, 1)"
    value = _real(name, value, f"a float in {interval}")
    if not (0.0 <= value <= 1.0) or (not closed_right and value == 1.0):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return value


def temperature(value, name: str = "temperature") -> float:
    """A softmax temperature: positive and finite; a hint names ``greedy=True`` for the limit 0."""
    try:
        return positive_float(name, value)
    except ArgumentTypeError:  # a str or bool: keep the TypeError
        raise
    except ValueError:
        raise ValueError(
            f"{name} must be a positive finite float (use greedy=True for the "
            f"temperature -> 0 limit), got {value!r}"
        ) from None


def int_sizes(name: str, value, *, min_len: int = 0) -> tuple[int, ...]:
    """A sequence of positive ints (hidden layer widths) as a tuple, with at least ``min_len`` entries."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ArgumentTypeError(f"{name} must be a sequence of positive ints, got {value!r}")
    sizes = tuple(value)
    for h in sizes:
        if _is_bool(h) or not isinstance(h, (numbers.Integral, np.integer)) or h < 1:
            raise ValueError(f"{name} must be a sequence of positive ints, got {value!r}")
    if len(sizes) < min_len:
        raise ValueError(f"{name} must have at least {min_len} entries, got {value!r}")
    return tuple(int(h) for h in sizes)


def fractions(name: str, value) -> tuple[float, ...]:
    """A strictly increasing sequence of floats in ``[0, 1]`` (checkpoint fractions) as a tuple."""
    try:
        fr = tuple(float(f) for f in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of floats in [0, 1], got {value!r}") from None
    if any(not 0.0 <= f <= 1.0 for f in fr):
        raise ValueError(f"{name} must contain floats in [0, 1], got {value!r}")
    if list(fr) != sorted(set(fr)):
        raise ValueError(f"{name} must be strictly increasing, got {value!r}")
    return fr


def device(name: str, value) -> torch.device:
    """A torch device that exists here: ``"cpu"``, ``"cuda"`` (only with CUDA), ``"mps"`` (only with MPS).

    Raises:
        ValueError: an unknown device string, or an accelerator that is not available.
    """
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must name a torch device such as 'cpu' or 'cuda', got {value!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name} is {value!r} but CUDA is not available on this machine; use 'cpu'")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"{name} is {value!r} but MPS is not available on this machine; use 'cpu'")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be 'cpu', 'cuda' or 'mps', got {value!r}")
    return dev


def one_of(name: str, value, allowed) -> str:
    """``value`` if it is one of ``allowed`` (strings), else ValueError listing them."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def tensor(name: str, value) -> torch.Tensor:
    """Require a ``torch.Tensor`` (a numpy array or list is refused with a hint to convert it)."""
    if not isinstance(value, torch.Tensor):
        hint = " (convert it with torch.as_tensor)" if isinstance(value, (np.ndarray, list, tuple)) else ""
        raise ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}{hint}")
    return value


def float_batch(name: str, value, dim: int | None = None, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A ``(B, D)`` floating-point tensor; B = 0 is allowed.

    Args:
        name: the argument's name, for the message.
        value: the tensor.
        dim: the required D, or None for any.
        dtype: convert to this floating dtype (e.g. the model's) when given;
            integer or bool input is converted too, since that is the obvious intent.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not a tensor.
        ValueError: not 2-D, or the wrong D.
    """
    value = tensor(name, value)
    if value.ndim != 2 or (dim is not None and value.shape[1] != dim):
        want = f"(B, {dim})" if dim is not None else "(B, D)"
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        value = value.to(dtype)
    elif not value.is_floating_point():
        value = value.float()
    return value


def finite(name: str, value: torch.Tensor) -> torch.Tensor:
    """Require every entry of a tensor to be finite; the message counts the NaN and inf entries."""
    if value.is_floating_point() or value.is_complex():
        bad = ~torch.isfinite(value)
        if bool(bad.any()):
            n_nan = int(torch.isnan(value).sum())
            raise ValueError(
                f"{name} contains {n_nan} NaN and {int(bad.sum()) - n_nan} infinite entries "
                f"(of {value.numel()}); clean the data first"
            )
    return value


def binary(name: str, value: torch.Tensor) -> torch.Tensor:
    """Require every entry to be 0 or 1 (binarized images, done flags)."""
    if value.dtype == torch.bool:
        return value
    bad = (value != 0) & (value != 1)
    if bool(bad.any()):
        example = value[bad].flatten()[0].item()
        raise ValueError(f"{name} must contain only 0 and 1, got {int(bad.sum())} other entries (e.g. {example!r})")
    return value


def class_labels(name: str, value, batch: int, num_classes: int, *, model: str = "this model") -> torch.Tensor:
    """Class labels of a class-conditional model: an integer tensor of shape ``(batch,)`` in ``0..num_classes-1``.

    Args:
        name: the argument's name, for the message.
        value: the labels (any integer dtype: uint8 labels are common).
        batch: the required length ``B`` (``B = 0`` is allowed).
        num_classes: ``C``.
        model: how the message names the model when ``value`` is None.

    Returns:
        The labels as int64 (``nn.Embedding`` and ``F.one_hot`` take int64 indices), ``(B,)``.

    Raises:
        ValueError: ``value`` is None, has another shape, is a float, complex or bool tensor,
            or holds a label outside ``0..C-1``.
        ArgumentTypeError: not a tensor.
    """
    if value is None:
        raise ValueError(f"{name} must be given: {model} is conditioned on {num_classes} classes")
    value = tensor(name, value)
    if value.shape != (batch,) or value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of shape ({batch},), got {tuple(value.shape)} {value.dtype}")
    if batch and (int(value.min()) < 0 or int(value.max()) >= num_classes):
        raise ValueError(f"{name} must hold labels in 0..{num_classes - 1}, got range [{int(value.min())}, {int(value.max())}]")
    return value.long()
