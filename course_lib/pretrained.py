"""Pretrained-weight files that ship with the course: checked metadata, an embedded SHA-256, verified writes.

The generic part of ``vae.save_pretrained`` / ``vae.load_pretrained`` (and of any
other chapter's shipped weights): the model code decides what goes into the payload
(an architecture dict, a ``state_dict``, metadata) and how to rebuild the model;
this module writes and reads the file.

**The file.** What ``torch.save`` writes (a zip archive, loadable with
``torch.load(..., weights_only=True)``) of the dict
``{"format": "course_lib.pretrained", "version": 1, "kind": <kind>, **payload}``,
whose zip *archive comment* (the standard free-text field at the very end of a zip
file) is ``course_lib.pretrained sha256=`` followed by the 64 hex digits of the
SHA-256 of every byte before those digits. The file stays an ordinary torch file
and a valid zip (``torch.load`` and ``unzip`` read it as before), and every byte is
covered: a changed byte in the archive changes the digest, a changed digit no longer
matches, so :func:`load` refuses a file with any flipped byte (tested for random
flips in ``tests/test_pretrained_corruption.py``). The digest detects accidental
damage (a bad download, a truncated copy, a disk error), not deliberate edits: pin
the whole file's SHA-256 with ``sha256=`` for that, as the chapters do.

**Writes.** :func:`save` converts and checks the metadata first
(:func:`plain_metadata`: NumPy scalars and 0-d tensors become Python numbers, other
objects are refused naming their key), writes a temp file in the target folder,
fsyncs it, reads it back and checks it exactly as :func:`load` will (digest,
``weights_only=True``, the same values), and only then renames it over ``path``. A
file that could not be read back never replaces a good one.

**Files without a digest** (``course_lib`` before issue 18 wrote plain ``torch.save``
files): :func:`load` accepts one only when ``sha256=`` is given and equals the whole
file's SHA-256 (the chapters pin it), and refuses it otherwise with a
:class:`PretrainedFileError` saying that the file predates embedded digests. Re-save
it with the chapter's ``save_pretrained`` to add one.

Errors: every problem with a file is a :class:`PretrainedFileError`, a
:class:`course_lib.training.CheckpointError` (the error ``training.load_checkpoint``
gives) that is also a ``ValueError`` (what ``vae.load_pretrained`` raised before),
and its message names the path.
"""

from __future__ import annotations

import hashlib
import io
import math
import numbers
import os
import tempfile

import numpy as np
import torch

from course_lib import checks
from course_lib.data._io import _fsync_dir, _normal_mode, _remove_quietly
from course_lib.training import CheckpointError

__all__ = ["PretrainedFileError", "FORMAT", "VERSION", "plain_metadata", "save", "load", "file_sha256"]

FORMAT = "course_lib.pretrained"
"""The value of the file's ``"format"`` key."""
VERSION = 1
"""The value of the file's ``"version"`` key (1: the first format with an embedded digest)."""

_DIGEST_PREFIX = b"course_lib.pretrained sha256="
_COMMENT_LEN = len(_DIGEST_PREFIX) + 64
_EOCD = b"PK\x05\x06"  # zip end-of-central-directory record: 22 bytes, then the comment
_EOCD_LEN = 22
_RESERVED = ("format", "version", "kind")
_PLAIN = (bool, int, float, str, type(None))
_HEX = frozenset("0123456789abcdef")


class PretrainedFileError(CheckpointError, ValueError):
    """A pretrained file that cannot be used (missing, empty, truncated, corrupt, foreign, another version).

    A :class:`course_lib.training.CheckpointError`, as from ``training.load_checkpoint``,
    and a ``ValueError``, as ``vae.load_pretrained`` raised before. The message names the path.
    """


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 (hex, lower case) of the whole file: what ``sha256=`` of :func:`load` compares with."""
    h = hashlib.sha256()
    with open(os.fspath(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------
# Metadata: what weights_only=True reads back
# ----------------------------------------------------------------------------
def _plain_value(where: str, value):
    if type(value) in _PLAIN:
        return value
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return _plain_value(where, value.item())  # np.float64(89.0) -> 89.0
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return _plain_value(where, value.item())
    if isinstance(value, numbers.Integral):  # an IntEnum, say
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        items = [_plain_value(f"{where}[{i}]", v) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if type(k) not in (str, int):
                raise checks.ArgumentTypeError(f"{where} must have str or int keys, got the key {k!r} ({type(k).__name__})")
            out[k] = _plain_value(f"{where}[{k!r}]", v)
        return out
    hint = " (convert it with .tolist())" if isinstance(value, (np.ndarray, torch.Tensor)) else ""
    raise checks.ArgumentTypeError(
        f"{where} must be a number, str, bool, None, or a list, tuple or dict of them (what "
        f"torch.load(weights_only=True) reads back), got {type(value).__module__}.{type(value).__qualname__}{hint}"
    )


def plain_metadata(metadata, name: str = "metadata") -> dict:
    """``metadata`` as plain Python that ``torch.load(..., weights_only=True)`` reads back unchanged.

    NumPy scalars (``np.float64(89.0)``), 0-d arrays and 0-d tensors become Python
    numbers (``.item()``); ``bool``, ``int``, ``float``, ``str`` and ``None`` are kept,
    lists, tuples and dicts are converted element by element.

    Args:
        metadata: a dict with str keys.
        name: the argument's name, for messages (entries are named ``name['key']``).

    Returns:
        a new dict.

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``metadata`` is not a dict with str
            keys, or an entry is something else (a multi-element array or tensor, an
            arbitrary object); the message names the entry, e.g. ``metadata['nll']``.
    """
    if not isinstance(metadata, dict):
        raise checks.ArgumentTypeError(f"{name} must be a dict, got {type(metadata).__name__}")
    out = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise checks.ArgumentTypeError(f"{name} keys must be str, got {key!r} ({type(key).__name__})")
        out[str(key)] = _plain_value(f"{name}[{key!r}]", value)
    return out


# ----------------------------------------------------------------------------
# Payload equality (the read-back check)
# ----------------------------------------------------------------------------
def _same(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.is_floating_point() or a.is_complex():
            return torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(), b.nan_to_num())
        return torch.equal(a, b)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


# ----------------------------------------------------------------------------
# The digest in the zip comment
# ----------------------------------------------------------------------------
def _with_digest(archive: bytes) -> bytes:
    """``archive`` (what torch.save wrote, no zip comment) with the digest comment appended."""
    if len(archive) < _EOCD_LEN or archive[-_EOCD_LEN:-_EOCD_LEN + 4] != _EOCD or archive[-2:] != b"\x00\x00":
        raise RuntimeError("torch.save wrote a zip archive that does not end with a comment-free end record")
    head = archive[:-2] + _COMMENT_LEN.to_bytes(2, "little") + _DIGEST_PREFIX
    return head + hashlib.sha256(head).hexdigest().encode("ascii")


def _check_bytes(blob: bytes, path: str, sha256: str | None) -> bool:
    """Raise unless ``blob`` is a sound file; True when it carries a (verified) embedded digest."""
    def refuse(what: str):
        raise PretrainedFileError(f"pretrained file {path!r} {what}")

    if len(blob) == 0:
        refuse("is empty (0 bytes): a download or copy was cut off")
    if blob[:4] != b"PK\x03\x04":  # torch.save writes a zip archive
        refuse("is not a course_lib pretrained file (no zip header: a text file, or another format)")
    eocd = blob.rfind(_EOCD, max(0, len(blob) - _EOCD_LEN - 0xFFFF))  # a zip comment has at most 65535 bytes
    if eocd < 0 or len(blob) - eocd < _EOCD_LEN:
        refuse("is truncated or damaged: it has no zip end record (its end is missing); download or re-make it")
    declared = int.from_bytes(blob[eocd + 20:eocd + 22], "little")  # the comment length the end record gives
    comment = blob[eocd + _EOCD_LEN:]
    has_digest = len(comment) > 0 or declared > 0
    if comment.startswith(_DIGEST_PREFIX):
        stored = comment[len(_DIGEST_PREFIX):].decode("ascii", errors="replace")
        if len(comment) != _COMMENT_LEN or declared != _COMMENT_LEN or not set(stored) <= _HEX:
            refuse("is truncated or damaged: the SHA-256 digest at its end is cut off or altered; download or re-make it")
        if hashlib.sha256(blob[:-64]).hexdigest() != stored:
            refuse("is corrupt: its contents do not match the SHA-256 digest stored in it (a changed byte on disk, "
                   "or a damaged download or copy); download or re-make it")
    elif len(comment) > declared:
        refuse(f"has {len(comment) - declared} bytes after its zip archive that are not a course_lib.pretrained "
               "digest: a damaged file, or not a pretrained file (a training checkpoint from save_checkpoint?)")
    elif len(comment) < declared:
        refuse("is truncated: its end is missing; download or re-make it")
    elif has_digest:
        refuse("is damaged, or not a course_lib pretrained file: its zip comment is not a course_lib.pretrained digest")
    if sha256 is not None:
        digest = hashlib.sha256(blob).hexdigest()
        if digest != sha256:
            refuse(f"has SHA-256 {digest}, expected {sha256}: the file is corrupt or another version")
    elif not has_digest:
        refuse("has no embedded SHA-256 digest: it predates digests (course_lib before issue 18) or is a plain "
               "torch file, so it cannot be verified; pass sha256= with its known SHA-256 to load it, or re-save "
               "it with save_pretrained")
    return has_digest


def _torch_load(blob: bytes, path: str):
    # Reached only by bytes the digest (or the pinned sha256) vouches for: what fails here is a file
    # written by other code (a plain torch.save of Python objects, or a file damaged before it was pinned).
    try:
        return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... here
        raise PretrainedFileError(
            f"pretrained file {path!r} cannot be read by torch.load(weights_only=True): it holds Python objects "
            f"other than tensors and plain containers, or is damaged ({type(err).__name__})"
        ) from None


def _payload(blob: bytes, path: str, kind: str, sha256: str | None) -> dict:
    has_digest = _check_bytes(blob, path, sha256)
    saved = _torch_load(blob, path)
    if not isinstance(saved, dict):
        raise PretrainedFileError(
            f"pretrained file {path!r} is a torch file but not a course_lib pretrained file "
            f"(it holds a {type(saved).__name__}, not a dict)"
        )
    if has_digest or "format" in saved:
        if saved.get("format") != FORMAT:
            raise PretrainedFileError(f"pretrained file {path!r} is a torch file but not a course_lib pretrained file")
        if saved.get("version") != VERSION:
            raise PretrainedFileError(
                f"pretrained file {path!r} has format version {saved.get('version')!r}; this course_lib reads "
                f"version {VERSION} (a newer course_lib wrote it?)"
            )
        if saved.get("kind") != kind:
            raise PretrainedFileError(
                f"pretrained file {path!r} holds a {saved.get('kind')!r} model, not a {kind!r} one"
            )
    return {k: v for k, v in saved.items() if k not in _RESERVED}


def _check_sha256(sha256) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str):
        raise checks.ArgumentTypeError(f"sha256 must be a str of 64 hex digits or None, got {type(sha256).__name__}")
    digest = sha256.strip().lower()
    if len(digest) != 64 or not set(digest) <= _HEX:
        raise ValueError(f"sha256 must be 64 hex digits (a SHA-256), got {sha256!r}")
    return digest


def _fspath(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise checks.ArgumentTypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):
        raise checks.ArgumentTypeError(f"path must be a str or os.PathLike of a str, got {type(path).__name__}")
    return path


# ----------------------------------------------------------------------------
# Save and load
# ----------------------------------------------------------------------------
def save(path: str | os.PathLike, payload: dict, *, kind: str) -> str:
    """Write ``payload`` (tensors, plain values, plain containers) with its digest, verified, atomically.

    Steps: check ``payload`` (its ``"metadata"`` entry, if any, through
    :func:`plain_metadata`; tensors are detached and moved to the CPU), ``torch.save``
    it with the format keys into memory, add the digest comment, write a temp file in
    the target folder, fsync, read the temp file back and check it as :func:`load`
    does (digest, ``weights_only=True``, every value equal to what was meant), then
    rename it over ``path`` (mode 0644). On any failure the temp file is removed and
    ``path`` is left as it was.

    Args:
        path: the file to write (its folder is created).
        payload: a dict with str keys other than ``"format"``, ``"version"``, ``"kind"``.
        kind: what the file holds (``"vae"``); :func:`load` refuses another kind.

    Returns:
        the SHA-256 (hex) of the whole file, to pin with ``load(..., sha256=...)``.

    Raises:
        ArgumentTypeError (TypeError and ValueError): a metadata entry or payload value
            that ``weights_only=True`` cannot read back (the message names its key).
        ValueError: a reserved key in ``payload``.
        PretrainedFileError: the folder cannot be written, or the written file did not
            read back identically (``path`` is then unchanged).
    """
    path = _fspath(path)
    if not isinstance(kind, str) or not kind:
        raise checks.ArgumentTypeError(f"kind must be a non-empty str, got {kind!r}")
    if not isinstance(payload, dict):
        raise checks.ArgumentTypeError(f"payload must be a dict, got {type(payload).__name__}")
    clash = [k for k in payload if k in _RESERVED]
    if clash:
        raise ValueError(f"payload must not use the reserved keys {_RESERVED}, got {clash}")
    content = {"format": FORMAT, "version": VERSION, "kind": kind}
    for key, value in payload.items():
        if key == "metadata":
            content[key] = plain_metadata(value)
        else:
            content[key] = _plain_payload(f"payload[{key!r}]", value)
    buffer = io.BytesIO()
    torch.save(content, buffer)
    blob = _with_digest(buffer.getvalue())

    def verify(back: bytes) -> None:
        try:
            _check_bytes(back, path, None)
            loaded = torch.load(io.BytesIO(back), map_location="cpu", weights_only=True)
        except Exception as err:
            raise PretrainedFileError(
                f"pretrained file {path!r} was not written: the new file does not read back with "
                f"torch.load(weights_only=True) ({type(err).__name__}: {err}); the previous file is unchanged"
            ) from None
        if back != blob or not _same(loaded, content):
            raise PretrainedFileError(
                f"pretrained file {path!r} was not written: the new file read back differently; "
                "the previous file is unchanged"
            )

    _write_verified(path, blob, verify)
    return hashlib.sha256(blob).hexdigest()


def _plain_payload(where: str, value):
    """Tensors (detached, on the CPU) and plain values, recursively."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str):
                raise checks.ArgumentTypeError(f"{where} keys must be str, got {k!r}")
        return {k: _plain_payload(f"{where}[{k!r}]", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain_payload(f"{where}[{i}]", v) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return _plain_value(where, value)


def _write_verified(path: str, blob: bytes, verify) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise PretrainedFileError(f"pretrained file {path!r} is a directory; give a file path")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".part")
    except OSError as err:
        raise PretrainedFileError(f"pretrained file {path!r} cannot be written in {folder!r}: {err.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        with open(tmp, "rb") as f:
            verify(f.read())
        _normal_mode(tmp)
        os.replace(tmp, path)
    except OSError as err:
        _remove_quietly(tmp)
        raise PretrainedFileError(f"pretrained file {path!r} cannot be written: {err.strerror or err}") from None
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(folder)


def load(path: str | os.PathLike, *, kind: str, sha256: str | None = None, missing_hint: str = "") -> dict:
    """Read a file written by :func:`save`: check it, then ``torch.load(..., weights_only=True)``.

    The file is read once, into memory; what is checked is what is loaded. Checks,
    in order: it exists and is a file, is not empty, is a zip archive, its embedded
    digest matches every byte (or, for a file without one, ``sha256`` is given),
    its SHA-256 equals ``sha256`` (when given), ``torch.load`` with
    ``weights_only=True`` reads it, and it is a course_lib pretrained file of this
    ``kind`` and format version.

    Args:
        path: the file.
        kind: the kind of model the caller expects (``"vae"``).
        sha256: the expected SHA-256 of the whole file (64 hex digits; any case,
            surrounding whitespace ignored), or None: then only the embedded digest
            is checked, and a file without one is refused.
        missing_hint: appended to the message for a missing file (how to make it).

    Returns:
        the payload dict given to :func:`save` (without the format keys). A file
        without a digest (accepted only with a matching ``sha256``) gives the dict
        it holds.

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``path`` or ``sha256`` of the wrong type.
        ValueError: ``sha256`` not 64 hex digits.
        PretrainedFileError (a CheckpointError and a ValueError): naming the path, when the
            file is missing, a directory, empty, not a zip archive, truncated, corrupt (the
            embedded digest does not match), without a digest and no ``sha256`` given, of
            another SHA-256 than ``sha256``, unreadable with ``weights_only=True``, or not a
            course_lib pretrained file of this kind.
    """
    path = _fspath(path)
    sha256 = _check_sha256(sha256)
    if not os.path.exists(path):
        raise PretrainedFileError(f"pretrained file {path!r} does not exist{missing_hint}")
    if os.path.isdir(path):
        raise PretrainedFileError(f"pretrained file {path!r} is a directory, not a file")
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as err:
        raise PretrainedFileError(f"pretrained file {path!r} cannot be read: {err.strerror or err}") from None
    return _payload(blob, path, kind, sha256)
