"""Graded-exercise support: use the student's function when it works, else the reference.

A student notebook is generated from a master notebook by otter-grader; every
solution body becomes ``...``, so an unfinished exercise function returns
``None``. Later cells of a chapter still need a working function, so they call
:func:`use_or_fallback`, which tries the student's version on a probe input,
compares it with ``course_lib``'s reference implementation, and says visibly
which one the rest of the chapter uses.
"""

from __future__ import annotations

from typing import Any, Callable

import contextlib

import numpy as np
import torch

__all__ = ["use_or_fallback", "outputs_match", "reference_disabled", "ReferenceDisabled"]


def outputs_match(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when ``a`` and ``b`` agree: tensors/arrays within tolerance, tuples element-wise.

    Shapes must match exactly; ``None`` never matches anything.
    """
    if a is None or b is None:
        return False
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (
            isinstance(a, (tuple, list))
            and isinstance(b, (tuple, list))
            and len(a) == len(b)
            and all(outputs_match(x, y, atol, rtol) for x, y in zip(a, b))
        )
    try:
        ta = torch.as_tensor(np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64))
        tb = torch.as_tensor(np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64))
    except (TypeError, ValueError):
        return False
    return ta.shape == tb.shape and bool(torch.allclose(ta, tb, atol=atol, rtol=rtol))


def use_or_fallback(
    student_fn: Callable,
    reference_fn: Callable,
    probe_args: tuple,
    name: str,
    atol: float = 1e-5,
) -> Callable:
    """Return ``student_fn`` if it matches ``reference_fn`` on ``probe_args``, else ``reference_fn``.

    It prints one line either way, so the reader always knows whose code runs
    in the cells that follow.

    Args:
        student_fn: the function defined in the exercise cell.
        reference_fn: ``course_lib``'s implementation with the same signature.
        probe_args: positional arguments for one test call of both.
        name: the exercise's name, shown in the message.
        atol: absolute tolerance of the comparison.

    Returns:
        The function the rest of the chapter should call.
    """
    expected = reference_fn(*probe_args)
    try:
        got = student_fn(*probe_args)
    except Exception as err:  # a half-written exercise may raise anything
        reason = f"it raised {type(err).__name__}: {err}"
    else:
        if outputs_match(got, expected, atol=atol):
            print(f"[{name}] using your implementation: it matches course_lib's on a probe input.")
            return student_fn
        reason = "it returned None (not implemented yet)" if got is None else "its output differs from the reference"
    ref = f"{reference_fn.__module__}.{reference_fn.__qualname__}"
    print(f"\u26a0\ufe0f [{name}] not done: {reason}. The cells below use the reference implementation {ref}.")
    return reference_fn


ReferenceDisabled = NotImplementedError
"""What a disabled reference raises (a builtin, because the swapped-in code runs
with the original function's module globals)."""


def _disabled_stub(*args, **kwargs):
    # Only builtins here: this code object runs inside the disabled function's module.
    raise NotImplementedError(
        "this course_lib function is disabled while your exercise is graded: call your own implementation"
    )


@contextlib.contextmanager
def reference_disabled(*functions: Callable):
    """Make ``course_lib``'s reference implementations raise while a graded test runs.

    Used by every exercise test::

        expected = rl.reward_to_go(rewards, 0.9)          # computed first, with the reference on
        with grading.reference_disabled(rl.reward_to_go):
            got = reward_to_go(rewards, 0.9)               # the student's function

    A student function that wraps or imports the library's answer then fails,
    however it got hold of it (``from course_lib.rl import reward_to_go as f``
    included): the function object's code is swapped, not a module attribute.

    Args:
        functions: plain Python functions (not builtins, not bound methods).

    Raises:
        TypeError: for something that is not a plain function.
    """
    saved = []
    try:
        for fn in functions:
            fn = getattr(fn, "__func__", fn)
            if not hasattr(fn, "__code__") or fn.__closure__:
                raise TypeError(f"reference_disabled needs plain functions without closures, got {fn!r}")
            saved.append((fn, fn.__code__))
            fn.__code__ = _disabled_stub.__code__
        yield
    finally:
        for fn, code in reversed(saved):
            fn.__code__ = code
