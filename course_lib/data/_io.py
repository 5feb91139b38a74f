"""File helpers shared by the data cache and the checkpoint writers: hashing, atomic writes, fsync.

Part of :mod:`course_lib.data`, which re-exports every name. Private to the
library: :mod:`course_lib.training` uses :func:`_fsync_dir` for its durable
checkpoint renames, :mod:`course_lib.vae` uses :func:`_atomic_write_bytes`
for its pretrained weights, :mod:`course_lib.data.mnist` all of them.
"""

from __future__ import annotations

import hashlib
import os
import tempfile


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync_dir(directory) -> None:
    # Make the rename durable; not possible (nor needed) everywhere.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write_bytes(path, data: bytes, prefix: str | None = None) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    prefix = "." + os.path.basename(path) + "." if prefix is None else prefix
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _normal_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)


def _normal_mode(path) -> None:
    """mkstemp makes files 0600; a cached data file is an ordinary file (0644 under the usual umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _remove_quietly(path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
