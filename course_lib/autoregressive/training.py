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

    Raises:
        ValueError: non-binary or wrongly shaped ``x`` (from ``log_prob``).
    """
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

    Args:
        model: an :class:`AutoregressiveModel` on its device.
        images: (N, H, W) or (N, C, H, W) uint8 pixels 0..255.
        config: a :class:`TrainConfig`.
        labels: (N,) integer labels, required for a class-conditional model.
        test_data: optional fixed binary test set (M, C, H, W) (see
            :func:`binarize_fixed`), evaluated after every epoch.
        test_labels: (M,) labels for a class-conditional model.

    Returns:
        ``(model, history)``; history lists, one entry per epoch: ``epoch``,
        ``step``, ``seconds`` (cumulative training time, without the test
        evaluations; the ``max_seconds`` budget counts them), ``train_nll``
        (nats/image, mean over the epoch's batches), ``test_nll``
        (nats/image, NaN without test data); and ``stop_reason``.

    Raises:
        ValueError: wrongly shaped images or labels.
        course_lib.training.TrainingDiverged: a non-finite loss, gradient or parameter.

    References:
        van den Oord et al. 2016, "Pixel Recurrent Neural Networks", §4 (training by NLL, RMSProp/Adam).
    """
    if not isinstance(config, TrainConfig):
        raise checks.ArgumentTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    imgs = _pixels(images, "images")
    if imgs.is_floating_point() or imgs.shape[1] != model.in_channels:
        raise ValueError(f"images must be integer pixels of shape (N, {model.in_channels}, H, W), got {imgs.dtype} {tuple(imgs.shape)}")
    if model.num_classes is not None:
        if labels is None or torch.as_tensor(labels).shape != (imgs.shape[0],):
            raise ValueError(f"labels must be an (N,) = ({imgs.shape[0]},) integer tensor for a class-conditional model")
        labels = torch.as_tensor(labels).long()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    n, bs = imgs.shape[0], config.batch_size
    steps_per_epoch = math.ceil(n / bs)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    run = TrainingRun(
        config, model=model, optimizer=optimizer, history_keys=("epoch", "step", "seconds", "train_nll", "test_nll"),
        checkpoint_path=config.checkpoint_path, resume=config.resume, max_seconds=config.max_seconds,
        total=config.epochs * steps_per_epoch, desc=type(model).__name__, progress=config.progress,
    )
    state = run.restore(default={"epoch": 0, "position": 0, "nll_sum": 0.0, "count": 0, "eval_seconds": 0.0})
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
            run.log(epoch=state["epoch"] + 1, step=run.step, seconds=run.seconds - eval_seconds,
                    train_nll=state["nll_sum"] / max(state["count"], 1), test_nll=test_nll)
            state = {**state, "eval_seconds": eval_seconds}
            if state["position"] >= steps_per_epoch:
                state = {"epoch": state["epoch"] + 1, "position": 0, "nll_sum": 0.0, "count": 0, "eval_seconds": eval_seconds}
            run.save(state)
    return model, run.finish()
