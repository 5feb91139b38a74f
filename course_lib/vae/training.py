"""Chapter 3, training: binarized MNIST (the same draws as Chapter 2), ``VAEConfig``, ``train_vae``
on the shared training core, bound evaluation, and the small shipped checkpoints.

Re-exported by :mod:`course_lib.vae`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib import checks, data
from course_lib._runtime import seed_everything
from course_lib.training import RunOptions, TrainingRun
from course_lib.vae.core import VAE, AutoregressiveVAE, _check_binary_batch, log_mean_exp

__all__ = [
    "binarize_dynamic",
    "binarize_fixed",
    "TEST_BINARIZATION_SEED",
    "VAEConfig",
    "train_vae",
    "evaluate_bounds",
    "save_pretrained",
    "load_pretrained",
]

# ----------------------------------------------------------------------------
# Binarized MNIST (the same binarization as Chapter 2)
# ----------------------------------------------------------------------------
def _flat_pixels(images) -> Tensor:
    """``images`` when it is an (N, D) tensor of integer pixels; else an error naming ``images``."""
    images = checks.tensor("images", images)
    if images.ndim != 2 or images.is_floating_point():
        raise ValueError(f"images must be integer pixels of shape (N, D), got {images.dtype} {tuple(images.shape)}")
    return images


def binarize_dynamic(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Fresh stochastic binarization: pixel ~ Bernoulli(intensity / 255), drawn anew each call.

    Call it once per epoch on the training images (Salakhutdinov & Murray
    2008, §5). A thin wrapper of :func:`course_lib.data.binarize`.

    Args:
        images: integer pixels 0..255 of shape (N, D).
        generator: the ``torch.Generator`` for the draws.

    Returns:
        float32 (N, D) in {0, 1}.

    Raises:
        ValueError: images not (N, D) integer pixels 0..255 (named).
    """
    return data.binarize(_flat_pixels(images), stochastic=True, generator=generator)


#: Seed of the one fixed binarization of the test digits. Chapter 2 draws its
#: test digits with the same seed and the same function (``data._binarize_seeded``),
#: so the two chapters' negative log-likelihoods are on the very same binary images.
TEST_BINARIZATION_SEED = 1


def binarize_fixed(images: Tensor, seed: int = TEST_BINARIZATION_SEED) -> Tensor:
    """One fixed stochastic binarization (for test and validation digits): the same draw for a seed.

    Errors as :func:`binarize_dynamic`; ``seed`` must be a non-negative int.
    """
    seed = checks.nonnegative_int("seed", seed)
    return data._binarize_seeded(_flat_pixels(images), seed)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class VAEConfig(RunOptions):
    """Hyperparameters of :func:`train_vae`.

    Raises:
        ValueError: from ``__post_init__`` for a field outside its range (named).
    """

    epochs: int = 100
    """Passes over the training digits (each with a fresh binarization)."""
    batch_size: int = 100
    """Digits per Adam step."""
    lr: float = 1e-3
    """Adam learning rate."""
    k: int = 1
    """Importance samples in the training objective: 1 trains the ELBO (VAE), k > 1 the IWAE bound."""
    beta: float = 1.0
    """Weight of the KL term (beta-VAE); only used with k = 1."""
    warmup_epochs: int = 0
    """Linear KL warm-up: the KL weight rises from 1/warmup_epochs to beta over this many epochs (0: none)."""
    weight_decay: float = 0.0
    """Adam's L2 penalty."""
    patience: int = 0
    """Early stopping: stop when the validation bound has not improved for this many epochs
    and restore the best parameters (0: never stop early; needs validation digits)."""
    seed: int = 0
    """Seed of the shuffling, the binarization and the reparameterization noise (initialize the model yourself)."""
    # max_seconds, checkpoint_path (written after every epoch), resume, progress:
    # the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        checks.positive_int("epochs", self.epochs)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_float("lr", self.lr)
        checks.positive_int("k", self.k)
        checks.nonnegative_float("beta", self.beta)
        checks.nonnegative_int("warmup_epochs", self.warmup_epochs)
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.nonnegative_int("patience", self.patience)
        checks.nonnegative_int("seed", self.seed)


@torch.no_grad()
def evaluate_bounds(model: VAE, x: Tensor, k: int = 1, batch_size: int = 100, generator: torch.Generator | None = None) -> Tensor:
    """The bound ``IWAE_k`` (k = 1: the ELBO estimate) of every row of ``x``, in eval mode: (N,), nats.

    Args:
        model: a :class:`VAE`.
        x: (N, D) binary digits (moved to the model's device batch by batch).
        k: importance samples, >= 1.
        batch_size: digits per forward pass.
        generator: for the samples (on the model's device).

    Raises:
        ValueError: bad ``x``, ``k`` or ``batch_size`` (named).
    """
    k = checks.positive_int("k", k)
    batch_size = checks.positive_int("batch_size", batch_size)
    x = _check_binary_batch("x", x, model.data_dim, torch.float32)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model.iwae_bound(x[i : i + batch_size].to(device), k, generator).cpu() for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def train_vae(
    model: VAE,
    train_images: Tensor,
    config: VAEConfig = VAEConfig(),
    valid_x: Tensor | None = None,
) -> tuple[VAE, dict]:
    """Train a VAE on integer-pixel digits, binarized afresh every epoch.

    Each step maximizes the mean over the batch of ``elbo(x, beta_t)`` (k = 1)
    or ``iwae_bound(x, k)`` (k > 1). With ``valid_x`` the validation ELBO is
    measured after every epoch; with ``patience > 0`` training stops when it
    has not improved for that many epochs, and the best parameters are
    restored (early stopping against the overfitting of small training sets).

    Args:
        model: a :class:`VAE` on its device.
        train_images: (N, D) integer pixels 0..255 (uint8).
        config: a :class:`VAEConfig`.
        valid_x: optional (M, D) *binary* validation digits (a fixed draw, :func:`binarize_fixed`).

    Returns:
        ``(model, history)``: history lists, one entry per epoch: ``epoch``,
        ``step``, ``seconds`` (cumulative training time), ``kl_weight``,
        ``train_bound`` (mean training objective, nats), ``valid_elbo``
        (nats; NaN without ``valid_x``); ``best_epoch``, ``train_seconds`` (all
        training time, also of an unfinished last epoch), and ``stop_reason``
        (``"completed"``, ``"early_stopping"``, ``"time_budget"``, ``"interrupted"``).

    Raises:
        ValueError: bad data shapes, or ``patience > 0`` without ``valid_x``.
        course_lib.training.TrainingDiverged: a non-finite loss, gradient or parameter.

    References: Kingma & Welling 2014, Algorithm 1; Burda et al. 2016, §3 (k > 1).
    """
    if not isinstance(config, VAEConfig):
        raise checks.ArgumentTypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    train_images = checks.tensor("train_images", train_images)
    if train_images.ndim != 2 or train_images.shape[1] != model.data_dim or train_images.is_floating_point():
        raise ValueError(f"train_images must be integer pixels of shape (N, {model.data_dim}), "
                         f"got {train_images.dtype} {tuple(train_images.shape)}")
    if valid_x is not None:
        valid_x = _check_binary_batch("valid_x", valid_x, model.data_dim, torch.float32)
    if config.patience and valid_x is None:
        raise ValueError("valid_x is required when config.patience > 0 (early stopping needs validation digits)")
    device = next(model.parameters()).device
    seed_everything(config.seed)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling and binarization (CPU)
    noise = torch.Generator(device=device).manual_seed(config.seed + 1)  # eps of the reparameterization
    # fused Adam: one pass over the parameters per step instead of a loop of tensor ops
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=device.type in ("cpu", "cuda"))
    n = train_images.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    run = TrainingRun(
        config, model=model, optimizer=optimizer, generators={"data": generator, "noise": noise},
        history_keys=("epoch", "step", "seconds", "kl_weight", "train_bound", "valid_elbo"),
        checkpoint_path=config.checkpoint_path, resume=config.resume, max_seconds=config.max_seconds,
        total=config.epochs * steps_per_epoch, desc="VAE", progress=config.progress,
    )
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = run.restore(default={"epoch": 0, "position": 0, "order": torch.arange(n), "batches": torch.zeros(0),
                                 "sum_bound": 0.0, "best_valid": -math.inf, "best_epoch": 0,
                                 "since_best": 0, "best": best})
    model.train()
    with run:
        while state["epoch"] < config.epochs:
            if state["position"] == 0:  # a new epoch: a fresh binarization and order
                state["batches"] = binarize_dynamic(train_images, generator).to(torch.bool)  # bool: small checkpoints
                state["order"] = torch.randperm(n, generator=generator)
                state["sum_bound"] = 0.0
            kl_weight = config.beta * min(1.0, (state["epoch"] + 1) / config.warmup_epochs) if config.warmup_epochs else config.beta
            idx = state["order"][state["position"] : state["position"] + config.batch_size]
            x = state["batches"][idx].to(device=device, dtype=torch.float32)
            if config.k == 1:
                bound = model.elbo(x, beta=kl_weight, generator=noise)
            else:
                bound = log_mean_exp(model.log_weights(x, config.k, noise), dim=0)
            run.optimize(-bound.mean(), inputs=x)
            state["sum_bound"] += bound.sum().item()
            state["position"] += len(idx)
            epoch_done = state["position"] >= n
            if epoch_done:
                state["epoch"] += 1
                state["position"] = 0
                valid = math.nan
                if valid_x is not None:
                    valid = evaluate_bounds(model, valid_x, 1, generator=noise).mean().item()
                    if valid > state["best_valid"]:
                        state.update(best_valid=valid, best_epoch=state["epoch"], since_best=0,
                                     best={k: v.detach().clone() for k, v in model.state_dict().items()})
                    else:
                        state["since_best"] += 1
                run.log(epoch=state["epoch"], step=run.step + 1, seconds=run.seconds, kl_weight=kl_weight,
                        train_bound=state["sum_bound"] / n, valid_elbo=valid)
            stop = run.end_step(state, bound=bound.mean().item())
            if epoch_done:
                run.save(state)
                if config.patience and state["since_best"] >= config.patience:
                    run.stop("early_stopping")
                    break
            if stop:
                break
        run.save(state)
    if valid_x is not None and state["best_epoch"] > 0:
        model.load_state_dict(state["best"])
    model.eval()
    history = run.finish()
    history["best_epoch"] = state["best_epoch"]
    history["train_seconds"] = run.seconds
    return model, history


# ----------------------------------------------------------------------------
# Shipped checkpoints (small: float16, loaded with weights_only=True, SHA-256 checked)
# ----------------------------------------------------------------------------
def save_pretrained(model: VAE, path: str | os.PathLike, **metadata) -> str:
    """Save ``model`` for shipping: float16 weights, its constructor arguments and ``metadata``.

    Args:
        model: a :class:`VAE`.
        path: the file to write.
        metadata: plain numbers and strings to keep beside the weights (measured NLLs, epochs, seed).

    Returns:
        the file's SHA-256 (hex), to pin in the code that loads it.
    """
    arch = {"data_dim": model.data_dim, "latent_dim": model.latent_dim, "hidden_dims": list(model.hidden_dims),
            "autoregressive": isinstance(model, AutoregressiveVAE)}
    state = {k: v.detach().cpu().to(torch.float16) for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    buffer = io.BytesIO()
    torch.save({"arch": arch, "state_dict": state, "metadata": dict(metadata)}, buffer)
    data._atomic_write_bytes(os.fspath(path), buffer.getvalue())  # a crash leaves the old file, never half a new one
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def load_pretrained(path: str | os.PathLike, sha256: str | None = None) -> tuple[VAE, dict]:
    """Load a file written by :func:`save_pretrained` (``weights_only=True``), checking its SHA-256.

    Args:
        path: the checkpoint file.
        sha256: the expected SHA-256 (hex); None skips the check.

    Returns:
        ``(model, metadata)``: a float32 :class:`VAE` in eval mode, and the saved metadata dict.

    Raises:
        ValueError: the file is missing or its SHA-256 differs from ``sha256`` (the message names ``path``).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path {path!r} does not exist: run scripts/make_vae_checkpoint.py to make it")
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if sha256 is not None and digest != sha256:
        raise ValueError(f"path {path!r} has SHA-256 {digest}, expected {sha256}: the file is corrupt or another version")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    arch = dict(saved["arch"])
    model = (AutoregressiveVAE if arch.pop("autoregressive", False) else VAE)(**arch)
    model.load_state_dict({k: v.to(torch.float32) for k, v in saved["state_dict"].items()})
    return model.eval(), saved["metadata"]
