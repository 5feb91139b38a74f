"""Graded-exercise support: feedback for tests, fallback for notebooks, references disabled while grading.

A student notebook is generated from a master notebook by otter-grader
(``grading/make_student.py``); every solution body becomes ``...``, so an
unfinished exercise function returns ``None``. Three tools make the exercises
hold (see ``grading/AUTHORING.md`` for the cell pattern):

- :func:`check_close` is what a test calls to compare the student's value with
  the expected one. Its failure message says what went wrong in words a
  student can act on: "returned None: not implemented yet", or the inputs, the
  expected value and the student's value with their shapes.
- :func:`reference_disabled` makes ``course_lib``'s own answer to an exercise
  raise while the student's function runs inside a test, so a wrapper around
  (or an import of) the library's answer fails the test.
- :func:`use_or_fallback` lets the cells after an exercise run whether or not
  the exercise is done: it tries the student's function on a probe input (on
  copies of the arguments, with a time limit) and says visibly whose code the
  rest of the chapter uses.
"""

from __future__ import annotations

import contextlib
import copy
import math
import pickle
import signal
import threading
from typing import Any, Callable, Mapping

import numpy as np
import torch

from course_lib import checks

__all__ = [
    "use_or_fallback",
    "outputs_match",
    "check_close",
    "describe",
    "reference_disabled",
    "ReferenceDisabled",
    "NOT_IMPLEMENTED",
]

NOT_IMPLEMENTED = "returned None: not implemented yet (replace the ... in the exercise cell with your code)"
"""The words every failure on a blank answer starts with."""

_LOW_PRECISION = (torch.float16, torch.bfloat16)


# ---------------------------------------------------------------- comparing values
def _as_tensor(value: Any) -> torch.Tensor | None:
    """``value`` as a CPU tensor (complex128, float64 or its integer/bool dtype), or None if not numeric."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
    elif isinstance(value, (np.ndarray, np.generic, int, float, complex, bool)) or (
        isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float, complex, bool)) for v in value)
    ):
        try:
            t = torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError, RuntimeError):
            return None
    else:
        return None
    if t.is_complex():
        return t.to(torch.complex128)
    if t.is_floating_point():
        return t.to(torch.float64)
    return t


def _tolerances(a: Any, b: Any, atol: float, rtol: float) -> tuple[float, float]:
    """Widen the tolerances to the precision of a half-precision operand (float16, bfloat16)."""
    for v in (a, b):
        if isinstance(v, torch.Tensor) and v.dtype in _LOW_PRECISION:
            eps = torch.finfo(v.dtype).eps
            rtol, atol = max(rtol, 2 * eps), max(atol, 2 * eps)
    return atol, rtol


def outputs_match(a: Any, b: Any, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """True when ``a`` and ``b`` agree: numbers, arrays and tensors within tolerance; containers element-wise.

    - Shapes must match exactly (no broadcasting), ``None`` matches nothing.
    - NaN matches NaN (in the same positions); +inf matches only +inf.
    - Complex values compare real and imaginary parts; a complex value never
      matches a real one.
    - float16 and bfloat16 values compare with tolerances widened to their
      precision (2 machine epsilons), without a numpy round trip.
    - Tuples and lists match tuples and lists of the same length, dicts
      match dicts with the same keys; anything else non-numeric compares with ``==``.
    """
    if a is None or b is None:
        return False
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        if len(a) != len(b):
            return False
        if not (_as_tensor(a) is not None and _as_tensor(b) is not None):
            return all(outputs_match(x, y, atol, rtol) for x, y in zip(a, b))
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        return (
            isinstance(a, Mapping) and isinstance(b, Mapping) and a.keys() == b.keys()
            and all(outputs_match(a[k], b[k], atol, rtol) for k in a)
        )
    ta, tb = _as_tensor(a), _as_tensor(b)
    if ta is None or tb is None:
        if ta is None and tb is None and not isinstance(a, (tuple, list)) and not isinstance(b, (tuple, list)):
            try:
                return bool(a == b)
            except Exception:  # an == that raises or is ambiguous
                return False
        return False
    if ta.shape != tb.shape or ta.is_complex() != tb.is_complex():
        return False
    atol, rtol = _tolerances(a, b, atol, rtol)
    if not ta.is_floating_point() and not ta.is_complex() and not tb.is_floating_point() and not tb.is_complex():
        return bool(torch.equal(ta.to(torch.int64), tb.to(torch.int64)))
    dtype = torch.complex128 if ta.is_complex() else torch.float64
    return bool(torch.allclose(ta.to(dtype), tb.to(dtype), atol=atol, rtol=rtol, equal_nan=True))


def describe(value: Any, max_items: int = 8) -> str:
    """A short, readable description of a value for a failure message: type, shape, dtype, a few entries.

    Example: ``tensor of shape (2, 3), dtype torch.float32: [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]``.
    Long values are cut after ``max_items`` entries per row.
    """
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        with np.printoptions(threshold=max_items, edgeitems=max(1, max_items // 2), precision=6, linewidth=100):
            try:
                body = " ".join(np.array2string(value.detach().cpu().to(torch.float64 if value.dtype in _LOW_PRECISION else value.dtype).numpy()).split())
            except (TypeError, RuntimeError):
                body = str(value)
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}: {body}"
    if isinstance(value, np.ndarray):
        with np.printoptions(threshold=max_items, edgeitems=max(1, max_items // 2), precision=6, linewidth=100):
            return f"numpy array of shape {value.shape}, dtype {value.dtype}: {np.array2string(value)}"
    if isinstance(value, tuple):
        return "tuple (" + ", ".join(describe(v, max_items) for v in value) + ")"
    if isinstance(value, torch.nn.Module):
        return f"module {type(value).__name__}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 200 else text[:200] + '...'}"


def _mismatch(got: Any, expected: Any, atol: float, rtol: float, where: str) -> str | None:
    """Why ``got`` does not match ``expected`` (one sentence), or None when they match."""
    if got is None:
        return f"{where}is None"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)):
            return f"{where}should be a tuple of {len(expected)} values, got {type(got).__name__}"
        if len(got) != len(expected):
            return f"{where}should be a tuple of {len(expected)} values, got {len(got)} values"
        for i, (g, e) in enumerate(zip(got, expected)):
            reason = _mismatch(g, e, atol, rtol, f"{where}element {i} ")
            if reason:
                return reason
        return None
    if isinstance(expected, torch.Tensor) and not isinstance(got, torch.Tensor):
        return f"{where}should be a torch.Tensor, got {type(got).__name__}"
    tg, te = _as_tensor(got), _as_tensor(expected)
    if tg is not None and te is not None and tg.shape != te.shape:
        return f"{where}has shape {tuple(tg.shape)}, expected shape {tuple(te.shape)}"
    if not outputs_match(got, expected, atol=atol, rtol=rtol):
        if tg is not None and te is not None and tg.numel() > 1 and not tg.is_complex() and not te.is_complex():
            diff = (tg.to(torch.float64) - te.to(torch.float64)).abs().nan_to_num(nan=math.inf)
            idx = tuple(int(i) for i in np.unravel_index(int(diff.argmax()), tuple(diff.shape)))
            return (f"{where}differs from the expected value: largest difference at index {idx}, "
                    f"got {tg[idx].item():.6g}, expected {te[idx].item():.6g}")
        return f"{where}differs from the expected value"
    return None


def check_close(
    name: str,
    got: Any,
    expected: Any,
    *,
    inputs: Mapping[str, Any] | None = None,
    atol: float = 1e-5,
    rtol: float = 1e-4,
    hint: str = "",
) -> None:
    """Assert that a student's value matches the expected one, with a message a student can act on.

    The message on failure:

    - a blank answer (``got is None``): "<name> returned None: not implemented yet ...";
    - otherwise: which part differs (tuple element, shape, largest difference
      and its index), then the inputs, the expected value and the student's
      value, each with its shape and dtype, then ``hint``.

    Args:
        name: the function's name as the student wrote it, e.g. ``"reward_to_go"``.
        got: the student's return value.
        expected: the reference value, computed **before** the student's call.
        inputs: the arguments of the call, by name, shown in the message.
        atol, rtol: tolerances, as in :func:`outputs_match`.
        hint: one sentence that says which mistake this comparison catches.

    Raises:
        AssertionError: when the values do not match.
        TypeError: ``name`` not a string.
    """
    if not isinstance(name, str):
        raise checks.ArgumentTypeError(f"name must be a str, got {type(name).__name__}")
    if got is None or got is Ellipsis:
        raise AssertionError(f"{name} {NOT_IMPLEMENTED}.")
    reason = _mismatch(got, expected, atol, rtol, "the result ")
    if reason is None:
        return
    lines = [f"{name}: {reason}."]
    for arg, value in (inputs or {}).items():
        lines.append(f"  input {arg} = {describe(value)}")
    lines.append(f"  expected: {describe(expected)}")
    lines.append(f"  yours:    {describe(got)}")
    if hint:
        lines.append(hint)
    raise AssertionError("\n".join(lines))


# ---------------------------------------------------------------- the fallback
class _Timeout(BaseException):
    """Raised inside a probe call that ran past its time limit (a BaseException, so ``except Exception`` in the student's code does not swallow it)."""


class _Exited(Exception):
    """The probe called ``sys.exit()`` (or raised ``SystemExit``)."""


def _can_fork() -> bool:
    """Fork a probe child: Linux (Colab included), and no CUDA context (a forked child cannot use it)."""
    import multiprocessing
    import sys

    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        return not torch.cuda.is_initialized()
    except Exception:  # an exotic torch build without the query
        return False


def _detached(value: Any, depth: int = 0) -> Any:
    """``value`` with every tensor detached (a graph cannot cross a pipe); containers rebuilt."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if depth < 20 and isinstance(value, (tuple, list)):
        items = [_detached(v, depth + 1) for v in value]
        return tuple(items) if isinstance(value, tuple) else items
    if depth < 20 and isinstance(value, dict):
        return {k: _detached(v, depth + 1) for k, v in value.items()}
    return value


def _probe_child(fn: Callable, args: tuple, conn) -> None:
    """The forked child: run ``fn(*args)`` and send ("ok", value) / ("exit", code) / ("error", type, text)."""
    import io
    import os
    import sys

    out = io.StringIO()
    sys.stdout = sys.stderr = out           # no Jupyter/zmq output machinery in a forked child
    try:
        torch.set_num_threads(1)           # a thread pool inherited through fork may hang; one thread never does
        try:
            message = ("ok", _detached(fn(*args)))
        except SystemExit as err:
            message = ("exit", repr(err.code))
        except BaseException as err:       # the student's code may raise anything, KeyboardInterrupt included
            message = ("error", type(err).__name__, str(err)[:500])
        # plain pickle: multiprocessing's own pickler would share tensors through file descriptors
        # that vanish with this process
        try:
            data = pickle.dumps((message, out.getvalue()[-2000:]))
        except Exception as err:           # an unpicklable return value
            data = pickle.dumps((("error", "TypeError", f"its return value cannot be compared ({type(err).__name__}: {err})"), ""))
        conn.send_bytes(data)
    finally:
        conn.close()
        os._exit(0)


def _call_in_child(fn: Callable, args: tuple, seconds: float):
    """``fn(*args)`` in a forked child process, killed after ``seconds``; return its (detached) value.

    A child that loops forever, swallows every exception (``while True: try: ...
    except: pass``), calls ``sys.exit()`` or starts threads is stopped for sure:
    the whole process is killed at the time limit. Output it prints is shown
    after it ends.

    Raises:
        _Timeout: it did not return within ``seconds``.
        _Exited: it called ``sys.exit()``.
        Exception: what it raised (a builtin exception type, or RuntimeError naming the type).
    """
    import builtins
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_probe_child, args=(fn, args, send), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(seconds):
            raise _Timeout()
        try:
            message, printed = pickle.loads(receive.recv_bytes())
        except EOFError:
            raise RuntimeError("the process running it ended without an answer (it crashed)") from None
    finally:
        if child.is_alive():
            child.kill()
        child.join(5)
        receive.close()
    if printed:
        print(printed, end="" if printed.endswith("\n") else "\n")
    if message[0] == "ok":
        return message[1]
    if message[0] == "exit":
        raise _Exited(f"it called sys.exit({message[1]})")
    name, text = message[1], message[2]
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception):
        try:
            raise kind(text)
        except TypeError:  # an exception class with another signature
            pass
    raise RuntimeError(f"{name}: {text}" if text else name)


def _call_with_time_limit(fn: Callable, args: tuple, seconds: float):
    """``fn(*args)``, or raise :class:`_Timeout` after ``seconds``.

    On Linux (Colab included) the call runs in a forked child process that is
    killed at the time limit (:func:`_call_in_child`). Where a process cannot
    be forked (Windows, macOS, a CUDA context already in this process), it
    runs here: in the main thread of a Unix process a SIGALRM interrupts the
    call (an ``except:`` that swallows the alarm defeats it); elsewhere the
    call runs in a daemon thread that is abandoned when it overruns.

    Raises:
        _Timeout: the call overran.
        _Exited: the call raised ``SystemExit``.
    """
    if _can_fork():
        return _call_in_child(fn, args, seconds)

    def _guarded():
        try:
            return fn(*args)
        except SystemExit as err:
            raise _Exited(f"it called sys.exit({err.code!r})") from None

    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def _on_alarm(signum, frame):
            raise _Timeout()

        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return _guarded()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box: dict[str, Any] = {}

    def _target():
        try:
            box["value"] = _guarded()
        except BaseException as err:  # handed back to the caller below
            box["error"] = err

    worker = threading.Thread(target=_target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise _Timeout()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def use_or_fallback(
    student_fn: Callable,
    reference_fn: Callable,
    probe_args: tuple,
    name: str,
    atol: float = 1e-5,
    time_limit: float = 10.0,
) -> Callable:
    """Return ``student_fn`` if it matches ``reference_fn`` on ``probe_args``, else ``reference_fn``.

    It prints one line either way, so the reader always knows whose code runs
    in the cells that follow. The message never names the library function
    (that would hand out the answer).

    - Each function gets its own deep copy of ``probe_args``: a student
      function that changes its arguments in place cannot change the
      chapter's real model or data.
    - The student's call runs in a forked child process (on Linux and Colab)
      that is killed after ``time_limit`` seconds: an endless loop counts as
      "not done", even one that swallows every exception (``except: pass``)
      or runs in threads; ``sys.exit()`` and anything it raises count as "not
      done". Where no child can be forked (Windows, macOS, a CUDA context in
      this process) the call runs here, stopped by an alarm signal or
      abandoned in a thread.

    Args:
        student_fn: the function defined in the exercise cell.
        reference_fn: ``course_lib``'s implementation with the same signature.
        probe_args: positional arguments for one test call of both.
        name: the exercise's name, shown in the message, e.g. ``"Exercise 2"``.
        atol: absolute tolerance of the comparison (:func:`outputs_match`).
        time_limit: seconds the student's call may take.

    Returns:
        The function the rest of the chapter should call.

    Raises:
        TypeError: a function that is not callable, ``probe_args`` not a tuple, ``name`` not a str.
        ValueError: a non-positive ``time_limit`` or ``atol``.
    """
    for arg, fn in (("student_fn", student_fn), ("reference_fn", reference_fn)):
        if not callable(fn):
            raise checks.ArgumentTypeError(f"{arg} must be callable, got {type(fn).__name__}")
    if not isinstance(probe_args, tuple):
        raise checks.ArgumentTypeError(f"probe_args must be a tuple of positional arguments, got {type(probe_args).__name__}")
    if not isinstance(name, str):
        raise checks.ArgumentTypeError(f"name must be a str, got {type(name).__name__}")
    checks.positive_float("time_limit", time_limit)
    checks.nonnegative_float("atol", atol)

    expected = reference_fn(*copy.deepcopy(probe_args))
    try:
        got = _call_with_time_limit(student_fn, copy.deepcopy(probe_args), time_limit)
    except _Timeout:
        reason = f"it did not return within {time_limit:g} s (an endless loop?)"
    except _Exited as err:
        reason = str(err)
    except Exception as err:  # a half-written exercise may raise anything
        reason = f"it raised {type(err).__name__}: {err}"
    else:
        if outputs_match(got, expected, atol=atol):
            print(f"[{name}] using your implementation: it matches course_lib's on a probe input.")
            return student_fn
        reason = "it returned None (not implemented yet)" if got is None else "its output differs from course_lib's on a probe input"
    print(f"\u26a0\ufe0f [{name}] not done: {reason}. The cells below use course_lib's reference implementation.")
    return reference_fn


# ---------------------------------------------------------------- references off while grading
ReferenceDisabled = NotImplementedError
"""What a disabled reference raises (a builtin, because the swapped-in code runs
with the original function's module globals)."""


def _disabled_stub(*args, **kwargs):
    # Only builtins here: this code object runs inside the disabled function's module.
    raise NotImplementedError(
        "this library function is disabled while your exercise is graded: call your own implementation"
    )


_DISPATCH_KEYS = ("CompositeExplicitAutograd", "CompositeImplicitAutograd", "CPU", "Autograd")


def _block_aten(name: str):
    """A ``torch.library.Library`` whose kernels make the ATen operator ``name`` raise (undo: ``_destroy()``)."""
    import warnings

    message = f"torch.{name} is not allowed in this exercise: write it yourself"

    def kernel(*args, **kwargs):
        raise NotImplementedError(message)

    lib = torch.library.Library("aten", "IMPL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "overriding a previously registered kernel" is the point
        for key in _DISPATCH_KEYS:
            try:
                lib.impl(name, kernel, key)
            except (RuntimeError, ValueError):
                pass
    return lib


@contextlib.contextmanager
def reference_disabled(*functions: Callable):
    """Make ``course_lib``'s reference implementations raise while a graded test runs.

    Used by every exercise test::

        expected = rl.reward_to_go(rewards, 0.9)          # computed first, with the reference on
        with grading.reference_disabled(rl.reward_to_go):
            got = reward_to_go(rewards, 0.9)               # the student's function
        grading.check_close("reward_to_go", got, expected, inputs={"rewards": rewards, "gamma": 0.9})

    A student function that wraps or imports the library's answer then fails,
    however it got hold of it (``from course_lib.rl import reward_to_go as f``
    included): the function object's code is swapped, not a module attribute.

    A torch builtin backed by an ATen operator (``torch.logsumexp``) can be
    named too, for an exercise that forbids it: every route to the operator
    (``torch.logsumexp``, ``Tensor.logsumexp``, ``torch.special.logsumexp``)
    raises inside the block.

    At grading (``grading/sandbox.py``) the student's code runs in another
    process, whose ``course_lib`` has every function named here rewritten to
    raise and where the named torch functions are refused; this context
    manager is then the in-notebook half (``grader.check``).

    Args:
        functions: plain Python functions (not bound methods, no closures), or
            torch builtins with an ATen operator of the same name.

    Raises:
        TypeError: for anything else.
    """
    saved = []
    libraries = []
    try:
        for fn in functions:
            fn = getattr(fn, "__func__", fn)
            name = getattr(fn, "__name__", "")
            if (not hasattr(fn, "__code__") and callable(fn) and name and (getattr(fn, "__module__", None) or "torch").startswith("torch")
                    and hasattr(torch.ops.aten, name)):
                libraries.append(_block_aten(name))
                continue
            if not hasattr(fn, "__code__") or fn.__closure__:
                raise TypeError(f"reference_disabled needs plain functions without closures (or torch builtins), got {fn!r}")
            saved.append((fn, fn.__code__))
            fn.__code__ = _disabled_stub.__code__
        yield
    finally:
        for fn, code in reversed(saved):
            fn.__code__ = code
        for lib in libraries:
            lib._destroy()


# ---------------------------------------------------------------- isolated grading (the otter plugin)
class SandboxPlugin:
    """Otter plugin named in the autograder's ``otter_config.json``: isolated grading.

    The work is done by ``course_grading_sandbox.py``, which ``make_student``
    puts into every autograder zip (from ``grading/sandbox.py``): this class only
    loads it from the autograder's ``source`` folder (the submission's sibling),
    so ``otter run``, ``otter grade`` and Gradescope all find it. Student code
    then runs in separate processes that hold neither the tests nor the
    reference answers (see ``grading/AUTHORING.md``).
    """

    def __new__(cls, submission_path, submission_metadata, plugin_config):
        import importlib.util
        import pathlib
        import sys

        source = pathlib.Path(submission_path).resolve().parent.parent / "source"
        path = source / "course_grading_sandbox.py"
        if not path.is_file():
            raise RuntimeError(f"the autograder has no {path.name}: rebuild it with grading/make_student.py")
        spec = importlib.util.spec_from_file_location("course_grading_sandbox", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["course_grading_sandbox"] = module
        spec.loader.exec_module(module)
        return module.SandboxPlugin(submission_path, submission_metadata, plugin_config)
