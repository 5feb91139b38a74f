"""Checkpoint files and RNG states: the file I/O under :class:`course_lib.training.TrainingRun`.

Private module; every name here is imported into :mod:`course_lib.training` and used
from there (``training.save_checkpoint``, ``training.CheckpointError``, ...).

==============================  ==================================================
piece                           what it does
==============================  ==================================================
:func:`save_checkpoint`         atomic write (temp file, fsync, rename), mode 0644,
                                a SHA-256 of the contents; removes the temp files
                                that killed writers left behind
:func:`load_checkpoint`         checks the SHA-256, then
                                ``torch.load(..., weights_only=True)``, with errors
                                that name the path and what is wrong
:func:`_check_checkpoint_path`  refuses, before any training, a ``checkpoint_path``
                                no checkpoint could be written to
:func:`rng_state`               every RNG a loop draws from (Python, NumPy, torch,
:func:`set_rng_state`           CUDA, named ``torch.Generator`` s)
:class:`CheckpointError`        the error of a bad checkpoint file
==============================  ==================================================

The temp-file rules (naming, ``flock`` locking, removal of the files killed writers
left) are in :func:`_remove_stale_temp_files`.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
import time
from collections.abc import Mapping

import numpy as np
import torch

try:  # the lock that tells a stale temp file from a live writer's (POSIX)
    import fcntl
except ImportError:  # Windows
    fcntl = None

from course_lib.data import _fsync_dir  # one copy of the durable-rename helper

_FORMAT_KEY = "course_lib_checkpoint"
_FORMAT_VERSION = 2  # 2: the file ends with a SHA-256 trailer (1: no checksum, refused)


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: missing, empty, truncated, foreign, or from another config."""

    __module__ = "course_lib.training"  # where it is used from: tracebacks and pickles name course_lib.training


# ----------------------------------------------------------------------------
# RNG state
# ----------------------------------------------------------------------------
def _numpy_bitgen_state(bit_generator) -> dict:
    """A NumPy bit generator's state with arrays turned into tensors (loadable with weights_only)."""
    state = bit_generator.state

    def convert(obj):
        if isinstance(obj, np.ndarray):
            return torch.from_numpy(obj.astype(np.int64))
        if isinstance(obj, dict):
            return {k: convert(v) for k, v in obj.items()}
        return obj

    return convert(state)


def _restore_numpy_bitgen(bit_generator, state: dict) -> None:
    def convert(obj, like):
        if isinstance(obj, torch.Tensor):
            return obj.numpy().astype(like.dtype)
        if isinstance(obj, dict):
            return {k: convert(v, like[k]) for k, v in obj.items()}
        return obj

    bit_generator.state = convert(state, bit_generator.state)


def rng_state(generators: Mapping[str, object] | None = None) -> dict:
    """Every RNG state a training loop draws from, in a form ``weights_only`` loading accepts.

    Args:
        generators: named extra generators: ``torch.Generator`` objects, or
            ``numpy.random.Generator`` objects (e.g. an environment's ``np_random``).

    Returns:
        a dict with ``python``, ``numpy``, ``torch``, ``cuda`` (list, empty
        without CUDA) and ``generators`` (name -> state).
    """
    np_state = np.random.get_state()
    out = {
        "python": random.getstate(),
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": {},
    }
    for name, gen in (generators or {}).items():
        if isinstance(gen, torch.Generator):
            out["generators"][name] = gen.get_state()
        elif isinstance(gen, np.random.Generator):
            out["generators"][name] = _numpy_bitgen_state(gen.bit_generator)
        else:
            raise TypeError(f"generators[{name!r}] must be a torch.Generator or numpy Generator, got {type(gen).__name__}")
    return out


def set_rng_state(state: dict, generators: Mapping[str, object] | None = None) -> None:
    """Restore what :func:`rng_state` returned, including the named generators (same names)."""
    random.setstate(tuple(state["python"][:1]) + (tuple(state["python"][1]),) + tuple(state["python"][2:]))
    kind, key, *rest = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, gen in (generators or {}).items():
        if name not in state["generators"]:
            raise CheckpointError(f"the checkpoint has no state for the generator {name!r}")
        if isinstance(gen, torch.Generator):
            gen.set_state(state["generators"][name])
        else:
            _restore_numpy_bitgen(gen.bit_generator, state["generators"][name])


# ----------------------------------------------------------------------------
# Checkpoint files
# ----------------------------------------------------------------------------
# The file: what ``torch.save`` writes (a zip archive, loadable with weights_only=True),
# then a trailer of _TRAILER_MAGIC + the 64 hex digits of the SHA-256 of every byte
# before it. A zip reader ignores trailing bytes, so the file is still an ordinary
# torch file; load_checkpoint refuses it unless the digest matches.
_TRAILER_MAGIC = b"\ncourse_lib-checkpoint-sha256:"
_TRAILER_LEN = len(_TRAILER_MAGIC) + 64
_CHUNK = 1 << 20
# The temp files of one checkpoint ``<folder>/<name>``: ``<folder>/.ckpt-<name>.<8 random>.tmp``
# (mkstemp's random part: 8 characters of [a-z0-9_]); course_lib before checksums wrote
# ``.ckpt-<8 random>.tmp`` for every checkpoint.
_TEMP_NAME_MAX = 100  # characters of <name> in a temp file's name (a file name has at most 255)
_LEGACY_TEMP = re.compile(r"\.ckpt-[a-z0-9_]{8}\.tmp")
_LEGACY_TEMP_AGE = 600.0  # seconds; the writers of those files held no lock
_UNLOCKED_TEMP_AGE = 60.0  # seconds; where there is no fcntl.flock (Windows): the age rule alone


def _temp_prefix(path: str) -> str:
    return f".ckpt-{os.path.basename(path)[:_TEMP_NAME_MAX]}."


def _is_temp_of(name: str, prefix: str) -> bool:
    rest = name[len(prefix):]
    return name.startswith(prefix) and len(rest) == 12 and rest.endswith(".tmp") and bool(
        re.fullmatch(r"[a-z0-9_]{8}", rest[:8])
    )


def _locked_temp_file(folder: str, prefix: str) -> tuple[int, str]:
    """``mkstemp`` in ``folder``, with an exclusive ``flock`` held on it (where there is flock).

    The lock tells :func:`_remove_stale_temp_files` in any process that a live writer
    holds the file; the kernel drops it when the writer dies, even by SIGKILL. A cleaner
    can take the lock in the instant between ``mkstemp`` and ``flock``; then the file is
    gone when the writer looks again, and the writer makes another one.
    """
    while True:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
        if fcntl is None:
            return fd, tmp
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.stat(tmp), os.fstat(fd)):
                return fd, tmp
        except FileNotFoundError:
            pass
        os.close(fd)


def _remove_stale_temp_files(path: str) -> list[str]:
    """Remove the temp files that writers of the checkpoint ``path`` left behind (killed while saving).

    The rule: in the checkpoint's folder, a file named as a temp file of *this* checkpoint
    (``.ckpt-<name>.<8 random>.tmp``) is removed when no process holds its ``flock``: every
    writer holds that lock from creating its temp file until the rename, and a killed
    writer's lock is gone with it, so a concurrent writer's file is never touched.
    Without ``fcntl`` (Windows) it is removed when it was last modified over
    :data:`_UNLOCKED_TEMP_AGE` seconds ago (and Windows refuses to remove a file that is
    open). The ``.ckpt-<8 random>.tmp`` files of course_lib before checksums (writers
    that took no lock, and did not name the checkpoint) are removed when over
    :data:`_LEGACY_TEMP_AGE` seconds old. Files that cannot be removed are left alone.

    Returns:
        the paths removed.
    """
    folder = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        name = entry.name
        legacy = _LEGACY_TEMP.fullmatch(name) is not None
        if not (legacy or _is_temp_of(name, prefix)):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            if legacy or fcntl is None:
                if age > (_LEGACY_TEMP_AGE if legacy else _UNLOCKED_TEMP_AGE):
                    os.remove(entry.path)
                    removed.append(entry.path)
                continue
            fd = os.open(entry.path, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError: a live writer holds it
                if os.path.samestat(os.fstat(fd), os.stat(entry.path)):
                    os.remove(entry.path)
                    removed.append(entry.path)
            finally:
                os.close(fd)
        except OSError:  # held by a writer, gone already, not ours to remove: leave it
            continue
    return removed


class _HashingWriter:
    """A write-only file object that passes bytes on to ``f`` and hashes them (what torch.save needs)."""

    def __init__(self, f):
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, data) -> int:
        self.sha256.update(data)
        return self._f.write(data)

    def flush(self) -> None:
        self._f.flush()


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` with ``torch.save`` and a SHA-256 checksum: temp file in the same folder, fsync, rename; mode 0644.

    A reader never sees a half-written file, and a crash leaves the previous
    checkpoint in place. The file is what ``torch.save`` writes followed by a
    trailer holding the SHA-256 of those bytes, which :func:`load_checkpoint`
    checks. Before writing, the temp files that killed writers of the same
    checkpoint left behind are removed (the rule: :func:`_remove_stale_temp_files`;
    a live writer's file is never touched).

    Args:
        path: the checkpoint file (a ``str`` or ``os.PathLike``); its folder is created.
        state: a dict of tensors, numbers, strings and plain containers (what
            ``torch.load(..., weights_only=True)`` reads back).

    Raises:
        CheckpointError: if the folder cannot be created or written.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        _remove_stale_temp_files(path)
        fd, tmp = _locked_temp_file(folder, _temp_prefix(path))
    except OSError as err:
        raise CheckpointError(f"cannot write a checkpoint in {folder!r}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            writer = _HashingWriter(f)
            torch.save({_FORMAT_KEY: _FORMAT_VERSION, **state}, writer)
            f.write(_TRAILER_MAGIC + writer.sha256.hexdigest().encode("ascii"))
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a checkpoint is an ordinary file
            if fcntl is not None:
                os.replace(tmp, path)  # with the lock still held: no cleaner takes the file before
        if fcntl is None:
            os.replace(tmp, path)  # Windows renames a closed file only
        _fsync_dir(folder)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _sha256_prefix(f, size: int) -> str:
    """The SHA-256 (hex) of the first ``size`` bytes of the open file ``f``."""
    h = hashlib.sha256()
    f.seek(0)
    left = size
    while left > 0:
        block = f.read(min(_CHUNK, left))
        if not block:
            break
        h.update(block)
        left -= len(block)
    return h.hexdigest()


def _torch_load(f, path: str, map_location) -> object:
    f.seek(0)
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... here
        text = str(err)
        if "Weights only load failed" in text or "weights_only" in text:
            what = "holds Python objects other than tensors and plain containers (not a course_lib checkpoint)"
        elif "zip" in text.lower() or isinstance(err, EOFError) or "central directory" in text:
            what = "is truncated or is not a torch checkpoint file"
        else:
            what = f"cannot be read ({type(err).__name__})"
        raise CheckpointError(f"checkpoint {path!r} {what}; delete it or point checkpoint_path elsewhere") from None


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`: check its SHA-256, then ``torch.load(..., weights_only=True)``.

    Every byte of the file is covered by the checksum (the torch archive by the
    digest, the digest by the comparison), so a flipped bit anywhere is refused.
    Files written before checkpoints carried a checksum (``course_lib`` before
    issue 18) are refused too: they cannot be verified (delete them and train
    afresh; no checkpoint of that format ships with the course).

    Args:
        path: the checkpoint file.
        map_location: passed to ``torch.load`` (``"cpu"``: tensors on the CPU).

    Returns:
        the ``state`` dict given to :func:`save_checkpoint` (plus a format key).

    Raises:
        CheckpointError: naming the path, when the file is missing, empty,
            truncated, not a torch file, corrupted (its checksum does not match),
            without a checksum (written before checksums), holds objects other than
            tensors and plain containers, or is not a ``course_lib`` checkpoint.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a directory, not a file")
    with open(path, "rb") as f:  # one open file: what is checked is what is loaded
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CheckpointError(f"checkpoint {path!r} is empty (0 bytes): a write was cut off; delete it to start afresh")
        if f.read(4) != b"PK\x03\x04":  # torch.save writes a zip archive
            raise CheckpointError(
                f"checkpoint {path!r} is not a torch checkpoint file (no zip header: a text file, or another format); "
                "delete it or point checkpoint_path elsewhere"
            )
        digest = None
        if size > _TRAILER_LEN:
            f.seek(size - _TRAILER_LEN)
            tail = f.read(_TRAILER_LEN)
            if tail.startswith(_TRAILER_MAGIC):
                digest = tail[len(_TRAILER_MAGIC):]
        if digest is not None and _sha256_prefix(f, size - _TRAILER_LEN).encode("ascii") != digest:
            raise CheckpointError(
                f"checkpoint {path!r} is corrupted: its SHA-256 checksum does not match its contents "
                "(a changed byte on disk or in a copy); it cannot be trusted: delete it, or resume from a good copy"
            )
        state = _torch_load(f, path, map_location)
    version = state.get(_FORMAT_KEY) if isinstance(state, dict) else None
    if digest is None:
        if version == 1:
            raise CheckpointError(
                f"checkpoint {path!r} predates checkpoint checksums (course_lib format 1): it cannot be verified, "
                "so it is not resumed; delete it (or point checkpoint_path elsewhere) to train afresh"
            )
        if version == _FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path!r} is corrupted: its SHA-256 checksum trailer is missing or damaged; "
                "delete it, or resume from a good copy"
            )
    if version != _FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path!r} is a torch file but not a course_lib training checkpoint")
    return state


def _check_checkpoint_path(path: str) -> None:
    """Refuse, before any training, a ``checkpoint_path`` that no checkpoint could be written to.

    The folder of the file is created when it is missing (as the first save would);
    then a temp file is created in it and removed again, which proves the folder
    writable (permissions, ACLs, a read-only mount) where :func:`os.access` may not.

    Raises:
        CheckpointError: naming ``checkpoint_path``: the path is a folder, its folder
            cannot be created (a file is in the way, no permission), or it is not writable.
    """
    if os.path.isdir(path):
        raise CheckpointError(
            f"checkpoint_path {path!r} is a directory; give a file path, such as {os.path.join(path, 'run.pt')!r}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        what = "is not a folder (a file has that name)" if os.path.exists(folder) else f"cannot be created ({err.strerror})"
        raise CheckpointError(
            f"checkpoint_path {path!r}: its folder {folder!r} {what}; choose another checkpoint_path"
        ) from None
    try:
        fd, tmp = _locked_temp_file(folder, _temp_prefix(path))
    except OSError as err:
        raise CheckpointError(
            f"checkpoint_path {path!r}: its folder {folder!r} is not writable ({err.strerror}); "
            "choose a writable checkpoint_path"
        ) from None
    try:
        os.remove(tmp)
    except OSError:
        pass
    finally:
        os.close(fd)
