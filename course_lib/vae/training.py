"""Chapter 3, training: binarized MNIST (the same draws as Chapter 2), ``VAEConfig``, ``train_vae``
on the shared training core, bound evaluation, and the small shipped checkpoints.

Re-exported by :mod:`course_lib.vae`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from course_lib import checks, data, pretrained
from course_lib._runtime import seed_everything
from course_lib.training import RunOptions, TrainingRun
from course_lib.vae.core import VAE, AutoregressiveVAE, ConditionalVAE, MixturePriorVAE, VampPriorVAE, free_bits_kl, gaussian_kl, log_mean_exp, reparameterize

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
    free_bits: float = 0.0
    """Free bits (Kingma et al. 2016), nats per latent coordinate: the KL term becomes
    ``sum_j max(free_bits, mean over the batch of KL_j)`` (:func:`free_bits_kl`); 0: the plain
    ELBO. Only with k = 1. ``train_bound`` still logs the ELBO itself."""
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
        checks.nonnegative_float("free_bits", self.free_bits)
        if self.free_bits > 0 and self.k != 1:
            raise ValueError(f"free_bits applies to the ELBO (k = 1) only, got free_bits={self.free_bits} with k={self.k}")
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.nonnegative_int("patience", self.patience)
        checks.nonnegative_int("seed", self.seed)


@torch.no_grad()
def evaluate_bounds(model: VAE, x: Tensor, k: int = 1, batch_size: int = 100, generator: torch.Generator | None = None,
                    y: Tensor | None = None) -> Tensor:
    """The bound ``IWAE_k`` (k = 1: the ELBO estimate) of every row of ``x``, in eval mode: (N,), nats.

    Args:
        model: a :class:`VAE`.
        x: (N, D) binary digits (moved to the model's device batch by batch).
        k: importance samples, >= 1.
        batch_size: digits per forward pass.
        generator: for the samples (on the model's device).
        y: (N,) labels, required for a :class:`ConditionalVAE` (its bound is on log p(x | y)).

    Raises:
        ValueError: bad ``x``, ``k`` or ``batch_size``, a missing or bad ``y`` (named).
    """
    k = checks.positive_int("k", k)
    batch_size = checks.positive_int("batch_size", batch_size)
    x = model._x(x, "x")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    conditional = isinstance(model, ConditionalVAE)
    if conditional and (y is None or not isinstance(y, Tensor) or y.shape != (len(x),)):
        raise ValueError(f"y must be a tensor of {len(x)} labels (one per row of x) for a ConditionalVAE")
    # a ConditionalVAE's bound is on log p(x | y): each batch takes its own labels
    labels = (lambda i: {"y": y[i : i + batch_size].to(device)}) if conditional else (lambda i: {})
    out = [model.iwae_bound(x[i : i + batch_size].to(device), k, generator, **labels(i)).cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)


def train_vae(
    model: VAE,
    train_images: Tensor,
    config: VAEConfig = VAEConfig(),
    valid_x: Tensor | None = None,
    train_labels: Tensor | None = None,
    valid_y: Tensor | None = None,
) -> tuple[VAE, dict]:
    """Train a VAE on integer-pixel digits, binarized afresh every epoch (a :class:`GreyVAE`: the pixels / 255).

    Each step maximizes the mean over the batch of ``elbo(x, beta_t)`` (k = 1)
    or ``iwae_bound(x, k)`` (k > 1). With ``valid_x`` the validation ELBO is
    measured after every epoch; with ``patience > 0`` training stops when it
    has not improved for that many epochs, and the best parameters are
    restored (early stopping against the overfitting of small training sets).

    Args:
        model: a :class:`VAE` on its device.
        train_images: (N, D) integer pixels 0..255 (uint8).
        config: a :class:`VAEConfig`.
        valid_x: optional (M, D) *binary* validation digits (a fixed draw, :func:`binarize_fixed`);
            for a :class:`GreyVAE`, grey levels (pixels / 255).
        train_labels, valid_y: (N,) and (M,) integer labels, required for a :class:`ConditionalVAE`
            (shuffled with their images) and refused for any other model.

    Returns:
        ``(model, history)``: history lists, one entry per epoch: ``epoch``,
        ``step``, ``seconds`` (cumulative training time), ``kl_weight``,
        ``train_bound`` (mean training objective, nats), ``valid_elbo``
        (nats; NaN without ``valid_x``); ``best_epoch``, ``train_seconds`` (all
        training time, also of an unfinished last epoch), and ``stop_reason``
        (``"completed"``, ``"early_stopping"``, ``"time_budget"``, ``"interrupted"``).

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``config`` is not a :class:`VAEConfig`,
            or the data are not tensors.
        ValueError: bad data shapes, no training digits, an empty or non-binary ``valid_x``,
            or ``patience > 0`` without ``valid_x`` (each names the argument).
        course_lib.training.TrainingDiverged: a non-finite loss, gradient or parameter.

    References: Kingma & Welling 2014, Algorithm 1; Burda et al. 2016, §3 (k > 1).
    """
    if not isinstance(model, VAE):
        raise checks.ArgumentTypeError(f"model must be a course_lib.vae.VAE, got {type(model).__name__}")
    if not isinstance(config, VAEConfig):
        raise checks.ArgumentTypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    train_images = checks.tensor("train_images", train_images)
    if train_images.ndim != 2 or train_images.shape[1] != model.data_dim or train_images.is_floating_point():
        raise ValueError(f"train_images must be integer pixels of shape (N, {model.data_dim}), "
                         f"got {train_images.dtype} {tuple(train_images.shape)}")
    if train_images.shape[0] == 0:
        raise ValueError(f"train_images must hold at least one digit, got shape {tuple(train_images.shape)}")
    if not model.binary_data and (train_images.min() < 0 or train_images.max() > 255):
        raise ValueError(f"train_images must be 8-bit pixels 0..255 for a {type(model).__name__}, got values from "
                         f"{train_images.min().item()} to {train_images.max().item()}")
    if valid_x is not None:
        valid_x = model._x(valid_x, "valid_x")
        if valid_x.shape[0] == 0:
            raise ValueError(f"valid_x must hold at least one digit (the validation ELBO is measured on it every "
                             f"epoch), got shape {tuple(valid_x.shape)}; pass valid_x=None for no validation")
    if config.free_bits > 0 and isinstance(model, MixturePriorVAE):
        raise ValueError(f"config.free_bits={config.free_bits} needs the closed-form KL to N(0, I) of each "
                         "coordinate; a MixturePriorVAE has a learned mixture prior (set free_bits=0)")
    conditional = isinstance(model, ConditionalVAE)
    if conditional:
        if config.free_bits > 0 or config.k != 1:
            raise ValueError("a ConditionalVAE trains the ELBO (k = 1) without free_bits, got "
                             f"k={config.k}, free_bits={config.free_bits}")
        train_labels = checks.tensor("train_labels", train_labels) if train_labels is not None else None
        if train_labels is None or train_labels.shape != (train_images.shape[0],) or train_labels.is_floating_point():
            raise ValueError(f"train_labels must be {train_images.shape[0]} integer labels (one per training digit) "
                             "for a ConditionalVAE")
        if valid_x is not None and (valid_y is None or valid_y.shape != (valid_x.shape[0],)):
            raise ValueError(f"valid_y must be {valid_x.shape[0]} labels (one per validation digit) for a ConditionalVAE")
    elif train_labels is not None or valid_y is not None:
        raise ValueError("train_labels and valid_y are for a ConditionalVAE; this model is not conditional")
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
        total=config.epochs * steps_per_epoch, desc="VAE",
    )
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state = run.restore(default={"epoch": 0, "position": 0, "order": torch.arange(n), "batches": torch.zeros(0),
                                 "sum_bound": 0.0, "best_valid": -math.inf, "best_epoch": 0,
                                 "since_best": 0, "best": best})
    model.train()
    with run:
        while state["epoch"] < config.epochs:
            if state["position"] == 0:  # a new epoch: a fresh binarization and order
                if model.binary_data:
                    state["batches"] = binarize_dynamic(train_images, generator).to(torch.bool)  # bool: small checkpoints
                else:   # a GreyVAE models the grey levels themselves (uint8: small checkpoints)
                    state["batches"] = train_images.to(torch.uint8)
                state["order"] = torch.randperm(n, generator=generator)
                state["sum_bound"] = 0.0
            kl_weight = config.beta * min(1.0, (state["epoch"] + 1) / config.warmup_epochs) if config.warmup_epochs else config.beta
            idx = state["order"][state["position"] : state["position"] + config.batch_size]
            x = state["batches"][idx].to(device=device, dtype=torch.float32)
            if x.numel() and state["batches"].dtype == torch.uint8:
                x = x / 255
            if config.free_bits > 0:  # the free-bits objective; the ELBO (beta = 1) is what gets logged
                mu, logvar = model.encode(x)
                rec = model.log_px_given_z(reparameterize(mu, logvar, noise), x)
                objective = rec.mean() - kl_weight * free_bits_kl(mu, logvar, config.free_bits)
                bound = (rec - gaussian_kl(mu, logvar)).detach()
            elif conditional:  # the labels of the same shuffled rows
                bound = model.elbo(x, beta=kl_weight, generator=noise, y=train_labels[idx].to(device))
                objective = bound.mean()
            elif config.k == 1:
                bound = model.elbo(x, beta=kl_weight, generator=noise)
                objective = bound.mean()
            else:
                bound = log_mean_exp(model.log_weights(x, config.k, noise), dim=0)
                objective = bound.mean()
            run.optimize(-objective, inputs=x)
            state["sum_bound"] += bound.sum().item()
            state["position"] += len(idx)
            epoch_done = state["position"] >= n
            if epoch_done:
                state["epoch"] += 1
                state["position"] = 0
                valid = math.nan
                if valid_x is not None:
                    valid = evaluate_bounds(model, valid_x, 1, generator=noise, y=valid_y).mean().item()
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
# Shipped checkpoints (small: float16, an embedded SHA-256, loaded with weights_only=True)
# ----------------------------------------------------------------------------
_MAKE_HINT = ": run scripts/make_vae_checkpoint.py to make it"
_FLOAT16_MAX = float(torch.finfo(torch.float16).max)


def save_pretrained(model: VAE, path: str | os.PathLike, **metadata) -> str:
    """Save ``model`` for shipping: float16 weights, its constructor arguments and ``metadata``.

    The file format, the embedded digest and the verified atomic write are those of
    :func:`course_lib.pretrained.save`: the metadata is checked and converted first,
    the new file is read back with ``weights_only=True`` and compared before it
    replaces ``path``, so a file that :func:`load_pretrained` would refuse never
    replaces a good one.

    Args:
        model: a :class:`VAE` (or :class:`AutoregressiveVAE`); its weights must be
            finite and within float16's range (``|w| <= 65504``).
        path: the file to write (its folder is created).
        metadata: numbers, strings, bools, None, or lists/tuples/dicts of them (measured
            NLLs in nats, epochs, seed). NumPy scalars (``np.float64(89.0)``) and 0-d
            tensors are stored as Python numbers.

    Returns:
        the file's SHA-256 (hex), to pin in the code that loads it (``load_pretrained(path, sha256=...)``).

    Raises:
        ArgumentTypeError (TypeError and ValueError): ``model`` is not a :class:`VAE`, or a
            metadata entry cannot be stored (the message names its key, e.g. ``metadata['nll']``).
        ValueError: a weight that is NaN or infinite, or beyond float16's range (named).
        course_lib.pretrained.PretrainedFileError: ``path`` cannot be written (``path`` is then unchanged).
    """
    if not isinstance(model, VAE):
        raise checks.ArgumentTypeError(f"model must be a course_lib.vae.VAE, got {type(model).__name__}")
    arch = {"data_dim": model.data_dim, "latent_dim": model.latent_dim, "hidden_dims": list(model.hidden_dims),
            "autoregressive": isinstance(model, AutoregressiveVAE)}
    if isinstance(model, ConditionalVAE):
        arch["num_classes"] = model.num_classes
    if isinstance(model, MixturePriorVAE):
        arch["prior_components"] = model.prior_components
        arch["prior"] = "vamp" if isinstance(model, VampPriorVAE) else "mixture"
    state = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu()
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"model weight {name!r} has NaN or infinite entries (a diverged run?); not saved")
        if bool((value.abs() > _FLOAT16_MAX).any()):
            raise ValueError(f"model weight {name!r} has entries beyond float16's range (|w| > {_FLOAT16_MAX:g}); not saved")
        state[name] = value.to(torch.float16)
    return pretrained.save(path, {"arch": arch, "state_dict": state, "metadata": metadata}, kind="vae")


def load_pretrained(path: str | os.PathLike, sha256: str | None = None) -> tuple[VAE, dict]:
    """Load a file written by :func:`save_pretrained`, checking its digest, with ``weights_only=True``.

    Every file written by :func:`save_pretrained` carries a SHA-256 of its bytes
    (:mod:`course_lib.pretrained`), checked on every load, so a file with any changed
    byte is refused even without ``sha256``. ``sha256`` pins the exact file (another
    version of the weights is refused too). A file written by course_lib before
    embedded digests (issue 18) has none: it is loaded only when ``sha256`` is given
    and matches, and refused otherwise.

    Args:
        path: the checkpoint file.
        sha256: the expected SHA-256 of the file (64 hex digits, any case, surrounding
            whitespace ignored); None checks only the embedded digest.

    Returns:
        ``(model, metadata)``: a float32 :class:`VAE` (or :class:`AutoregressiveVAE`) in
        eval mode on the CPU, and the saved metadata dict.

    Raises:
        course_lib.pretrained.PretrainedFileError (a ``course_lib.training.CheckpointError``
            and a ``ValueError``): naming ``path``, when the file is missing, empty,
            truncated, corrupt (its embedded digest does not match), of another SHA-256 than
            ``sha256``, without a digest and no ``sha256`` given, not loadable with
            ``weights_only=True``, or not a VAE file.
        ArgumentTypeError (TypeError and ValueError): ``path`` or ``sha256`` of the wrong type.
        ValueError: ``sha256`` is not 64 hex digits.
    """
    saved = pretrained.load(path, kind="vae", sha256=sha256, missing_hint=_MAKE_HINT)
    path = os.fspath(path)
    arch, state, metadata = saved.get("arch"), saved.get("state_dict"), saved.get("metadata")
    if not (isinstance(arch, dict) and isinstance(state, dict) and isinstance(metadata, dict)
            and all(isinstance(v, Tensor) for v in state.values())):
        raise pretrained.PretrainedFileError(
            f"pretrained file {path!r} is a torch file but not a VAE file from save_pretrained "
            "(it needs the entries 'arch', 'state_dict' and 'metadata')"
        )
    arch = dict(arch)
    try:
        if arch.pop("autoregressive", False):
            cls = AutoregressiveVAE
        elif "num_classes" in arch:
            cls = ConditionalVAE
        else:
            # files written before VampPriorVAE existed name no "prior": prior_components means a mixture
            prior = arch.pop("prior", "mixture" if "prior_components" in arch else None)
            cls = {"mixture": MixturePriorVAE, "vamp": VampPriorVAE, None: VAE}.get(prior)
            if cls is None:
                raise ValueError(f"unknown prior {prior!r}")
        model = cls(**arch)
        model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()})
    except (TypeError, ValueError, RuntimeError) as err:
        raise pretrained.PretrainedFileError(
            f"pretrained file {path!r} does not describe a VAE that this course_lib can build "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return model.eval(), metadata
