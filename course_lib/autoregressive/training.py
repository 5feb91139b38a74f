"""Binarized data, evaluation and maximum-likelihood training of the autoregressive models.

Part of :mod:`course_lib.autoregressive`. The loop goes through :class:`course_lib.training.TrainingRun`.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch
from torch import Tensor

from course_lib import checks
from course_lib.autoregressive.core import AutoregressiveModel, bernoulli_nll
from course_lib.training import RunOptions, TrainingRun

__all__ = ["binarize_fixed", "evaluate_nll", "TrainConfig", "train"]

HISTORY_KEYS = ("epoch", "step", "seconds", "train_nll", "test_nll", "epoch_complete")

# ----------------------------------------------------------------------------
# Data and evaluation
# ----------------------------------------------------------------------------
def _pixels(images, name: str) -> Tensor:
    t = torch.as_tensor(images)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4:
        raise ValueError(f"{name} must have shape (N, H, W) or (N, C, H, W), got {tuple(t.shape)}")
    return t


def _check_model(model) -> AutoregressiveModel:
    if not isinstance(model, AutoregressiveModel):
        raise checks.ArgumentTypeError(
            f"model must be an autoregressive model (PixelCNN, GatedPixelCNN, RowLSTM, DiagonalBiLSTM), "
            f"got {type(model).__name__}"
        )
    return model


def _training_pixels(images, channels: int) -> Tensor:
    """The trainer's images as a (N, C, H, W) integer tensor: what :func:`train` accepts, checked up front."""
    from course_lib import data

    t = data._as_pixel_tensor(images, "images")  # a tensor or array of integers 0..255 (not floats, not bools)
    if t.ndim == 3:
        t = t[:, None]
    if t.ndim != 4 or t.shape[1] != channels:
        raise ValueError(f"images must have shape (N, H, W) or (N, {channels}, H, W), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"images must hold at least one image, got shape {tuple(t.shape)}")
    return t


def _binary_images(model: AutoregressiveModel, x, name: str) -> Tensor:
    """A non-empty (N, C, H, W) tensor of binary images for ``model`` (what ``log_prob`` takes)."""
    model._check_x(x, name)
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one image, got shape {tuple(x.shape)}")
    return checks.binary(name, x)


def binarize_fixed(images, seed: int = 0) -> Tensor:
    """One fixed stochastic binarization (each pixel Bernoulli(intensity/255)), for a test set.

    Args:
        images: (N, H, W) or (N, C, H, W) uint8 pixels 0..255.
        seed: seed of the draw; the same seed gives the same binary test set.

    Returns:
        float32 (N, C, H, W) of 0s and 1s.

    Raises:
        ValueError: a wrong shape, or pixels outside 0..255 (from ``data.binarize``).

    References:
        Salakhutdinov & Murray 2008, §5 (stochastic binarization of MNIST).
    """
    from course_lib import data

    seed = checks.nonnegative_int("seed", seed)
    return data._binarize_seeded(_pixels(images, "images"), seed)  # the draw of vae.binarize_fixed too


@torch.no_grad()
def evaluate_nll(model: AutoregressiveModel, x: Tensor, y: Tensor | None = None, batch_size: int = 500) -> float:
    """Mean test NLL in nats per image of binary images x (N, C, H, W) under ``model``.

    Args:
        model: an :class:`AutoregressiveModel`.
        x: (N, C, H, W) tensor of 0s and 1s with N >= 1, C = ``model.in_channels``,
            H, W >= 2 (e.g. from :func:`binarize_fixed`); a NumPy array is
            refused, as by ``log_prob`` (convert it with ``torch.as_tensor``).
        y: (N,) integer labels, required for a class-conditional model (and
            refused for another).
        batch_size: images per forward pass (positive int).

    Returns:
        the mean of ``-log p(x)`` (or ``-log p(x | y)``) over the N images, in nats per image.

    Raises:
        ValueError: an empty, non-binary or wrongly shaped ``x``; a ``y`` of the
            wrong length, out of range, or given to an unconditional model; ``batch_size`` < 1.
        ArgumentTypeError (a TypeError and a ValueError): ``x`` or ``y`` not a
            tensor (a NumPy array, a list), a ``model`` of the wrong kind.
    """
    _check_model(model)
    _binary_images(model, x, "x")
    y = model._check_y(y, x.shape[0])
    batch_size = checks.positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for s in range(0, x.shape[0], batch_size):
            yb = None if y is None else y[s : s + batch_size].to(device)
            total -= float(model.log_prob(x[s : s + batch_size].to(device), y=yb).sum())
    finally:
        model.train(was_training)
    return total / x.shape[0]


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainConfig(RunOptions):
    """Maximum-likelihood training of an autoregressive model on stochastically binarized images.

    Raises:
        ValueError: from ``__post_init__`` for any field outside its range (the message names it).
    """

    epochs: int = 10
    """Passes over the training set."""
    batch_size: int = 64
    """Images per gradient step."""
    lr: float = 1e-3
    """Adam learning rate."""
    seed: int = 0
    """Seed of the shuffling and of the per-epoch binarization draws."""
    clip_grad_norm: float | None = None
    """Clip the global gradient norm to this (None: no clipping)."""
    # max_seconds, checkpoint_path (written after every epoch), resume, progress:
    # the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        checks.positive_int("epochs", self.epochs)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_float("lr", self.lr)
        checks.nonnegative_int("seed", self.seed)
        if self.clip_grad_norm is not None:
            checks.positive_float("clip_grad_norm", self.clip_grad_norm)


def _epoch_draw(images: Tensor, seed: int, epoch: int) -> tuple[Tensor, Tensor]:
    """The permutation and the fresh binarization of one epoch, a pure function of (seed, epoch)."""
    gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
    perm = torch.randperm(images.shape[0], generator=gen)
    u = torch.rand(images.shape, generator=gen)
    return perm, (u < images.float() / 255.0).float()


def _drop_cut_epoch(history: dict, state: dict, step: int) -> None:
    """Resuming: remove the entry of an epoch that was cut short (it is logged again once complete).

    A checkpoint written before ``epoch_complete`` existed gets the column, its
    last entry marked cut short when it was logged at the saved step inside an epoch.
    """
    n = len(history.get("epoch", []))
    if len(history.get("epoch_complete", [])) != n:
        cut = n > 0 and state.get("position", 0) > 0 and history["step"][-1] == step
        history["epoch_complete"] = [True] * (n - 1) + [not cut] if n else []
    if n and not history["epoch_complete"][-1]:
        for key in HISTORY_KEYS:
            history[key].pop()


def train(
    model: AutoregressiveModel,
    images,
    config: TrainConfig = TrainConfig(),
    labels: Tensor | None = None,
    test_data: Tensor | None = None,
    test_labels: Tensor | None = None,
) -> tuple[AutoregressiveModel, dict]:
    """Fit ``model`` by maximum likelihood (minimise the mean NLL in nats per image).

    Each epoch binarizes the training images afresh (each pixel
    Bernoulli(intensity/255)) and reshuffles them; both draws are a pure
    function of ``(config.seed, epoch)``, so a resumed run sees the same
    batches. The loop goes through :class:`course_lib.training.TrainingRun`.

    A run stopped inside an epoch (``max_seconds`` spent, Ctrl-C) ends its
    history with an entry for that partial epoch (``epoch_complete`` False:
    its ``train_nll`` is the mean over the batches done, its ``test_nll`` is
    measured where it stopped). A run resumed from its checkpoint drops that
    entry and logs the epoch once it is complete, so its history (and its
    weights) equal those of a run that never stopped, apart from ``seconds``.

    Args:
        model: an :class:`AutoregressiveModel` on its device.
        images: (N, H, W) or (N, C, H, W) integer pixels 0..255, N >= 1,
            C = ``model.in_channels``: a uint8 tensor or NumPy array (other
            integer dtypes are accepted when in range). Floating-point or
            boolean images are refused: the trainer binarizes the 8-bit
            intensities itself.
        config: a :class:`TrainConfig`.
        labels: (N,) integer labels in 0..num_classes-1 (a tensor or NumPy
            array), required for a class-conditional model and refused for another.
        test_data: optional fixed binary test set (M, C, H, W) tensor (see
            :func:`binarize_fixed`), evaluated after every epoch.
        test_labels: (M,) integer label tensor for a class-conditional model.

    Returns:
        ``(model, history)``; history lists, one entry per epoch: ``epoch``,
        ``step``, ``seconds`` (cumulative training time, without the test
        evaluations; the ``max_seconds`` budget counts them), ``train_nll``
        (nats/image, mean over the epoch's batches), ``test_nll``
        (nats/image, NaN without test data), ``epoch_complete`` (False for
        an epoch cut short); and ``stop_reason`` (``"completed"``,
        ``"time_budget"`` or ``"interrupted"``).

    Raises:
        ValueError: images that are empty, wrongly shaped, floating-point,
            boolean or outside 0..255; labels of the wrong length, out of range,
            missing for a class-conditional model or given to another; a bad
            ``test_data`` or ``test_labels`` (as :func:`evaluate_nll`). Every
            message names the argument.
        ArgumentTypeError (a TypeError and a ValueError): a ``config`` that is
            not a :class:`TrainConfig`, a ``model`` of the wrong kind, images that
            are not a tensor or array.
        course_lib.training.TrainingDiverged: a non-finite loss, gradient or parameter.
        course_lib.training.CheckpointError: an unreadable checkpoint, or one
            written with another config.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §4 (training by NLL, RMSProp/Adam).
    """
    _check_model(model)
    if not isinstance(config, TrainConfig):
        raise checks.ArgumentTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    imgs = _training_pixels(images, model.in_channels)
    if labels is not None and model.num_classes is not None and not isinstance(labels, torch.Tensor):
        from course_lib import data

        labels = data._as_images(labels, "labels")  # a NumPy array or list of labels, as before
    labels = model._check_y(labels, imgs.shape[0], "labels")
    if test_data is not None:
        _binary_images(model, test_data, "test_data")
        test_labels = model._check_y(test_labels, test_data.shape[0], "test_labels")
    elif test_labels is not None:
        raise ValueError("test_labels must be None when there is no test_data")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    n, bs = imgs.shape[0], config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = TrainingRun(
        config, model=model, optimizer=optimizer, history_keys=HISTORY_KEYS,
        total=config.epochs * steps_per_epoch, desc=type(model).__name__,
    )
    state = run.restore(default={"epoch": 0, "position": 0, "nll_sum": 0.0, "count": 0, "eval_seconds": 0.0})
    if run.resumed:
        _drop_cut_epoch(run.history, state, run.step)
    model.train()
    with run:
        while state["epoch"] < config.epochs and run.stop_reason is None:
            perm, binary = _epoch_draw(imgs, config.seed, state["epoch"])
            while state["position"] < steps_per_epoch:
                idx = perm[state["position"] * bs : (state["position"] + 1) * bs]
                x = binary[idx].to(device=device, dtype=dtype)
                y = None if labels is None else labels[idx].to(device)
                loss = bernoulli_nll(model(x) if y is None else model(x, y=y), x).mean()
                value = run.optimize(loss, inputs=x, clip_grad_norm=config.clip_grad_norm)
                state = {**state, "position": state["position"] + 1,
                         "nll_sum": state["nll_sum"] + value * len(idx), "count": state["count"] + len(idx)}
                if run.end_step(state, nll=value):
                    break
            tic = time.perf_counter()
            test_nll = float("nan") if test_data is None else evaluate_nll(model, test_data, test_labels)
            model.train()
            eval_seconds = state.get("eval_seconds", 0.0) + time.perf_counter() - tic
            complete = state["position"] >= steps_per_epoch
            run.log(epoch=state["epoch"] + 1, step=run.step, seconds=run.seconds - eval_seconds,
                    train_nll=state["nll_sum"] / max(state["count"], 1), test_nll=test_nll, epoch_complete=complete)
            state = {**state, "eval_seconds": eval_seconds}
            if complete:
                state = {"epoch": state["epoch"] + 1, "position": 0, "nll_sum": 0.0, "count": 0, "eval_seconds": eval_seconds}
            run.save(state)
    return model, run.finish()
