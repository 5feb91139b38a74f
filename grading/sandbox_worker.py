"""The student's side of isolated grading: a zygote process that forks one worker per test case.

This file runs in a separate interpreter, ``python -I -S sandbox_worker.py``,
started by :mod:`sandbox` (the checker's side, in the otter process). Nothing
here knows a test, an input before it is sent, or an expected value; the
checker never trusts anything that comes back from here.

The zygote (trusted code only) imports torch, numpy, dill and the *grading
build* of ``course_lib`` (every reference answer of the chapter rewritten to
raise), then waits on a control socket. For each test case the checker sends
it a fresh socket; the zygote forks a worker that

1. starts its own session and moves into its own empty temporary folder;
2. sets resource limits (address space, file size, CPU time, no core files);
3. disables the torch functions the exercise forbids;
4. installs an audit hook (PEP 578) that refuses: reading files outside
   Python's own library folders, the grading build and its folder; writing
   outside its folder; processes (fork, exec, spawn, subprocess, kill),
   sockets, ctypes, gc's object walks, chdir, symlinks, rlimit changes;
5. runs the answer cells' source, then serves calls: the checker sends the
   arguments, the worker calls the student's function and sends back the
   return value (plain data and tensors only, written with ``torch.save``
   and read by the checker with ``weights_only=True``), the inputs it changed
   in place, and, when asked, vector-Jacobian products for autograd.

Messages are ``8-byte length + payload``: checker -> worker payloads are dill
pickles, worker -> checker payloads are ``torch.save`` archives of lists,
strings, numbers and tensors.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import sys

HEADER = struct.Struct("!Q")
MAX_MESSAGE = 256 * 2**20


# ------------------------------------------------------------------ framing on raw file descriptors
def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the checker closed the channel")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int) -> bytes:
    (size,) = HEADER.unpack(_read_exact(fd, HEADER.size))
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    return _read_exact(fd, size)


def write_message(fd: int, payload: bytes) -> None:
    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data):]


def die_with_parent() -> None:
    """Linux: get SIGKILL when the parent process ends (grade_local's time limit kills otter: its
    grading processes must not outlive it). Best effort elsewhere."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))   # PR_SET_PDEATHSIG
    except Exception:  # not Linux, no libc: the channel's EOF and RLIMIT_CPU still end the process
        pass


# ------------------------------------------------------------------ the audit hook
def _ancestors(path: str) -> set[str]:
    out, parts = {"/"}, [p for p in path.split("/") if p]
    for i in range(1, len(parts) + 1):
        out.add("/" + "/".join(parts[:i]))
    return out


def install_audit_hook(cwd: str, read_roots: list[str], read_files: list[str], deny_roots: list[str]) -> None:
    """Refuse what a graded answer has no business doing (see the module docstring).

    The hook uses only its default arguments (immutable tuples and frozensets
    of strings, builtins bound at definition), so student code that rebinds
    builtins or module globals cannot change what it allows. Paths are
    normalised lexically (``..`` collapsed) against the worker's folder;
    symlinks cannot be made (``os.symlink`` is refused).
    """
    cwd = cwd.rstrip("/") or "/"
    roots = tuple(sorted({r.rstrip("/") or "/" for r in read_roots}))
    denied = tuple(sorted({d.rstrip("/") or "/" for d in deny_roots}))
    # a directory above a denied one could serve as dir_fd for a relative open: refuse opening those
    above_denied = frozenset(a for d in denied for a in _ancestors(d))
    files = frozenset(read_files)
    blocked = frozenset({
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.startfile",
        "subprocess.Popen", "os.kill", "os.killpg", "signal.pthread_kill", "os.symlink", "os.link",
        "os.chdir", "os.chroot", "os.chmod", "os.chown", "os.chflags", "os.lchown", "os.lchmod", "os.mknod",
        "os.mkfifo", "os.setxattr", "os.removexattr", "resource.setrlimit", "resource.prlimit",
        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "builtins.input", "sys.addaudithook",
        "os.truncate", "pty.spawn", "webbrowser.open", "shutil.chown",
    })
    blocked_prefixes = ("ctypes.", "socket.", "sqlite3.", "_winapi.", "winreg.", "msvcrt.", "_ctypes.")
    path_events = frozenset({"os.remove", "os.rmdir", "os.mkdir", "os.utime", "os.rename", "os.replace",
                             "shutil.rmtree", "shutil.copyfile", "shutil.copytree", "shutil.move",
                             "shutil.make_archive", "shutil.unpack_archive", "os.listxattr", "os.getxattr"})
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

    def hook(event, args, _cwd=cwd, _roots=roots, _denied=denied, _above=above_denied, _files=files,
             _blocked=blocked, _prefixes=blocked_prefixes, _path_events=path_events, _write_flags=write_flags,
             _type=type, _str=str, _bytes=bytes, _int=int, _id=id, _Err=PermissionError, _me=0):
        if event == "open":
            path, mode, flags = args[0], args[1], args[2]
            kind = _type(path)
            if kind is _int:
                return
            if kind is _bytes:
                path = path.decode("utf-8", "surrogateescape")
            elif kind is not _str:
                raise _Err(f"grading: open() of a {kind.__name__} path is not allowed; pass a str")
            full = path if path.startswith("/") else _cwd + "/" + path
            parts = []
            for part in full.split("/"):
                if part == "" or part == ".":
                    continue
                if part == "..":
                    if parts:
                        parts.pop()
                    continue
                parts.append(part)
            norm = "/" + "/".join(parts)
            writing = (mode is not None and ("w" in mode or "a" in mode or "x" in mode or "+" in mode)) or (
                mode is None and (flags & _write_flags) != 0)
            inside = norm == _cwd or norm.startswith(_cwd + "/")
            if writing:
                if inside or norm == "/dev/null":
                    return
                raise _Err(f"grading: writing {path!r} is not allowed (write in the current folder)")
            if inside or norm in _files:
                return
            if norm in _above:
                raise _Err(f"grading: opening {path!r} is not allowed")
            for d in _denied:
                if norm == d or norm.startswith(d + "/"):
                    raise _Err(f"grading: reading {path!r} is not allowed")
            for r in _roots:
                if norm == r or norm.startswith(r + "/"):
                    return
            raise _Err(f"grading: reading {path!r} is not allowed")
        if event in _blocked or event.startswith(_prefixes):
            raise _Err(f"grading: {event} is not allowed while an answer is graded")
        if event == "object.__setattr__" and _id(args[0]) == _me:
            raise _Err("grading: the audit hook cannot be changed")
        if event == "import" and args[0] in ("_posixsubprocess", "_ctypes", "ctypes", "_socket", "socket"):
            raise _Err(f"grading: importing {args[0]} is not allowed while an answer is graded")
        if event in _path_events:
            for value in args:
                if _type(value) is _str or _type(value) is _bytes:
                    text = value.decode("utf-8", "surrogateescape") if _type(value) is _bytes else value
                    full = text if text.startswith("/") else _cwd + "/" + text
                    if ".." in full.split("/") or not (full == _cwd or full.startswith(_cwd + "/")):
                        raise _Err(f"grading: {event} outside the current folder is not allowed")

    hook.__defaults__ = hook.__defaults__[:-1] + (id(hook),)   # before the hook is live
    sys.addaudithook(hook)


def _drop_process_spawning() -> None:
    """``_posixsubprocess.fork_exec`` raises no audit event: take every reference to it away first."""
    target = sys.modules.pop("_posixsubprocess", None)
    if target is None:
        return
    fork_exec = getattr(target, "fork_exec", None)
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for key, value in list(namespace.items()):
            if value is target or (fork_exec is not None and value is fork_exec):
                del namespace[key]


# ------------------------------------------------------------------ forbidden torch functions
_KEEP: list = []   # the dispatcher overrides live as long as the worker


def _raise_not_allowed(*args, **kwargs):
    raise NotImplementedError("this torch function is not allowed in this exercise: write it yourself")


def disable_torch_functions(names: list[str]) -> None:
    """Make each named torch function raise in this process, whatever route reaches it.

    A builtin with an ATen operator of the same name (``torch.logsumexp``) gets a
    raising kernel at every dispatch key, so ``torch.logsumexp``,
    ``Tensor.logsumexp``, ``torch.special.logsumexp``, ``torch.ops.aten`` and
    ``torch._C`` all raise. A Python function (``torch.distributions.kl_divergence``)
    gets a raising body; for ``kl_divergence`` the registered pair functions too.
    """
    import warnings

    import torch

    for dotted in names:
        module_name, _, leaf = dotted.rpartition(".")
        try:
            owner = __import__(module_name or "torch", fromlist=[leaf])
        except ImportError:
            continue
        func = getattr(owner, leaf, None)
        if func is None:
            continue
        if hasattr(func, "__code__"):
            if not func.__closure__:
                func.__code__ = _raise_not_allowed.__code__
            if leaf == "kl_divergence":
                from torch.distributions import kl
                for impl in list(getattr(kl, "_KL_REGISTRY", {}).values()):
                    if hasattr(impl, "__code__") and not impl.__closure__:
                        impl.__code__ = _raise_not_allowed.__code__
            continue
        if hasattr(torch.ops.aten, leaf):
            message = f"{dotted} is not allowed in this exercise: write it yourself"

            def kernel(*args, _message=message, **kwargs):
                raise NotImplementedError(_message)

            lib = torch.library.Library("aten", "IMPL")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for key in ("CompositeExplicitAutograd", "CompositeImplicitAutograd", "CPU", "Autograd"):
                    try:
                        lib.impl(leaf, kernel, key)
                    except (RuntimeError, ValueError):
                        pass
            _KEEP.append(lib)


# ------------------------------------------------------------------ values -> plain data (worker -> checker)
def _encode(value, tensors_out: list, depth: int = 0):
    """A nested list of tags, strings, numbers and tensors, readable with ``torch.load(weights_only=True)``."""
    import numpy as np
    import torch

    if depth > 30:
        return ["x", "deeply nested value"]
    if value is None:
        return ["N"]
    if value is Ellipsis:
        return ["E"]
    if isinstance(value, bool):
        return ["b", bool(value)]
    if isinstance(value, int):
        return ["i", int(value)]
    if isinstance(value, float):
        return ["f", float(value)]
    if isinstance(value, complex):
        return ["c", float(value.real), float(value.imag)]
    if isinstance(value, str):
        return ["s", str(value)[:20000]]
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_quantized or value.device.type == "meta":
            return ["x", f"tensor with layout {value.layout}"]
        tensors_out.append(value)
        plain = value.detach().cpu().clone().as_subclass(torch.Tensor)
        return ["t", plain, bool(value.requires_grad), len(tensors_out) - 1]
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            return ["x", f"numpy array of dtype {value.dtype}"]
        return ["a", torch.from_numpy(np.ascontiguousarray(value).copy())]
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biufc":
            return ["x", f"numpy scalar of dtype {value.dtype}"]
        item = value.item()
        return ["g", value.dtype.name, _encode(item, [], depth + 1)]
    if isinstance(value, tuple):
        return ["(", [_encode(v, tensors_out, depth + 1) for v in value[:100000]]]
    if isinstance(value, list):
        return ["[", [_encode(v, tensors_out, depth + 1) for v in value[:100000]]]
    if isinstance(value, dict):
        items = []
        for k, v in list(value.items())[:100000]:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                return ["x", f"dict with a {type(k).__name__} key"]
            items.append([str(k) if isinstance(k, str) else int(k), _encode(v, tensors_out, depth + 1)])
        return ["{", items]
    return ["x", f"{type(value).__module__}.{type(value).__qualname__}"[:200]]


def _dumps(obj) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


# ------------------------------------------------------------------ the worker
class _Tail(io.TextIOBase):
    """A text stream that keeps the last few thousand characters written to it."""

    def __init__(self, limit: int = 4000):
        self.limit, self.text = limit, ""

    def writable(self):
        return True

    def write(self, s):
        self.text = (self.text + str(s))[-self.limit:]
        return len(s)


def _serve(fd: int, config: dict) -> None:
    """The worker's life after the fork: set up, run the answer, serve calls until the channel closes."""
    import builtins
    import resource

    import dill
    import torch

    os.setsid()
    die_with_parent()
    workdir = config["workdir"]
    os.makedirs(workdir, exist_ok=True)
    os.chdir(workdir)
    import tempfile

    for key in ("HOME", "TMPDIR", "MPLCONFIGDIR", "XDG_RUNTIME_DIR"):
        os.environ[key] = workdir           # its own folder is the only one it may write to
    tempfile.tempdir = workdir
    log = os.open(os.path.join(workdir, ".worker.log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)
    tail = _Tail()
    sys.stdout = sys.stderr = tail
    sys.stdin = io.StringIO("")

    limits = config.get("limits", {})
    try:
        with open("/proc/self/statm") as f:
            vm_now = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        vm_now = 0
    for name, value in (("RLIMIT_AS", vm_now + int(limits.get("memory_bytes", 4 * 2**30))),
                        ("RLIMIT_FSIZE", int(limits.get("file_bytes", 64 * 2**20))),
                        ("RLIMIT_CPU", int(limits.get("cpu_seconds", 600))),
                        ("RLIMIT_CORE", 0)):
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):
                pass

    torch.set_num_threads(1)
    disable_torch_functions(config.get("forbidden", []))
    _drop_process_spawning()
    install_audit_hook(workdir, config["read_roots"], config.get("read_files", []), config.get("deny_roots", []))

    namespace: dict = {"__name__": "__main__", "__builtins__": builtins}
    status: dict = {}
    import linecache

    filename = config.get("filename", "<answer>")
    linecache.cache[filename] = (len(config["source"]), None, config["source"].splitlines(True), filename)
    try:
        code = compile(config["source"], filename, "exec")
        exec(code, namespace)
    except BaseException as err:  # the answer cell itself failed: report it with the names below
        status["error"] = f"{type(err).__name__}: {err}"
        status["traceback"] = _student_traceback(err, config.get("filename", "<answer>"))
    names = {}
    for name in config.get("names", []):
        if name not in namespace:
            names[name] = ["missing"]
        elif callable(namespace[name]):
            names[name] = ["callable"]
        else:
            try:
                names[name] = ["value", _encode(namespace[name], [])]
            except BaseException as err:
                names[name] = ["value", ["x", f"value that could not be read: {type(err).__name__}"]]
    write_message(fd, _dumps(["ready", names, status.get("error", ""), status.get("traceback", ""), tail.text]))
    tail.text = ""

    graphs: dict = {}
    while True:
        try:
            request = dill.loads(read_message(fd))
        except EOFError:
            break
        kind = request[0]
        if kind == "call":
            _, call_id, name, payload = request
            write_message(fd, _dumps(_call(namespace, name, call_id, payload, graphs, tail)))
        elif kind == "backward":
            _, call_id, grads = request
            write_message(fd, _dumps(_backward(graphs, call_id, grads)))
        else:
            write_message(fd, _dumps(["raised", ["RuntimeError"], f"unknown request {kind!r}", "", ""]))
    os._exit(0)


def _student_traceback(err: BaseException, filename: str) -> str:
    import traceback

    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename == filename or f.filename.startswith("<answer")]
    lines = [f'  line {f.lineno}, in {f.name}: {f.line}' for f in frames[-5:]]
    return "\n".join(lines)


def _rebuild(node, tensors: list):
    """Arguments from the checker: containers with ("__tensor__", i) placeholders."""
    if isinstance(node, tuple) and len(node) == 2 and node[0] == "__tensor__":
        return tensors[node[1]]
    if isinstance(node, tuple) and len(node) == 2 and node[0] == "__tuple__":
        return tuple(_rebuild(v, tensors) for v in node[1])
    if isinstance(node, list):
        return [_rebuild(v, tensors) for v in node]
    if isinstance(node, dict):
        return {k: _rebuild(v, tensors) for k, v in node.items()}
    return node


def _call(namespace: dict, name: str, call_id: int, payload: dict, graphs: dict, tail: _Tail) -> list:
    import torch

    fn = namespace.get(name)
    tensors = []
    for t, wants_grad in zip(payload["tensors"], payload["requires_grad"]):
        if wants_grad and payload["grad_enabled"] and (t.is_floating_point() or t.is_complex()):
            t = t.requires_grad_(True)
        tensors.append(t)
    args = _rebuild(payload["args"], tensors)
    kwargs = _rebuild(payload["kwargs"], tensors)
    before = [t.detach().clone() for t in tensors]
    if payload.get("rng_state") is not None:
        try:
            torch.set_rng_state(payload["rng_state"])
        except (RuntimeError, TypeError):
            pass
    previous_dtype = torch.get_default_dtype()
    try:
        torch.set_default_dtype(payload.get("default_dtype", previous_dtype))
        with torch.set_grad_enabled(payload["grad_enabled"]):
            value = fn(*args, **kwargs)
    except BaseException as err:  # the student's exception goes back to the test, by name
        mro = [k.__name__ for k in type(err).__mro__]
        return ["raised", mro, str(err)[:5000], _student_traceback(err, "<answer"), _take(tail)]
    finally:
        torch.set_default_dtype(previous_dtype)
    outputs: list = []
    try:
        encoded = _encode(value, outputs)
    except BaseException as err:
        return ["raised", ["TypeError", "Exception"], f"its return value could not be read: {type(err).__name__}: {err}", "", _take(tail)]
    changed = []
    for i, (t, b) in enumerate(zip(tensors, before)):
        try:
            same = t.shape == b.shape and t.dtype == b.dtype and torch.equal(t.detach(), b)
        except RuntimeError:
            same = False
        if not same:
            changed.append([i, t.detach().clone()])
    grad_inputs = [i for i, t in enumerate(tensors) if t.requires_grad]
    if grad_inputs and any(isinstance(o, torch.Tensor) and o.requires_grad for o in outputs):
        graphs[call_id] = ([tensors[i] for i in grad_inputs], outputs)
    return ["ok", encoded, changed, grad_inputs, torch.get_rng_state(), _take(tail)]


def _take(tail: _Tail) -> str:
    text, tail.text = tail.text, ""
    return text


def _backward(graphs: dict, call_id: int, grads: list) -> list:
    import torch

    if call_id not in graphs:
        return ["raised", ["RuntimeError"], "no graph for this call", "", ""]
    inputs, outputs = graphs[call_id]
    pairs = [(o, g) for o, g in zip(outputs, grads)
             if g is not None and isinstance(o, torch.Tensor) and o.requires_grad]
    if not pairs:
        return ["grads", [None] * len(inputs)]
    try:
        got = torch.autograd.grad([o for o, _ in pairs], inputs, [g.to(o.dtype) for o, g in pairs],
                                  allow_unused=True, retain_graph=True)
    except BaseException as err:
        mro = [k.__name__ for k in type(err).__mro__]
        return ["raised", mro, str(err)[:5000], _student_traceback(err, "<answer"), ""]
    return ["grads", [None if g is None else g.detach().clone() for g in got]]


# ------------------------------------------------------------------ the zygote
def zygote() -> None:
    """Import what every worker needs, then fork a worker for each socket the checker sends."""
    import socket

    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:    # the checker ended before we could ask to follow it
        os._exit(0)
    config = json.loads(sys.stdin.readline())
    sys.path[:] = config["sys_path"]
    for key, value in config.get("env", {}).items():
        os.environ[key] = value
    for module in config.get("preimport", []):
        try:
            __import__(module)
        except Exception as err:  # a missing optional package: the worker reports it if the answer needs it
            print(f"zygote: could not import {module}: {err}", file=sys.stderr, flush=True)
    import torch

    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)      # workers are reaped by the kernel
    control = socket.socket(fileno=int(config["control_fd"]))
    control.sendall(b"ready\n")
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 1 << 20, 4)
        except OSError:
            break
        if not message:
            break
        request = json.loads(message.decode())
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            try:
                control.close()
                for fd in fds[1:]:
                    os.close(fd)
                _serve(fds[0], request)
            finally:
                os._exit(0)
        for fd in fds:
            os.close(fd)
        control.sendall(json.dumps({"pid": pid}).encode() + b"\n")


if __name__ == "__main__":
    zygote()
