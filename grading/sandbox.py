"""Isolated grading: the checker's side, in the otter process; student code runs in other processes.

Otter 7 runs a submission's cells and the tests in one Jupyter kernel, so an
answer can reach everything the tests use: the reference implementation, the
expected values, the test files, otter itself. Here the two are split (as
PrairieLearn and Gradescope's own harnesses do):

- **Student side** (:mod:`sandbox_worker`, a separate ``python -I -S``
  process tree): one worker process per test case, forked from a zygote that
  imported torch and the *grading build* of ``course_lib`` (the chapter's
  reference answers rewritten to raise). A worker holds only the answer
  cells' source (and the imports they need from the notebook), runs under
  resource limits and an audit hook (no reading outside Python's own library
  folders, no processes, no sockets, no ctypes), and answers calls.
- **Checker side** (this module, the otter process): runs each test
  function of ``tests/qN.py`` itself, with the full library; where the test
  calls the student's function it calls a proxy that sends the arguments to
  the worker and gets back only the return value (tensors and plain data,
  loaded with ``torch.load(weights_only=True)``), the inputs the student
  changed in place, and autograd's vector-Jacobian products when the test
  back-propagates through the result. Expected values are computed and
  compared here; the worker never sees them, nor a test's source.
- Every call has a time limit (an endless loop fails that test case with a
  message; the worker is killed) and the worker an address-space limit.

:class:`SandboxPlugin` wires this into otter (``otter_config.json`` names
``course_lib.grading.SandboxPlugin``, which loads this file from the
autograder zip): before otter executes anything it reads the tests into
memory, removes them from disk, grades every question here, writes
one-line verdict tests in their place and hands otter a notebook without
student code; after grading it restores the exact feedback messages.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import struct
import sys
import sysconfig
import symtable
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
WORKER_FILES = ("sandbox_worker.py", "course_grading_worker.py")
MANIFEST = "grading_manifest.json"
BUILD_DIR = "grading_build"
HEADER = struct.Struct("!Q")
MAX_MESSAGE = 256 * 2**20
ANSWER_TAG = "otter_answer_cell"
IGNORE_TAG = "otter_ignore"
PREIMPORT = ["math", "numpy", "torch", "torch.nn", "torch.nn.functional", "dill", "course_lib",
             "course_lib.rl", "course_lib.vae", "course_lib.flows", "course_lib.autoregressive",
             "course_lib.image_flows", "course_lib.grading"]
DEFAULT_LIMITS = {"call_seconds": 10.0, "case_seconds": 60.0, "start_seconds": 120.0,
                  "memory_bytes": 4 * 2**30, "file_bytes": 64 * 2**20}


class SandboxStopped(BaseException):
    """The student's process is gone (time limit, crash, memory): the test case fails with this message.

    A BaseException, so an ``except Exception`` in a test cannot turn a killed
    answer into a pass.
    """


class GradingSetupError(Exception):
    """The grading machinery itself failed (not the student's answer)."""


# ------------------------------------------------------------------ framing
def _send(sock: socket.socket, payload: bytes) -> None:
    sock.sendall(HEADER.pack(len(payload)) + payload)


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    chunks, left = [], n
    while left:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(left, 1 << 20))
        except socket.timeout:
            raise TimeoutError from None
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    (size,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline))
    if size > MAX_MESSAGE:
        raise ValueError(f"a message of {size} bytes from the student's process")
    return _recv_exact(sock, size, deadline)


def _safe_load(payload: bytes):
    """Read a worker's reply: tensors and plain containers only (``weights_only=True``), never code."""
    import torch

    return torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")


# ------------------------------------------------------------------ decoding what the worker returned
class Unsupported:
    """Stands for a value the worker could not send (a module, a distribution, ...)."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self):
        return f"<a {self.what}: grading compares tensors, numbers, strings and tuples/lists/dicts of them>"

    def __eq__(self, other):
        return False

    __hash__ = object.__hash__


_NP_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
              "float16", "float32", "float64", "complex64", "complex128", "longdouble", "clongdouble"}


class _Decoder:
    """Turns the worker's tagged lists back into values, checking every node."""

    def __init__(self, max_nodes: int = 200_000):
        self.nodes, self.max_nodes = 0, max_nodes
        self.tensors: dict[int, Any] = {}      # index in the worker's output list -> tensor
        self.requires_grad: dict[int, bool] = {}

    def collect(self, node, depth: int = 0) -> None:
        import torch

        self._count(depth)
        tag = node[0] if isinstance(node, list) and node and isinstance(node[0], str) else None
        if tag == "t":
            if len(node) != 4 or not isinstance(node[1], torch.Tensor) or not isinstance(node[3], int):
                raise ValueError("malformed tensor node")
            self.tensors[node[3]] = node[1]
            self.requires_grad[node[3]] = bool(node[2])
        elif tag in ("(", "["):
            for item in node[1]:
                self.collect(item, depth + 1)
        elif tag == "{":
            for item in node[1]:
                self.collect(item[1], depth + 1)
        elif tag == "g":
            self.collect(node[2], depth + 1)

    def _count(self, depth):
        self.nodes += 1
        if self.nodes > self.max_nodes or depth > 40:
            raise ValueError("the return value is too large or too deeply nested")

    def build(self, node, replace: dict[int, Any]):
        import numpy as np
        import torch

        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            raise ValueError("malformed value")
        tag = node[0]
        if tag == "N":
            return None
        if tag == "E":
            return Ellipsis
        if tag == "b" and isinstance(node[1], bool):
            return node[1]
        if tag == "i" and isinstance(node[1], int) and not isinstance(node[1], bool):
            return node[1]
        if tag == "f" and isinstance(node[1], float):
            return node[1]
        if tag == "c" and isinstance(node[1], float) and isinstance(node[2], float):
            return complex(node[1], node[2])
        if tag == "s" and isinstance(node[1], str):
            return node[1]
        if tag == "t":
            return replace.get(node[3], node[1])
        if tag == "a" and isinstance(node[1], torch.Tensor):
            return node[1].numpy()
        if tag == "g" and node[1] in _NP_DTYPES:
            return np.dtype(node[1]).type(self.build(node[2], replace))
        if tag == "(" and isinstance(node[1], list):
            return tuple(self.build(v, replace) for v in node[1])
        if tag == "[" and isinstance(node[1], list):
            return [self.build(v, replace) for v in node[1]]
        if tag == "{" and isinstance(node[1], list):
            out = {}
            for item in node[1]:
                if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], (str, int))):
                    raise ValueError("malformed dict")
                out[item[0]] = self.build(item[1], replace)
            return out
        if tag == "x" and isinstance(node[1], str):
            return Unsupported(node[1][:200])
        raise ValueError(f"malformed value (tag {tag!r})")


def _builtin_exception(mro: list, message: str, where: str) -> BaseException:
    """The exception the student's code raised, as the nearest builtin ``Exception`` class."""
    for name in mro if isinstance(mro, list) else []:
        kind = getattr(builtins, name, None) if isinstance(name, str) else None
        if isinstance(kind, type) and issubclass(kind, Exception):
            text = message if not where else f"{message}\n(raised in your code:\n{where})"
            try:
                return kind(text)
            except Exception:  # a builtin exception with another signature (UnicodeError and co.)
                return RuntimeError(f"{name}: {text}")
    return RuntimeError(f"{mro[0] if mro else 'an exception'}: {message}")


# ------------------------------------------------------------------ the student's processes
def _python_roots() -> list[str]:
    """Folders an answer may read: the standard library and site-packages (the real course_lib is denied)."""
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(os.path.realpath(path))
    import site

    for path in site.getsitepackages() + [site.getusersitepackages()]:
        if os.path.isdir(path):
            roots.add(os.path.realpath(path))
    roots.add(os.path.realpath(os.path.join(sys.base_prefix, "lib")))
    for extra in ("/usr/share/zoneinfo", "/usr/share/fonts", "/etc", "/sys/devices/system/cpu", "/sys/fs/cgroup"):
        roots.add(extra)
    return sorted(roots)


def _worker_sys_path(build: pathlib.Path) -> list[str]:
    """The worker's sys.path: the grading build first, then this interpreter's own folders (no .pth files)."""
    paths = [str(build)]
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        real = os.path.realpath(entry)
        if os.path.isdir(os.path.join(real, "course_lib")) and not real.startswith(str(build)):
            # the real library's folder (an editable checkout): keep only if it is site-packages
            if "site-packages" not in real and "dist-packages" not in real:
                continue
        if real not in paths and ("python" in real.lower() or "site-packages" in real or "dist-packages" in real):
            paths.append(real)
    return paths


def _real_course_lib_dirs() -> list[str]:
    """Where the full library lives on this machine (denied to workers), and its checkout if editable."""
    denied = set()
    try:
        import course_lib

        pkg = pathlib.Path(course_lib.__file__).resolve().parent
        denied.add(str(pkg))
        if not any(part in ("site-packages", "dist-packages") for part in pkg.parts):
            denied.add(str(pkg.parent))        # an editable checkout: the masters and tests live beside it
    except ImportError:
        pass
    return sorted(denied)


class Zygote:
    """The student's process tree: a ``python -I -S`` interpreter that forks one worker per test case."""

    def __init__(self, runtime: pathlib.Path, *, limits: dict, deny: list[str] = ()):
        self.runtime = runtime
        self.limits = limits
        self.deny = sorted(set(deny) | set(_real_course_lib_dirs()))
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="course_grading_tmp_"))
        self.tmp.chmod(0o700)
        here, there = socket.socketpair()
        control_fd = there.fileno()
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.tmp), "TMPDIR": str(self.tmp), "LANG": "C.UTF-8",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(self.tmp), "COURSE_PROFILE": "small",
               "PYGAME_HIDE_SUPPORT_PROMPT": "1", "XDG_RUNTIME_DIR": str(self.tmp), "PYTHONHASHSEED": "0"}
        self.log = open(self.tmp / "zygote.log", "w+b")
        import subprocess

        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", str(runtime / "sandbox_worker.py")],
            stdin=subprocess.PIPE, stdout=self.log, stderr=self.log, cwd=str(self.tmp), env=env,
            pass_fds=[there.fileno()], start_new_session=True,
        )
        there.close()
        self.control = here
        config = {"sys_path": _worker_sys_path(runtime / BUILD_DIR), "preimport": PREIMPORT,
                  "control_fd": control_fd, "env": {}}      # pass_fds keeps the descriptor's number
        self.process.stdin.write((json.dumps(config) + "\n").encode())
        self.process.stdin.close()
        deadline = time.monotonic() + float(limits.get("start_seconds", 120))
        line = self._readline(deadline)
        if line != b"ready":
            raise GradingSetupError(f"the grading process did not start: {self._log_tail()}")
        self.read_roots = _python_roots() + [str(runtime / BUILD_DIR)]
        self.read_files = ["/dev/null", "/dev/urandom", "/dev/random", "/dev/zero", "/proc/cpuinfo",
                           "/proc/meminfo", "/proc/self/maps", "/proc/self/status", "/proc/self/stat",
                           "/proc/self/statm", "/proc/self/cgroup"]

    def _readline(self, deadline: float) -> bytes:
        data = b""
        while not data.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return data
            self.control.settimeout(remaining)
            try:
                chunk = self.control.recv(1)
            except socket.timeout:
                return data
            if not chunk:
                return data
            data += chunk
        return data.strip()

    def _log_tail(self) -> str:
        try:
            self.log.flush()
            text = (self.tmp / "zygote.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-15:])

    def spawn(self, source: str, names: list[str], forbidden: list[str], filename: str) -> "Worker":
        if self.process.poll() is not None:
            raise GradingSetupError(f"the grading process ended: {self._log_tail()}")
        workdir = pathlib.Path(tempfile.mkdtemp(prefix="w_", dir=self.tmp))
        ours, theirs = socket.socketpair()
        request = {"workdir": str(workdir), "source": source, "names": names, "forbidden": forbidden,
                   "filename": filename, "read_roots": self.read_roots, "read_files": self.read_files,
                   "deny_roots": self.deny + [str(self.tmp)],   # other workers' folders; its own is allowed
                   "limits": {k: v for k, v in self.limits.items() if k in ("memory_bytes", "file_bytes")}
                   | {"cpu_seconds": int(self.limits.get("case_seconds", 60)) + 10}}
        socket.send_fds(self.control, [json.dumps(request).encode()], [theirs.fileno()])
        theirs.close()
        line = self._readline(time.monotonic() + 30)
        try:
            pid = int(json.loads(line)["pid"])
        except (ValueError, KeyError, TypeError):
            ours.close()
            raise GradingSetupError(f"the grading process could not start a worker: {self._log_tail()}") from None
        return Worker(ours, pid, workdir, self.limits)

    def close(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(10)
        except Exception:
            pass
        self.control.close()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Worker:
    """One test case's student process: the answer cells, run once, and its calls."""

    def __init__(self, sock: socket.socket, pid: int, workdir: pathlib.Path, limits: dict):
        self.sock, self.pid, self.workdir, self.limits = sock, pid, workdir, limits
        self.dead: str | None = None
        self.printed = ""
        self.case_deadline = time.monotonic() + float(limits.get("case_seconds", 60))

    def request(self, message, what: str):
        """Send ``message`` (or nothing, for the first reply) and return the worker's reply, within the limits."""
        import dill

        if self.dead:
            raise SandboxStopped(self.dead)
        seconds = float(self.limits.get("call_seconds", 10))
        deadline = min(time.monotonic() + seconds, self.case_deadline)
        try:
            if message is not None:
                _send(self.sock, dill.dumps(message, recurse=True))
            reply = _safe_load(_recv(self.sock, deadline))
        except TimeoutError:
            limit = f"{seconds:g} s" if deadline < self.case_deadline else f"the test case's {self.limits.get('case_seconds', 60):g} s"
            self.stop(f"{what} did not finish within {limit} (an endless loop?): your code was stopped")
        except (EOFError, ConnectionError, OSError):
            self.stop(f"{what}: the process running your code ended unexpectedly{self._crash_note()}")
        except Exception as err:  # an unreadable reply: nothing from the worker is trusted
            self.stop(f"{what}: its reply could not be read ({type(err).__name__}: {err})")
        if not isinstance(reply, list) or not reply or not isinstance(reply[0], str):
            self.stop(f"{what}: its reply could not be read")
        return reply

    def _crash_note(self) -> str:
        try:
            text = (self.workdir / ".worker.log").read_text(errors="replace").strip()
        except OSError:
            text = ""
        if "MemoryError" in text or "can't allocate" in text or "out of memory" in text.lower():
            return " (it ran out of memory: the limit is "\
                   f"{float(self.limits.get('memory_bytes', 4 * 2**30)) / 2**30:g} GiB)"
        tail = "\n".join(text.splitlines()[-3:])
        return f" (the last lines it wrote: {tail})" if tail else " (it crashed or ran out of memory)"

    def stop(self, reason: str):
        self.kill()
        self.dead = reason
        raise SandboxStopped(reason)

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.sock.close()
        except OSError:
            pass
        if not self.dead:
            self.dead = "the process running your code was stopped"

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)


# ------------------------------------------------------------------ the student's function, seen from a test
def _flatten(value, tensors: list, flags: list, depth: int = 0):
    """Arguments for the worker: tensors replaced by ("__tensor__", i), tuples by ("__tuple__", [...])."""
    import torch

    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        tensors.append(value.detach().clone().as_subclass(torch.Tensor))
        flags.append(bool(value.requires_grad))
        return ("__tensor__", len(tensors) - 1)
    if depth < 20 and type(value) is tuple:
        return ("__tuple__", [_flatten(v, tensors, flags, depth + 1) for v in value])
    if depth < 20 and type(value) is list:
        return [_flatten(v, tensors, flags, depth + 1) for v in value]
    if depth < 20 and type(value) is dict:
        return {k: _flatten(v, tensors, flags, depth + 1) for k, v in value.items()}
    return value


def _originals(value, out: list, depth: int = 0) -> None:
    """The caller's tensors in the order :func:`_flatten` numbered them."""
    import torch

    if isinstance(value, torch.Tensor) and type(value) in (torch.Tensor, torch.nn.Parameter):
        out.append(value)
    elif depth < 20 and type(value) in (tuple, list):
        for v in value:
            _originals(v, out, depth + 1)
    elif depth < 20 and type(value) is dict:
        for v in value.values():
            _originals(v, out, depth + 1)


def _remote_grad_class():
    import torch

    class RemoteGrad(torch.autograd.Function):
        """Connects the worker's result to the test's autograd graph: backward asks the worker for the VJP."""

        @staticmethod
        def forward(ctx, session, call_id, n_inputs, *tensors):
            ctx.session, ctx.call_id = session, call_id
            ctx.meta = [(t.shape, t.dtype) for t in tensors[:n_inputs]]
            ctx.n_outputs = len(tensors) - n_inputs
            return tuple(t.clone() for t in tensors[n_inputs:])

        @staticmethod
        def backward(ctx, *grads):
            got = ctx.session.backward(ctx.call_id, list(grads), ctx.meta)
            return (None, None, None, *got, *([None] * ctx.n_outputs))

    return RemoteGrad


class AnswerSession:
    """The test's view of one worker: proxies for the student's names, calls that cross the process boundary."""

    def __init__(self, worker: Worker, names: list[str], label: str):
        self.worker, self.label = worker, label
        self.calls = 0
        self._remote_grad = _remote_grad_class()
        reply = worker.request(None, "running your answer cell")
        if reply[0] != "ready" or len(reply) != 5 or not isinstance(reply[1], dict):
            worker.stop("running your answer cell: its reply could not be read")
        self.kinds: dict[str, list] = reply[1]
        self.cell_error = reply[2] if isinstance(reply[2], str) else ""
        self.cell_traceback = reply[3] if isinstance(reply[3], str) else ""
        self.env: dict[str, Any] = {}
        for name in names:
            info = self.kinds.get(name)
            kind = info[0] if isinstance(info, list) and info else "missing"
            if kind == "callable":
                self.env[name] = self._proxy(name)
            elif kind == "value" and len(info) == 2:
                try:
                    decoder = _Decoder()
                    decoder.collect(info[1])
                    self.env[name] = decoder.build(info[1], {})
                except (ValueError, TypeError, KeyError, IndexError):
                    self.env[name] = Unsupported("value that could not be read")
            else:
                self.env[name] = self._missing(name)

    def _missing(self, name: str):
        note = (f" (your answer cell raised {self.cell_error}" + (f"\n{self.cell_traceback}" if self.cell_traceback else "") + ")"
                if self.cell_error else " (define it in the exercise's answer cell)")

        def missing(*args, **kwargs):
            raise NameError(f"name {name!r} is not defined{note}")

        missing.__name__ = name
        return missing

    def _proxy(self, name: str):
        def proxy(*args, **kwargs):
            return self.call(name, args, kwargs)

        proxy.__name__ = proxy.__qualname__ = name
        proxy.__doc__ = f"The student's {name}, running in a separate process."
        return proxy

    def call(self, name: str, args: tuple, kwargs: dict):
        import torch

        tensors, flags = [], []
        payload = {"args": _flatten(tuple(args), tensors, flags)[1], "kwargs": _flatten(dict(kwargs), tensors, flags),
                   "tensors": tensors, "requires_grad": flags, "grad_enabled": torch.is_grad_enabled(),
                   "rng_state": torch.get_rng_state(), "default_dtype": torch.get_default_dtype()}
        originals: list = []
        _originals(tuple(args), originals)
        _originals(dict(kwargs), originals)
        self.calls += 1
        call_id = self.calls
        try:
            reply = self.worker.request(("call", call_id, name, payload), f"{name}(...)")
        except SandboxStopped:
            raise
        except Exception as err:  # an argument that cannot be sent (a test-authoring problem)
            raise GradingSetupError(f"grading could not send the arguments of {name} to your code: "
                                    f"{type(err).__name__}: {err}") from None
        printed = reply[-1] if isinstance(reply[-1], str) else ""
        self.worker.printed = (self.worker.printed + printed)[-4000:]
        if reply[0] == "raised" and len(reply) == 5:
            raise _builtin_exception(reply[1], str(reply[2]), str(reply[3]))
        if reply[0] != "ok" or len(reply) != 6:
            self.worker.stop(f"{name}(...): its reply could not be read")
        _, encoded, changed, _grad_inputs, rng_state, _ = reply
        # inputs changed in place: the test sees the change, as it would in one process
        if isinstance(changed, list):
            for item in changed:
                if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], int)
                        and 0 <= item[0] < len(originals) and isinstance(item[1], torch.Tensor)):
                    target, new = originals[item[0]], item[1]
                    with torch.no_grad():
                        if target.shape == new.shape:
                            target.copy_(new.to(target.dtype))
                        else:
                            target.data = new.to(target.dtype)
        if isinstance(rng_state, torch.Tensor) and rng_state.dtype == torch.uint8 and rng_state.shape == torch.get_rng_state().shape:
            torch.set_rng_state(rng_state)
        decoder = _Decoder()
        try:
            decoder.collect(encoded)
            replace = self._wire(call_id, decoder, originals, flags)
            return decoder.build(encoded, replace)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            self.worker.stop(f"{name}(...): its return value could not be read ({err})")

    def _wire(self, call_id: int, decoder: _Decoder, originals: list, flags: list) -> dict:
        import torch

        if not torch.is_grad_enabled():
            return {}
        inputs = [t for t, f in zip(originals, flags) if f and (t.is_floating_point() or t.is_complex())]
        wanted = [k for k, t in sorted(decoder.tensors.items())
                  if decoder.requires_grad.get(k) and (t.is_floating_point() or t.is_complex())]
        if not inputs or not wanted:
            return {}
        outs = self._remote_grad.apply(self, call_id, len(inputs), *inputs, *[decoder.tensors[k] for k in wanted])
        return dict(zip(wanted, outs))

    def backward(self, call_id: int, grads: list, meta: list) -> list:
        import torch

        reply = self.worker.request(("backward", call_id, [None if g is None else g.detach() for g in grads]),
                                    "the backward pass through your result")
        if reply[0] == "raised" and len(reply) == 5:
            raise _builtin_exception(reply[1], str(reply[2]), str(reply[3]))
        if reply[0] != "grads" or not isinstance(reply[1], list) or len(reply[1]) != len(meta):
            self.worker.stop("the backward pass through your result: its reply could not be read")
        out = []
        for g, (shape, dtype) in zip(reply[1], meta):
            if g is None:
                out.append(None)
            elif isinstance(g, torch.Tensor) and tuple(g.shape) == tuple(shape):
                out.append(g.to(dtype))
            else:
                self.worker.stop("the backward pass through your result returned a gradient of the wrong shape")
        return out


# ------------------------------------------------------------------ which code the worker runs
_MAGIC = re.compile(r"^\s*[%!]")


def _cell_source(cell) -> str:
    src = cell.get("source", "")
    src = "".join(src) if isinstance(src, list) else str(src)
    return "\n".join(("pass  # " + line.strip()) if _MAGIC.match(line) else line for line in src.splitlines())


def _bound(stmt: ast.stmt) -> set[str]:
    """Names a top-level statement binds."""
    names = set()
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        names.add(stmt.name)
    elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
        for alias in stmt.names:
            names.add((alias.asname or alias.name).split(".")[0])
    else:
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _free(source: str) -> set[str]:
    """Global names ``source`` reads but does not define (builtins excluded)."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    free: set[str] = set()
    bound: set[str] = set()

    def walk(t):
        for sym in t.get_symbols():
            name = sym.get_name()
            if t.get_type() == "module":
                if sym.is_assigned() or sym.is_imported():
                    bound.add(name)
                if sym.is_referenced():
                    free.add(name)
            elif sym.is_global() and sym.is_referenced():
                free.add(name)
        for child in t.get_children():
            walk(child)

    walk(table)
    return {n for n in free - bound if not hasattr(builtins, n)}


def _is_generated(source: str) -> bool:
    """The generated install/setup cells and grader calls: never the student's answer."""
    s = source.strip()
    return (s.startswith("# Setup: run this cell first") or "PUBLIC_TESTS = " in s or "otter.Notebook(" in s
            or re.fullmatch(r'grader\.check(_all)?\([^)]*\)', s) is not None or "grader.export(" in s)


def answer_source(nb: dict, names: list[str]) -> tuple[str, list[str]]:
    """The code a question's worker runs: the answer cells defining ``names``, and what they need.

    Cells tagged ``otter_answer_cell`` that bind a needed name run whole, in
    notebook order. A needed name no answer cell binds (an import of the
    preamble, a helper in another cell) comes from the last top-level
    statement that binds it in any other code cell, except cells otter skips
    (``otter_ignore``: training, plots) and the generated setup cells. The
    names those pieces read are needed in turn.

    Returns:
        The source, and notes for the student (a cell that does not parse).
    """
    cells = []
    notes = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        tags = cell.get("metadata", {}).get("tags", []) or []
        source = _cell_source(cell)
        if IGNORE_TAG in tags or _is_generated(source):
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as err:
            if ANSWER_TAG in tags:
                notes.append(f"an answer cell does not parse: SyntaxError: {err.msg} (line {err.lineno})")
            continue
        stmts = [(stmt, _bound(stmt)) for stmt in tree.body]
        cells.append({"index": index, "answer": ANSWER_TAG in tags, "source": source, "stmts": stmts,
                      "binds": set().union(*[b for _, b in stmts]) if stmts else set()})

    chosen_cells: set[int] = set()
    chosen_stmts: dict[tuple[int, int], str] = {}
    queue, seen = list(names), set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        answer_cells = [c for c in cells if c["answer"] and name in c["binds"]]
        if answer_cells:
            for c in answer_cells:
                if c["index"] not in chosen_cells:
                    chosen_cells.add(c["index"])
                    queue.extend(_free(c["source"]))
            continue
        found = None
        for c in cells:
            for i, (stmt, binds) in enumerate(c["stmts"]):
                if name in binds:
                    found = (c, i, stmt)
        if found:
            c, i, stmt = found
            key = (c["index"], i)
            if c["index"] not in chosen_cells and key not in chosen_stmts:
                text = ast.get_source_segment(c["source"], stmt) or ast.unparse(stmt)
                chosen_stmts[key] = text
                queue.extend(_free(text))
    pieces = []
    for c in cells:
        if c["index"] in chosen_cells:
            pieces.append(c["source"])
        else:
            for i in range(len(c["stmts"])):
                if (c["index"], i) in chosen_stmts:
                    pieces.append(chosen_stmts[(c["index"], i)])
    return "\n\n".join(pieces) + "\n", notes


def forbidden_mentions(source: str, forbidden: list[str]) -> list[str]:
    """The forbidden functions (``torch.logsumexp``) whose name the source mentions (names and attributes)."""
    leaves = {f.rsplit(".", 1)[-1]: f for f in forbidden}
    found = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    for node in ast.walk(tree):
        name = node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        if isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
        if name in leaves:
            found.add(leaves[name])
    return sorted(found)


# ------------------------------------------------------------------ grading a submission
@dataclass
class CaseVerdict:
    name: str
    points: float
    hidden: bool
    passed: bool
    message: str
    seconds: float = 0.0


@dataclass
class QuestionVerdict:
    name: str
    cases: list[CaseVerdict] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(c.points for c in self.cases if c.passed)


def _case_message(test_file, err: BaseException) -> str:
    try:
        return "❌ Test case failed\n" + test_file._generate_error_message(err)
    except Exception:  # a traceback of another shape
        return f"❌ Test case failed\n{type(err).__name__}: {err}"


def _run_case(test_file, case, env: dict) -> tuple[bool, str]:
    """One test case, exactly as otter's ExceptionTestFile.run does it (same messages), with our proxies."""
    try:
        case.body.call_func(env)
    except SandboxStopped as err:
        return False, _case_message(test_file, err)
    except Exception as err:
        return False, _case_message(test_file, err)
    return True, "✅ Test case passed"


def test_names(test_file) -> list[str]:
    """The notebook names a question's tests take (their parameters), in order."""
    import inspect

    names: list[str] = []
    for case in test_file.test_cases:
        for param in inspect.signature(case.body.test_func).parameters:
            if param != "env" and param not in names:
                names.append(param)
    return names


def grade_question(zygote: Zygote, test_name: str, test_source: str, nb: dict, *, forbidden: list[str] = ()) -> QuestionVerdict:
    """Run every test case of one question against the submission ``nb``, each with a fresh worker."""
    from otter.test_files import ExceptionTestFile

    test_file = ExceptionTestFile.from_string(test_source, path=f"tests/{test_name}.py")
    names = test_names(test_file)
    source, notes = answer_source(nb, names)
    mentions = forbidden_mentions(source, list(forbidden))
    verdict = QuestionVerdict(test_file.name)
    for case in test_file.test_cases:
        tic = time.monotonic()
        if mentions:
            passed, message = False, ("❌ Test case failed\n" + ", ".join(mentions) +
                                      " is not allowed in this exercise: write it yourself.")
        else:
            worker = None
            try:
                worker = zygote.spawn(source, names, list(forbidden), f"<answer {test_file.name}>")
                session = AnswerSession(worker, names, test_file.name)
                passed, message = _run_case(test_file, case, session.env)
                if not passed and session.cell_error and session.cell_error not in message:
                    message += f"\n(Your answer cell raised {session.cell_error}.)"
            except SandboxStopped as err:
                passed, message = False, f"❌ Test case failed\n{err}"
            except GradingSetupError as err:
                passed, message = False, f"❌ Test case failed\ngrading error (not your answer): {err}"
            finally:
                if worker is not None:
                    worker.close()
            if notes and not passed:
                message += "\n" + "\n".join(notes)
        verdict.cases.append(CaseVerdict(case.name, float(case.points or 0), bool(case.hidden), passed, message,
                                         round(time.monotonic() - tic, 2)))
    return verdict


VERDICT_TEMPLATE = '''\
from otter.test_files import test_case

OK_FORMAT = False

name = {name!r}

'''

VERDICT_CASE = '''\
@test_case(name={name!r}, points={points!r}, hidden={hidden!r})
def verdict_{i}():
    """Graded in a separate process by course_lib's sandbox; the feedback is restored after grading."""
    assert {passed!r}, {summary!r}

'''


def verdict_test_file(verdict: QuestionVerdict) -> str:
    """A test file whose cases pass or fail as the checker decided (otter then scores them as usual)."""
    text = VERDICT_TEMPLATE.format(name=verdict.name)
    for i, case in enumerate(verdict.cases):
        summary = "see the feedback of this test case" if not case.passed else ""
        text += VERDICT_CASE.format(name=case.name, points=case.points, hidden=case.hidden, i=i,
                                    passed=case.passed, summary=summary)
    return text


# ------------------------------------------------------------------ runtime files and the otter plugin
def prepare_runtime(source_dir: pathlib.Path) -> pathlib.Path:
    """Copy the worker script and the grading build out of the autograder folder into a fresh folder."""
    runtime = pathlib.Path(tempfile.mkdtemp(prefix="course_grading_rt_"))
    worker = next((source_dir / n for n in WORKER_FILES if (source_dir / n).is_file()), HERE / "sandbox_worker.py")
    shutil.copyfile(worker, runtime / "sandbox_worker.py")
    build = source_dir / BUILD_DIR
    if not (build / "course_lib").is_dir():
        raise GradingSetupError(f"the autograder has no grading build of course_lib ({build})")
    shutil.copytree(build, runtime / BUILD_DIR, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in runtime.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    runtime.chmod(0o755)
    return runtime


def limits_from(config: dict | None) -> dict:
    limits = dict(DEFAULT_LIMITS)
    for key, value in (config or {}).items():
        if key in limits:
            limits[key] = float(value)
    env = os.environ.get("COURSE_GRADING_TIME_LIMIT")
    if env:
        try:
            limits["call_seconds"] = float(env)
            limits["case_seconds"] = max(float(env), min(limits["case_seconds"], 6 * float(env)))
        except ValueError:
            pass
    env = os.environ.get("COURSE_GRADING_MEMORY_LIMIT_GB")
    if env:
        try:
            limits["memory_bytes"] = float(env) * 2**30
        except ValueError:
            pass
    return limits


def grade_submission(nb: dict, tests: dict[str, str], source_dir: pathlib.Path, *, manifest: dict | None = None,
                     limits: dict | None = None, deny: list[str] = ()) -> dict[str, QuestionVerdict]:
    """Grade every question of ``tests`` (name -> test file text) against the notebook ``nb``."""
    manifest = manifest or {}
    limits = limits or limits_from(None)
    runtime = prepare_runtime(source_dir)
    zygote = None
    verdicts: dict[str, QuestionVerdict] = {}
    try:
        zygote = Zygote(runtime, limits=limits, deny=list(deny))
        for name in sorted(tests, key=lambda q: (len(q), q)):
            forbidden = manifest.get("questions", {}).get(name, {}).get("forbid", [])
            try:
                verdicts[name] = grade_question(zygote, name, tests[name], nb, forbidden=forbidden)
            except GradingSetupError:
                zygote.close()
                zygote = Zygote(runtime, limits=limits, deny=list(deny))
                verdicts[name] = grade_question(zygote, name, tests[name], nb, forbidden=forbidden)
    finally:
        if zygote is not None:
            zygote.close()
        shutil.rmtree(runtime, ignore_errors=True)
    return verdicts


def _plugin_base():
    try:
        from otter.plugins import AbstractOtterPlugin
        return AbstractOtterPlugin
    except ImportError:  # pragma: no cover - otter is always there when otter loads a plugin
        return object


class SandboxPlugin(_plugin_base()):
    """Otter plugin: grade in separate processes, then let otter report the verdicts.

    Config (``otter_config.json``, under the plugin's name): ``call_seconds``,
    ``case_seconds``, ``memory_bytes``; the environment variables
    ``COURSE_GRADING_TIME_LIMIT`` (seconds per call) and
    ``COURSE_GRADING_MEMORY_LIMIT_GB`` override them.
    """

    def __init__(self, submission_path, submission_metadata, plugin_config):
        self.submission_path = submission_path
        self.submission_metadata = submission_metadata
        self.plugin_config = plugin_config or {}
        self.verdicts: dict[str, QuestionVerdict] = {}
        sub = pathlib.Path(submission_path).resolve()
        self.submission_dir = sub.parent
        self.source_dir = sub.parent.parent / "source"

    def before_grading(self, config):
        from otter.plugins import PluginEventNotSupportedException
        raise PluginEventNotSupportedException()

    def before_execution(self, submission):
        import nbformat

        tests_dir = self.submission_dir / "tests"
        tests = {}
        for path in sorted(tests_dir.glob("*.py")):
            tests[path.stem] = path.read_text()
        manifest = {}
        if (self.source_dir / MANIFEST).is_file():
            manifest = json.loads((self.source_dir / MANIFEST).read_text())
        # the hidden tests leave the disk before any student code runs
        for folder in (tests_dir, self.source_dir / "tests"):
            for path in folder.glob("*.py"):
                path.unlink()
        if isinstance(submission, str):  # a .py submission: one cell, all of it an answer
            nb = {"cells": [{"cell_type": "code", "source": submission, "metadata": {"tags": [ANSWER_TAG]}}]}
        else:
            nb = json.loads(json.dumps(submission))
        deny = [str(self.submission_dir.parent)]
        self.verdicts = grade_submission(nb, tests, self.source_dir, manifest=manifest,
                                         limits=limits_from(self.plugin_config), deny=deny)
        for name, verdict in self.verdicts.items():
            (tests_dir / f"{name}.py").write_text(verdict_test_file(verdict))
        # otter executes a notebook without student code: only its own init and export cells
        executed = nbformat.v4.new_notebook()
        executed.metadata = getattr(submission, "metadata", nbformat.NotebookNode())
        executed.cells = [nbformat.v4.new_markdown_cell(
            "Graded in separate processes by course_lib's sandbox (grading/sandbox.py).")]
        return executed

    def after_grading(self, results):
        from dataclasses import replace

        for name, verdict in self.verdicts.items():
            if name not in results.results:
                continue
            test_file = results.results[name]
            by_name = {c.name: c for c in verdict.cases}
            fixed = []
            for tcr in test_file.test_case_results:
                mine = by_name.get(tcr.test_case.name)
                if mine is not None:
                    tcr = replace(tcr, passed=mine.passed, message=mine.message)
                fixed.append(tcr)
            test_file.test_case_results = fixed
        results.set_plugin_data(type(self).__module__ + ".SandboxPlugin", {
            q: [{"name": c.name, "passed": c.passed, "seconds": c.seconds} for c in v.cases]
            for q, v in self.verdicts.items()})

    def generate_report(self):
        lines = []
        for q, v in self.verdicts.items():
            lines.append(f"{q}: " + ", ".join(f"{c.name} {'passed' if c.passed else 'failed'} ({c.seconds:g} s)" for c in v.cases))
        return "Isolated grading (course_lib sandbox):\n" + "\n".join(lines)
