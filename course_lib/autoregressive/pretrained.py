"""Shipped autoregressive models: :func:`save_pretrained`, :func:`load_pretrained`.

Part of :mod:`course_lib.autoregressive`. The file format, its embedded SHA-256,
the verified atomic write and the checks on reading are those of
:mod:`course_lib.pretrained` (kind ``"autoregressive"``); this module decides
what goes in (the model's class and constructor arguments, its weights, the
metadata) and rebuilds the model.

The shipped class-conditional Gated PixelCNN, ``course_lib/assets/gated_pixelcnn_mnist.pt``
(:data:`PRETRAINED_PATH`), is written by ``scripts/make_pixelcnn_checkpoint.py`` with
``save_pretrained(..., flat=True)``: the layout of the first shipped file (a plain
``torch.save`` of ``{"arch", "state_dict", "test_nll_nats", "steps", "seed"}``, which
Chapters 2 and 3 read with ``torch.load`` directly), now with the embedded digest.
:func:`load_pretrained` reads it, pinned to its SHA-256 (:data:`PRETRAINED_SHA256`).
"""

from __future__ import annotations

import os

import torch

from course_lib import checks
from course_lib.autoregressive.core import AutoregressiveModel, GatedPixelCNN, PixelCNN
from course_lib.autoregressive.pixelrnn import DiagonalBiLSTM, RowLSTM

__all__ = ["save_pretrained", "load_pretrained", "PRETRAINED_PATH", "PRETRAINED_SHA256"]

#: The class-conditional Gated PixelCNN shipped with ``course_lib`` (binarized MNIST, 10 classes).
PRETRAINED_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "gated_pixelcnn_mnist.pt")
#: The SHA-256 of the shipped file; :func:`load_pretrained` checks it whenever it reads that file.
PRETRAINED_SHA256 = "4e942a3772985194710ba4ccf01d9e3db79141d657aafed88d2fd71a823da725"

KIND = "autoregressive"
_MODELS = {cls.__name__: cls for cls in (PixelCNN, GatedPixelCNN, RowLSTM, DiagonalBiLSTM)}
_MAKE_HINT = ": run scripts/make_pixelcnn_checkpoint.py to make it"


def save_pretrained(model: AutoregressiveModel, path: str | os.PathLike, *, flat: bool = False, **metadata) -> str:
    """Save ``model`` for shipping: its class, constructor arguments, weights (their dtype kept) and ``metadata``.

    Written by :func:`course_lib.pretrained.save`: the metadata is checked and
    converted first, the file carries a SHA-256 of its bytes, and it is read back
    with ``weights_only=True`` and compared before it replaces ``path``, so a file
    that :func:`load_pretrained` would refuse never replaces a good one.

    Args:
        model: a :class:`PixelCNN`, :class:`GatedPixelCNN`, :class:`RowLSTM` or
            :class:`DiagonalBiLSTM` (not a subclass: the file names the class); its
            weights must be finite.
        path: the file to write (its folder is created).
        flat: write the layout of the shipped file (a :class:`GatedPixelCNN` only):
            ``{"arch": <constructor arguments>, "state_dict", **metadata}``, the
            metadata beside ``arch`` and no class name in it, which Chapters 2 and 3
            read with ``torch.load(..., weights_only=True)`` directly
            (``GatedPixelCNN(**saved["arch"])``, ``saved["test_nll_nats"]``).
            :func:`load_pretrained` reads both layouts.
        metadata: numbers, strings, bools, None, or lists/tuples/dicts of them (e.g.
            ``test_nll_nats``, ``steps``, ``seed``). NumPy scalars and 0-d tensors
            are stored as Python numbers.

    Returns:
        the file's SHA-256 (hex), to pin where it is loaded (``load_pretrained(path, sha256=...)``).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): a ``model`` of another
            class, a metadata entry that cannot be stored (named, e.g. ``metadata['nll']``).
        ValueError: a weight with NaN or infinite entries (named).
        course_lib.pretrained.PretrainedFileError: ``path`` cannot be written (it is then unchanged).
    """
    from course_lib import pretrained  # the shared format (imported here: importing the chapter does not need it)

    if type(model) not in _MODELS.values():
        raise checks.ArgumentTypeError(
            f"model must be one of {', '.join(_MODELS)} (the class is stored by name), got {type(model).__name__}"
        )
    state = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"model weight {name!r} has NaN or infinite entries (a diverged run?); not saved")
        state[name] = value
    if flat:
        if type(model) is not GatedPixelCNN:
            raise ValueError(f"flat=True writes the shipped file's layout, which holds a GatedPixelCNN; got {type(model).__name__}")
        clash = [k for k in metadata if k in ("arch", "state_dict", "metadata")]
        if clash:
            raise ValueError(f"metadata must not use the keys {clash} with flat=True (they are the file's own)")
        return pretrained.save(path, {"arch": dict(model._arch), "state_dict": state, **metadata}, kind=KIND)
    arch = {"model": type(model).__name__, **model._arch}
    return pretrained.save(path, {"arch": arch, "state_dict": state, "metadata": metadata}, kind=KIND)


def _is_shipped(path: str) -> bool:
    try:
        return os.path.samefile(path, PRETRAINED_PATH)
    except OSError:  # either file missing: the loader says which
        return False


def load_pretrained(path: str | os.PathLike = PRETRAINED_PATH, sha256: str | None = None) -> tuple[AutoregressiveModel, dict]:
    """Load a model written by :func:`save_pretrained` (or the shipped Gated PixelCNN), with ``weights_only=True``.

    The file is read once and checked by :func:`course_lib.pretrained.load`: its
    embedded digest on every load, and its whole SHA-256 against ``sha256`` when
    given. A file without an embedded digest (written before issue 18, such as the
    shipped one) is loaded only with a matching ``sha256``; for the shipped file
    :data:`PRETRAINED_SHA256` is used when ``sha256`` is None. The model is then
    rebuilt from the stored class and constructor arguments and its weights loaded
    strictly.

    Class-conditional samples from the shipped model:
    ``model.sample(n, (1, 28, 28), generator=g, y=labels)`` with ``labels`` an (n,)
    integer tensor of digits 0..9 gives (n, 1, 28, 28) binary images;
    ``model.log_prob(x, y=labels)`` gives log p(x | y) in nats.

    Args:
        path: the file (a str or ``os.PathLike``); by default the shipped
            :data:`PRETRAINED_PATH`.
        sha256: the expected SHA-256 of the whole file, 64 hex digits, upper or
            lower case (``None``: the embedded digest only, or
            :data:`PRETRAINED_SHA256` for the shipped file).

    Returns:
        ``(model, metadata)``: the model on the CPU in eval mode, in the dtype of
        the stored weights (move it with ``.to(device)``), and the metadata dict
        (for the shipped file ``test_nll_nats``, -log p(x | y) in nats per image on
        the 1,000 embedded test digits, held out from its training;
        ``official_test_nll_nats`` on the first 1,000 official test digits;
        ``likelihood_class_accuracy``, how often argmax_c log p(x | c) is the true
        class of 500 official test digits; ``steps``, ``epochs``, ``seed``, ``source``,
        ``train_digits``, ``stop_reason``).

    Raises:
        course_lib.pretrained.PretrainedFileError (a ``course_lib.training.CheckpointError``
            and a ``ValueError``): naming the path, when the file is missing, a
            directory, empty, truncated, corrupt (its embedded digest does not
            match), of another SHA-256 than ``sha256``, without a digest and no
            ``sha256``, not loadable with ``weights_only=True``, of another kind, or
            when its class, constructor arguments or weights do not make a model
            (non-finite weights included).
        ValueError: a ``sha256`` that is not 64 hex digits.
        ArgumentTypeError (a TypeError and a ValueError): a ``path`` that is not a
            str or path, a ``sha256`` that is not a str.

    References:
        van den Oord et al. 2016, "Conditional Image Generation with PixelCNN
        Decoders", §2.3 (eq. 4, conditioning on a class).
    """
    from course_lib import pretrained

    if sha256 is None and isinstance(path, (str, os.PathLike)) and _is_shipped(os.fspath(path)):
        sha256 = PRETRAINED_SHA256
    saved = pretrained.load(path, kind=KIND, sha256=sha256, missing_hint=_MAKE_HINT)
    path = os.fspath(path)

    def refuse(what: str):
        raise pretrained.PretrainedFileError(f"pretrained file {path!r} {what}")

    arch, state = saved.get("arch"), saved.get("state_dict")
    if not (isinstance(arch, dict) and isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())):
        refuse("is a torch file but not an autoregressive model from save_pretrained (it needs 'arch' and 'state_dict')")
    if "metadata" in saved:
        metadata = saved["metadata"]
    else:  # the format of the shipped file, before save_pretrained: the metadata sits beside arch
        metadata = {k: v for k, v in saved.items() if k not in ("arch", "state_dict")}
    if not isinstance(metadata, dict):
        refuse("has a 'metadata' entry that is not a dict")
    arch = dict(arch)
    name = arch.pop("model", "GatedPixelCNN")  # files before save_pretrained hold a GatedPixelCNN
    if name not in _MODELS:
        refuse(f"holds a model of class {name!r}; this course_lib builds {', '.join(_MODELS)}")
    floating = [v.dtype for v in state.values() if v.is_floating_point()]
    try:
        model = _MODELS[name](**arch).to(floating[0] if floating else torch.float32)
        model.load_state_dict(state)
    except (TypeError, ValueError, RuntimeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        refuse(f"does not describe a {name} this course_lib can build from {arch!r} "
               f"({type(err).__name__}: {' '.join(lines[:2])})")
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        refuse(f"holds NaN or infinite weights ({', '.join(bad[:3])})")
    return model.eval(), metadata
