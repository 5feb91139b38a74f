"""The shipped class-conditional Gated PixelCNN: :func:`load_pretrained`.

Part of :mod:`course_lib.autoregressive`. The file
``course_lib/assets/gated_pixelcnn_mnist.pt`` is written by
``scripts/make_pixelcnn_checkpoint.py``: a dict, loadable with
``torch.load(..., weights_only=True)``, holding

==================  ============================================================
key                 what it is
==================  ============================================================
``arch``            the :class:`GatedPixelCNN` constructor arguments (a dict)
``state_dict``      the model's weights
``test_nll_nats``   -log p(x | y) on the 1,000 embedded test digits, nats/image
``steps``, ``seed`` the training steps and the seed of the run
==================  ============================================================
"""

from __future__ import annotations

import hashlib
import io
import os
import string

import torch

from course_lib import checks
from course_lib.autoregressive.core import GatedPixelCNN
from course_lib.training import CheckpointError

__all__ = ["load_pretrained", "PRETRAINED_PATH"]

#: The class-conditional Gated PixelCNN shipped with ``course_lib`` (binarized MNIST, 10 classes).
PRETRAINED_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "gated_pixelcnn_mnist.pt")


def _expected_digest(sha256) -> str | None:
    if sha256 is None:
        return None
    if not isinstance(sha256, str):
        raise checks.ArgumentTypeError(f"sha256 must be a hex string of 64 characters or None, got {type(sha256).__name__}")
    digest = sha256.strip().lower()
    if len(digest) != 64 or any(ch not in string.hexdigits for ch in digest):
        raise ValueError(f"sha256 must be 64 hexadecimal characters (a SHA-256 digest), got {sha256!r}")
    return digest


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise CheckpointError(f"pretrained model {path!r} does not exist") from None
    except IsADirectoryError:
        raise CheckpointError(f"pretrained model {path!r} is a directory, not a file") from None
    except OSError as err:
        raise CheckpointError(f"pretrained model {path!r} cannot be read: {err.strerror or err}") from None


def load_pretrained(path: str | os.PathLike = PRETRAINED_PATH, *, sha256: str | None = None) -> tuple[GatedPixelCNN, dict]:
    """Load a class-conditional Gated PixelCNN saved by ``scripts/make_pixelcnn_checkpoint.py``.

    The file is read once; its SHA-256 is checked against ``sha256`` when one
    is given, then it is loaded with ``torch.load(..., weights_only=True)``
    (no Python objects are unpickled), the model is rebuilt from the stored
    constructor arguments and the weights are loaded strictly.

    Class-conditional samples: ``model.sample(n, (1, 28, 28), generator=g, y=labels)``
    with ``labels`` an (n,) integer tensor of digits 0..9 gives (n, 1, 28, 28)
    binary images; ``model.log_prob(x, y=labels)`` gives log p(x | y) in nats.

    Args:
        path: the file (a str or ``os.PathLike``); by default the shipped
            :data:`PRETRAINED_PATH`.
        sha256: the expected SHA-256 of the file, 64 hex characters, upper or
            lower case (``None``: not checked).

    Returns:
        ``(model, metadata)``: the :class:`GatedPixelCNN` on the CPU in eval mode
        (move it with ``.to(device)``), and a dict with ``arch`` (the constructor
        arguments), the file's other entries (``test_nll_nats`` in nats per
        image, ``steps``, ``seed`` for the shipped file), ``path`` and ``sha256``
        (the digest of the bytes read).

    Raises:
        CheckpointError: naming the path, when the file is missing, a directory,
            unreadable, empty, truncated, not a torch file, holds Python objects
            other than tensors and plain containers, lacks ``arch`` or
            ``state_dict``, stores constructor arguments or weights that do not
            fit a GatedPixelCNN, holds non-finite weights, or does not match ``sha256``.
        ValueError: a ``sha256`` that is not 64 hexadecimal characters.
        ArgumentTypeError (a TypeError and a ValueError): a ``path`` that is not
            a str or path, a ``sha256`` that is not a str.

    References:
        van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
        Decoders", §2.3 (eq. 4, conditioning on a class).
    """
    if not isinstance(path, (str, os.PathLike)) or isinstance(os.fspath(path), bytes):
        raise checks.ArgumentTypeError(f"path must be a str or os.PathLike path, got {type(path).__name__}")
    path = os.fspath(path)
    expected = _expected_digest(sha256)
    blob = _read(path)
    digest = hashlib.sha256(blob).hexdigest()
    if expected is not None and digest != expected:
        raise CheckpointError(
            f"pretrained model {path!r} has SHA-256 {digest}, expected {expected}: "
            "the file is corrupted or is another version"
        )
    if not blob:
        raise CheckpointError(f"pretrained model {path!r} is empty (0 bytes)")
    if not blob.startswith(b"PK\x03\x04"):  # torch.save writes a zip archive
        raise CheckpointError(f"pretrained model {path!r} is not a torch file (no zip header)")
    try:
        saved = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... here
        text = str(err)
        if "weights_only" in text or "Weights only load failed" in text:
            what = "holds Python objects other than tensors and plain containers"
        else:
            what = f"is truncated or is not a torch file ({type(err).__name__})"
        raise CheckpointError(f"pretrained model {path!r} {what}") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("arch"), dict) or not isinstance(saved.get("state_dict"), dict):
        raise CheckpointError(
            f"pretrained model {path!r} is a torch file but not a Gated PixelCNN checkpoint "
            "(a dict with 'arch' and 'state_dict', as scripts/make_pixelcnn_checkpoint.py writes)"
        )
    arch = dict(saved["arch"])
    try:
        model = GatedPixelCNN(**arch)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"pretrained model {path!r} stores constructor arguments {arch!r} that GatedPixelCNN refuses: {err}") from None
    try:
        model.load_state_dict(saved["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:
        first = str(err).strip().splitlines()
        raise CheckpointError(
            f"pretrained model {path!r}: its weights do not fit GatedPixelCNN(**{arch!r})"
            + (f" ({first[0]} {first[1].strip()})" if len(first) > 1 else "")
        ) from None
    bad = [name for name, p in model.state_dict().items() if p.is_floating_point() and not bool(torch.isfinite(p).all())]
    if bad:
        raise CheckpointError(f"pretrained model {path!r} holds non-finite weights ({', '.join(bad[:3])})")
    metadata = {k: v for k, v in saved.items() if k != "state_dict"}
    metadata.update(arch=arch, path=path, sha256=digest)
    return model.eval(), metadata
