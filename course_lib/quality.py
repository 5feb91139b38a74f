"""Sample quality of MNIST generators: a small classifier, the MNIST Inception score, the confident fraction.

One measure shared by the generative chapters (1-3) and ``benchmarks/``: a
small convolutional MNIST classifier (:class:`MNISTClassifier`, shipped as
``course_lib/assets/mnist_classifier.pt``, made by
``scripts/make_classifier_checkpoint.py``) gives class probabilities p(y | x)
for every sample x, and from them

* the **MNIST Inception score** (Salimans et al. 2016, §4; computed here with
  an MNIST classifier instead of the ImageNet Inception network, as is usual for
  MNIST):

      IS = exp( E_x KL( p(y | x) || p(y) ) ),   p(y) = E_x p(y | x),

  with both expectations the means over the N samples given (one split, not the
  paper's 10). It lies in [1, 10]: 1 when every sample gets the same class
  distribution (a constant image, noise the classifier sees alike, one class
  only), 10 when every sample is classified with certainty and the 10 classes
  are equally frequent. It rewards samples that are *recognisable* (confident
  p(y | x)) and *diverse* (a uniform p(y)); it does not see whether the samples
  are copies of the training digits.
* the **confident fraction**: the fraction of samples with max_y p(y | x) >= 0.9
  (by default), i.e. that the classifier reads as one digit with confidence.
* for a class-conditional model, the **class agreement**: the fraction of samples
  whose predicted class (argmax_y p(y | x)) is the class asked for (chance: 0.1).

Real digits give the reference row: the official MNIST test digits score
about 9.4, with 95 % of them confident (see :data:`REFERENCE`).

Inputs: images with values in [0, 1] (grey, e.g. Bernoulli means) or in {0, 1}
(binary samples), as a tensor or NumPy array of shape (N, 1, 28, 28),
(N, 28, 28) or (N, 784), any floating or bool dtype. Pixel values 0..255 are
refused (divide by 255 first). The classifier was trained on both grey and
stochastically binarized digits, so both kinds of sample are read alike.

References:
    T. Salimans, I. Goodfellow, W. Zaremba, V. Cheung, A. Radford, X. Chen,
    "Improved Techniques for Training GANs", NeurIPS 2016 (arXiv:1606.03498),
    §4 (the Inception score, exp(E_x KL(p(y|x) || p(y)))).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from course_lib import checks
from course_lib.training import RunOptions, TrainingRun

__all__ = [
    "MNISTClassifier",
    "CLASSIFIER_PATH",
    "CLASSIFIER_SHA256",
    "CONFIDENCE",
    "REFERENCE",
    "as_images",
    "class_probabilities",
    "inception_score_from_probs",
    "confident_fraction_from_probs",
    "inception_score",
    "confident_fraction",
    "sample_quality",
    "format_quality",
    "ClassifierConfig",
    "train_classifier",
    "accuracy",
    "save_classifier",
    "load_classifier",
]

#: The shipped classifier file.
CLASSIFIER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "mnist_classifier.pt")
#: Its SHA-256, checked by :func:`load_classifier` whenever it reads that file.
CLASSIFIER_SHA256 = "58c90629b2a64b55cb215737cb457c078917eb8abc432f713dc3534a89463957"
#: The default confidence threshold of the confident fraction.
CONFIDENCE = 0.9
#: The reference rows: the shipped classifier on the 10,000 official MNIST test digits, grey
#: (intensity / 255) and binarized (one stochastic binarization, seed 1), measured by
#: ``scripts/make_classifier_checkpoint.py`` (also stored in the file's metadata). Its test
#: accuracy: 0.9825 grey, 0.9766 binarized.
REFERENCE = {
    "grey": {"inception_score": 9.405, "confident_fraction": 0.947, "accuracy": 0.9825, "n": 10_000},
    "binarized": {"inception_score": 9.320, "confident_fraction": 0.939, "accuracy": 0.9766, "n": 10_000},
}

KIND = "mnist_classifier"
NUM_CLASSES = 10


# ----------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------
class MNISTClassifier(nn.Module):
    """A small convolutional MNIST classifier: images in [0, 1] -> 10 logits.

    conv 3x3 (1 -> c1), ReLU, max-pool 2, conv 3x3 (c1 -> c2), ReLU, max-pool 2,
    linear (c2*7*7 -> hidden), ReLU, dropout, linear (hidden -> 10). About 0.2 M
    parameters with the defaults.

    Args:
        channels: (c1, c2), positive ints.
        hidden: width of the hidden linear layer (positive int).
        dropout: dropout probability before the last layer, in [0, 1).

    Shapes: ``forward``: (N, 1, 28, 28) floats in [0, 1] -> (N, 10) logits.

    Raises:
        ValueError, ArgumentTypeError: a size out of range or not an int (naming the argument).

    References:
        LeCun et al. 1998, "Gradient-based learning applied to document recognition" (LeNet-5, §II).
    """

    def __init__(self, channels: tuple[int, int] = (32, 64), hidden: int = 64, dropout: float = 0.25):
        super().__init__()
        if not (isinstance(channels, (tuple, list)) and len(channels) == 2):
            raise ValueError(f"channels must be a pair (c1, c2) of positive ints, got {channels!r}")
        c1, c2 = (checks.positive_int("channels", c) for c in channels)
        hidden = checks.positive_int("hidden", hidden)
        dropout = float(dropout)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._arch = dict(channels=[int(c1), int(c2)], hidden=int(hidden), dropout=dropout)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.fc1 = nn.Linear(c2 * 7 * 7, hidden)
        self.fc2 = nn.Linear(hidden, NUM_CLASSES)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = (x - 0.5) * 2.0
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(F.relu(self.fc1(x.flatten(1))))
        return self.fc2(x)


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------
def as_images(images, name: str = "images") -> Tensor:
    """``images`` as a float32 (N, 1, 28, 28) tensor on the CPU, checked.

    Args:
        images: a tensor or NumPy array of shape (N, 1, 28, 28), (N, 28, 28) or
            (N, 784), N >= 1, floating point (or bool) with every value in [0, 1].
        name: the argument's name, for messages.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): not a tensor or array;
            an integer dtype (pixels 0..255: divide by 255 first).
        ValueError: another shape, no image, NaN or infinite values, values outside [0, 1].
    """
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise checks.ArgumentTypeError(
            f"{name} must be a torch.Tensor or numpy array of images in [0, 1], got {type(images).__name__}"
        )
    if images.dtype == torch.bool:
        images = images.float()
    if not images.is_floating_point():
        raise checks.ArgumentTypeError(
            f"{name} must be floating point (or bool) with values in [0, 1], got dtype {images.dtype} "
            "(pixels 0..255? divide them by 255)"
        )
    shape = tuple(images.shape)
    if len(shape) == 4 and shape[1:] == (1, 28, 28):
        x = images
    elif len(shape) == 3 and shape[1:] == (28, 28):
        x = images[:, None]
    elif len(shape) == 2 and shape[1] == 784:
        x = images.reshape(-1, 1, 28, 28)
    else:
        raise ValueError(f"{name} must have shape (N, 1, 28, 28), (N, 28, 28) or (N, 784) (MNIST), got {shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {shape}")
    x = x.detach().to("cpu", torch.float32)
    checks.finite(name, x)
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name} must have values in [0, 1] (grey levels or binary pixels), got range [{lo:g}, {hi:g}]"
            + (" (pixels 0..255? divide them by 255)" if hi > 1.0 and hi <= 255.0 and lo >= 0.0 else "")
        )
    return x


def _check_probs(probs, name: str = "probs") -> Tensor:
    checks.tensor(name, probs)
    if probs.ndim != 2 or probs.shape[0] == 0 or probs.shape[1] < 1:
        raise ValueError(f"{name} must have shape (N, K) with N >= 1, got {tuple(probs.shape)}")
    if not probs.is_floating_point():
        raise checks.ArgumentTypeError(f"{name} must be floating point, got dtype {probs.dtype}")
    p = probs.detach().to(torch.float64)
    checks.finite(name, p)
    if bool((p < 0).any()) or not torch.allclose(p.sum(1), torch.ones((), dtype=torch.float64), atol=1e-4):
        raise ValueError(f"{name} must hold probability vectors: rows >= 0 that sum to 1")
    return p


# ----------------------------------------------------------------------------
# The measures, as pure functions of p(y | x)
# ----------------------------------------------------------------------------
def inception_score_from_probs(probs: Tensor) -> float:
    """exp( mean_x KL( p(y | x) || p(y) ) ) with p(y) the mean of the rows: the Inception score.

    Args:
        probs: (N, K) class probabilities p(y | x), one row per sample (rows sum to 1).

    Returns:
        the score, a float in [1, K]; computed in float64 with 0 log 0 = 0.

    Raises:
        ArgumentTypeError: not a floating tensor.
        ValueError: another shape, N = 0, negative entries, rows not summing to 1, NaN.

    References:
        Salimans et al. 2016, "Improved Techniques for Training GANs", §4.
    """
    p = _check_probs(probs)
    marginal = p.mean(0, keepdim=True)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal.expand_as(p))).sum(1)  # KL(p(y|x) || p(y)) per sample
    return float(torch.exp(kl.mean()))


def confident_fraction_from_probs(probs: Tensor, threshold: float = CONFIDENCE) -> float:
    """The fraction of rows with max_y p(y | x) >= ``threshold``.

    Args:
        probs: (N, K) class probabilities.
        threshold: in (0, 1].

    Raises:
        ValueError, ArgumentTypeError: as :func:`inception_score_from_probs`; a threshold outside (0, 1].
    """
    _check_probs(probs)
    threshold = checks.unit_interval("threshold", threshold)
    if threshold <= 0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    top = probs.detach().max(1).values  # compared in the dtype given: a float32 0.9 counts at threshold 0.9
    return float((top >= torch.tensor(threshold, dtype=top.dtype, device=top.device)).double().mean())


# ----------------------------------------------------------------------------
# Loading the shipped classifier
# ----------------------------------------------------------------------------
def save_classifier(model: MNISTClassifier, path: str | os.PathLike, **metadata) -> str:
    """Write ``model`` (its arguments, float32 weights, ``metadata``) with :func:`course_lib.pretrained.save`.

    Returns:
        the file's SHA-256 (hex).

    Raises:
        ArgumentTypeError: ``model`` not an :class:`MNISTClassifier`, metadata that cannot be stored.
        course_lib.pretrained.PretrainedFileError: ``path`` cannot be written.
    """
    from course_lib import pretrained

    if type(model) is not MNISTClassifier:
        raise checks.ArgumentTypeError(f"model must be an MNISTClassifier, got {type(model).__name__}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return pretrained.save(path, {"arch": dict(model._arch), "state_dict": state, "metadata": metadata}, kind=KIND)


def _load(path: str, sha256: str | None) -> tuple[MNISTClassifier, dict]:
    from course_lib import pretrained

    saved = pretrained.load(path, kind=KIND, sha256=sha256,
                            missing_hint=": run scripts/make_classifier_checkpoint.py to make it")
    try:
        model = MNISTClassifier(**saved["arch"])
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise pretrained.PretrainedFileError(
            f"pretrained file {path!r} does not describe an MNISTClassifier ({type(err).__name__}: {err})"
        ) from None
    return model.eval(), dict(saved.get("metadata", {}))


@functools.lru_cache(maxsize=4)
def _cached(path: str, sha256: str | None) -> tuple[MNISTClassifier, dict]:
    return _load(path, sha256)


def load_classifier(path: str | os.PathLike | None = None, sha256: str | None = None) -> MNISTClassifier:
    """The shipped MNIST classifier (or one saved by :func:`save_classifier`), in eval mode on the CPU.

    The shipped file is pinned to :data:`CLASSIFIER_SHA256`; files are read with
    ``weights_only=True`` (:func:`course_lib.pretrained.load`). The model is cached:
    later calls return the same object (do not train it).

    Args:
        path: the file; None: :data:`CLASSIFIER_PATH`.
        sha256: the expected SHA-256 of the file (None: the embedded digest only,
            or :data:`CLASSIFIER_SHA256` for the shipped file).

    Raises:
        course_lib.pretrained.PretrainedFileError: a missing, corrupt or foreign file (naming it).
    """
    path = CLASSIFIER_PATH if path is None else os.fspath(path)
    if sha256 is None and os.path.abspath(path) == os.path.abspath(CLASSIFIER_PATH):
        sha256 = CLASSIFIER_SHA256
    return _cached(os.path.abspath(path), sha256)[0]


def _classifier(classifier) -> nn.Module:
    if classifier is None:
        return load_classifier()
    if not isinstance(classifier, nn.Module):
        raise checks.ArgumentTypeError(
            f"classifier must be an nn.Module mapping (N, 1, 28, 28) images to (N, 10) logits, or None "
            f"(the shipped one), got {type(classifier).__name__}"
        )
    return classifier


@torch.no_grad()
def class_probabilities(images, classifier: nn.Module | None = None, batch_size: int = 1000) -> Tensor:
    """p(y | x) of every image under ``classifier``: (N, 10) float64 on the CPU.

    Args:
        images: see :func:`as_images` ((N, 1, 28, 28), (N, 28, 28) or (N, 784), values in [0, 1]).
        classifier: a module giving (N, 10) logits; None: :func:`load_classifier`.
        batch_size: images per forward pass.

    Raises:
        ValueError, ArgumentTypeError: bad images (naming ``images``), a bad classifier or batch size.
    """
    x = as_images(images)
    model = _classifier(classifier)
    batch_size = checks.positive_int("batch_size", batch_size)
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        out = [F.softmax(model(x[s:s + batch_size].to(param.device, param.dtype)).double(), dim=1).cpu()
               for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    probs = torch.cat(out)
    if probs.shape != (x.shape[0], NUM_CLASSES):
        raise ValueError(f"classifier must give (N, {NUM_CLASSES}) logits, got {tuple(probs.shape)}")
    return probs


def inception_score(images, classifier: nn.Module | None = None) -> float:
    """The MNIST Inception score of ``images`` (see the module docstring): a float in [1, 10].

    Raises:
        ValueError, ArgumentTypeError: as :func:`class_probabilities`.

    References:
        Salimans et al. 2016, "Improved Techniques for Training GANs", §4.
    """
    return inception_score_from_probs(class_probabilities(images, classifier))


def confident_fraction(images, classifier: nn.Module | None = None, threshold: float = CONFIDENCE) -> float:
    """The fraction of ``images`` the classifier reads with max_y p(y | x) >= ``threshold`` (0.9).

    Raises:
        ValueError, ArgumentTypeError: as :func:`class_probabilities`; a threshold outside (0, 1].
    """
    return confident_fraction_from_probs(class_probabilities(images, classifier), threshold)


def sample_quality(images, classifier: nn.Module | None = None, labels=None, threshold: float = CONFIDENCE) -> dict:
    """Every measure of a batch of samples at once (one classifier pass).

    Args:
        images: N samples, see :func:`as_images` (use N = 1,000 for figures that are
            compared; the Inception score grows with N while p(y) is poorly estimated).
        classifier: None: the shipped one.
        labels: for a class-conditional model, the (N,) classes asked for (tensor,
            array or list of ints 0..9); adds ``class_agreement``.
        threshold: the confidence threshold of ``confident_fraction``.

    Returns:
        dict with ``inception_score`` (float in [1, 10]), ``confident_fraction``
        (float in [0, 1]), ``predicted_classes`` ((N,) int64 tensor, argmax p(y | x)),
        ``class_counts`` (list of 10 ints), ``n`` (N), and ``class_agreement`` (float,
        the fraction with predicted class == label; chance 0.1) when ``labels`` is given.

    Raises:
        ValueError, ArgumentTypeError: bad images (naming ``images``), labels of
            another length or outside 0..9 (naming ``labels``), a bad threshold.
    """
    probs = class_probabilities(images, classifier)
    predicted = probs.argmax(1)
    out = {
        "inception_score": inception_score_from_probs(probs),
        "confident_fraction": confident_fraction_from_probs(probs, threshold),
        "predicted_classes": predicted,
        "class_counts": torch.bincount(predicted, minlength=NUM_CLASSES).tolist(),
        "n": int(probs.shape[0]),
    }
    if labels is not None:
        y = torch.as_tensor(np.asarray(labels) if isinstance(labels, (list, tuple)) else labels)
        if y.shape != predicted.shape or y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"labels must be {predicted.shape[0]} integer classes (one per image), got "
                             f"{tuple(y.shape)} {y.dtype}")
        if int(y.min()) < 0 or int(y.max()) >= NUM_CLASSES:
            raise ValueError(f"labels must be classes in 0..{NUM_CLASSES - 1}, got range [{int(y.min())}, {int(y.max())}]")
        out["class_agreement"] = float((y.cpu().long() == predicted).double().mean())
    return out


def format_quality(quality: dict) -> str:
    """One machine-readable line: ``inception_score=... confident_fraction=... [class_agreement=...] n=...``."""
    parts = [f"inception_score={quality['inception_score']:.3f}", f"confident_fraction={quality['confident_fraction']:.3f}"]
    if "class_agreement" in quality:
        parts.append(f"class_agreement={quality['class_agreement']:.3f}")
    parts.append(f"n={quality['n']}")
    return " ".join(parts)


# ----------------------------------------------------------------------------
# Training (scripts/make_classifier_checkpoint.py)
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ClassifierConfig(RunOptions):
    """Training of :class:`MNISTClassifier` by cross-entropy (Adam).

    Each batch shows every image either grey (intensity / 255) or stochastically
    binarized (each pixel Bernoulli(intensity / 255)), half and half, and shifted by
    up to ``max_shift`` pixels in each direction, so that the classifier reads
    binary samples, grey Bernoulli means and slightly off-centre digits alike.
    """

    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    seed: int = 0
    max_shift: int = 2

    def __post_init__(self):
        super().__post_init__()
        checks.positive_int("epochs", self.epochs)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_float("lr", self.lr)
        checks.nonnegative_int("seed", self.seed)
        checks.nonnegative_int("max_shift", self.max_shift)
        if self.checkpoint_path is not None:
            raise ValueError("checkpoint_path must be None: train_classifier does not checkpoint (a few minutes of training)")


def _augment(pixels: Tensor, gen: torch.Generator, max_shift: int) -> Tensor:
    """uint8 (B, 28, 28) -> float (B, 1, 28, 28): half grey, half binarized, each shifted by up to max_shift."""
    x = pixels.float()[:, None] / 255.0
    binary = (torch.rand(x.shape, generator=gen) < x).float()
    pick = torch.rand(x.shape[0], 1, 1, 1, generator=gen) < 0.5
    x = torch.where(pick, binary, x)
    if max_shift:
        s = max_shift
        padded = F.pad(x, (s, s, s, s))
        dy = torch.randint(0, 2 * s + 1, (x.shape[0],), generator=gen)
        dx = torch.randint(0, 2 * s + 1, (x.shape[0],), generator=gen)
        rows = (dy[:, None] + torch.arange(28))[:, None, :, None].expand(-1, 1, 28, 28 + 2 * s)
        x = padded.gather(2, rows)
        cols = (dx[:, None] + torch.arange(28))[:, None, None, :].expand(-1, 1, 28, 28)
        x = x.gather(3, cols)
    return x


def train_classifier(model: MNISTClassifier, images, labels, config: ClassifierConfig = ClassifierConfig()) -> tuple[MNISTClassifier, dict]:
    """Fit ``model`` to MNIST digits by cross-entropy, through :class:`course_lib.training.TrainingRun`.

    Args:
        model: an :class:`MNISTClassifier`.
        images: (N, 28, 28) uint8 pixels 0..255 (tensor or array).
        labels: (N,) integer classes 0..9.
        config: a :class:`ClassifierConfig`.

    Returns:
        ``(model, history)`` with per-epoch ``epoch``, ``step``, ``seconds``, ``train_loss``, ``train_accuracy``.

    Raises:
        ValueError, ArgumentTypeError: bad images, labels or config (naming them).
        course_lib.training.TrainingDiverged: a non-finite loss or parameter.
    """
    from course_lib import data

    if not isinstance(model, MNISTClassifier):
        raise checks.ArgumentTypeError(f"model must be an MNISTClassifier, got {type(model).__name__}")
    if not isinstance(config, ClassifierConfig):
        raise checks.ArgumentTypeError(f"config must be a ClassifierConfig, got {type(config).__name__}")
    pixels = data._as_pixel_tensor(images, "images")
    if pixels.ndim != 3 or pixels.shape[1:] != (28, 28) or pixels.shape[0] == 0:
        raise ValueError(f"images must have shape (N, 28, 28) with N >= 1, got {tuple(pixels.shape)}")
    y = torch.as_tensor(labels)
    if y.shape != (pixels.shape[0],) or y.is_floating_point() or int(y.min()) < 0 or int(y.max()) >= NUM_CLASSES:
        raise ValueError(f"labels must be {pixels.shape[0]} integer classes in 0..9, got {tuple(y.shape)} {y.dtype}")
    y = y.long()
    n, bs = pixels.shape[0], config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    run = TrainingRun(config, model=model, optimizer=optimizer, generators={"data": gen},
                      history_keys=("epoch", "step", "seconds", "train_loss", "train_accuracy"),
                      checkpoint_path=config.checkpoint_path, resume=config.resume, max_seconds=config.max_seconds,
                      total=config.epochs * steps_per_epoch, desc="MNISTClassifier", progress=config.progress)
    state = run.restore(default={"epoch": 0})
    model.train()
    with run:
        while state["epoch"] < config.epochs and run.stop_reason is None:
            perm = torch.randperm(n, generator=gen)
            loss_sum, correct, seen = 0.0, 0, 0
            for s in range(0, n, bs):
                idx = perm[s:s + bs]
                x = _augment(pixels[idx], gen, config.max_shift)
                logits = model(x)
                loss = F.cross_entropy(logits, y[idx])
                loss_sum += run.optimize(loss, inputs=x) * len(idx)
                correct += int((logits.argmax(1) == y[idx]).sum())
                seen += len(idx)
                if run.end_step(state, loss=loss.item()):
                    break
            state = {"epoch": state["epoch"] + 1}
            run.log(epoch=state["epoch"], step=run.step, seconds=run.seconds, train_loss=loss_sum / max(seen, 1),
                    train_accuracy=correct / max(seen, 1))
    model.eval()
    return model, run.finish()


@torch.no_grad()
def accuracy(model: nn.Module, images, labels) -> float:
    """The fraction of ``images`` (values in [0, 1], see :func:`as_images`) classified as ``labels``."""
    probs = class_probabilities(images, model)
    y = torch.as_tensor(labels).long()
    if y.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), got {tuple(y.shape)}")
    return float((probs.argmax(1) == y).double().mean())
