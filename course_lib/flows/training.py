"""Maximum-likelihood training and evaluation of a flow (Chapter 1).

:func:`train` fits a :class:`~course_lib.flows.core.FlowModel` (NICE, RealNVP,
:class:`~course_lib.flows.image.ImageRealNVP`) with Adam on the mean negative
log-likelihood, through :class:`course_lib.training.TrainingRun` (divergence
guard, time budget, checkpoints, faithful resume); :func:`evaluate_log_likelihood`
gives the mean log-likelihood of a data set. Units: nats per example.

References:
    L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components
    Estimation. arXiv:1410.8516, 2014, §5.1 (maximum likelihood with Adam).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from course_lib import checks
from course_lib.flows.core import FlowModel
from course_lib.training import RunOptions, TrainingRun

__all__ = ["TrainConfig", "train", "evaluate_log_likelihood"]

HISTORY_KEYS = ("epoch", "step", "seconds", "train_log_likelihood", "test_log_likelihood", "epoch_complete")


@dataclass(frozen=True)
class TrainConfig(RunOptions):
    """Maximum-likelihood training of a flow (:func:`train`); every field is checked on construction.

    The run fields ``max_seconds``, ``checkpoint_path``, ``resume`` and ``progress``
    (keyword-only) come from :class:`course_lib.training.RunOptions`, with its
    defaults and checks. Here ``max_seconds`` is checked after each step and an
    epoch cut short is logged as such; the checkpoint at ``checkpoint_path`` is
    written after every epoch and when the run stops.

    Raises:
        ValueError: a field outside its range (the message names the field and the range);
            ArgumentTypeError (a TypeError and a ValueError) for a bool or a str where a
            number belongs.
    """

    epochs: int = 10  # passes over the training set
    batch_size: int = 100  # examples per gradient step
    lr: float = 1e-3  # Adam learning rate (the NICE paper's)
    weight_decay: float = 0.0  # L2 penalty added by Adam
    adam_eps: float = 1e-8  # Adam's epsilon (fmu2/NICE uses 1e-4: see benchmarks/nice_mnist.py --adam-eps)
    seed: int = 0  # seed of the generator that shuffles and is passed to ``transform``

    def __post_init__(self):
        super().__post_init__()
        checks.positive_int("epochs", self.epochs)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_float("lr", self.lr)
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.positive_float("adam_eps", self.adam_eps)
        checks.nonnegative_int("seed", self.seed)


def _check_flow(model) -> None:
    if not isinstance(model, FlowModel):
        raise checks.ArgumentTypeError(f"model must be a flows.FlowModel (NICE, RealNVP), got {type(model).__name__}")


def _check_data(name: str, data, dim: int) -> Tensor:
    """A non-empty (N, dim) tensor without NaN or inf (integer pixels are fine: a transform may take them)."""
    data = checks.tensor(name, data)
    if data.ndim != 2 or data.shape[1] != dim:
        raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(data.shape)}")
    if data.shape[0] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(data.shape)}, need at least one row")
    return checks.finite(name, data)


def _check_callable(name: str, fn) -> None:
    if fn is not None and not callable(fn):
        raise checks.ArgumentTypeError(f"{name} must be a function or None, got {type(fn).__name__}")


@torch.no_grad()
def evaluate_log_likelihood(
    model: FlowModel,
    data: Tensor,
    transform: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 1000,
) -> float:
    """Mean log-likelihood of ``data`` under ``model``, in nats per example.

    Args:
        model: a :class:`FlowModel`.
        data: (N, D) tensor, N >= 1, on any device; batches are moved to the
            model's device.
        transform: applied to each batch before the model (e.g. dequantization);
            make it deterministic so that evaluations compare.
        batch_size: evaluation batch size (int >= 1).

    Returns:
        The mean of ``model.log_prob`` over the N examples (nats).

    Raises:
        ValueError: ``data`` not (N, D), empty, or with NaN/inf entries; a bad ``batch_size``.
        ArgumentTypeError (a TypeError): ``model`` not a FlowModel, ``data`` not a tensor.
    """
    _check_flow(model)
    data = _check_data("data", data, model.dim)
    _check_callable("transform", transform)
    batch_size = checks.positive_int("batch_size", batch_size)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for start in range(0, data.shape[0], batch_size):
        batch = data[start : start + batch_size].to(device)
        if transform is not None:
            batch = transform(batch)
        total += model.log_prob(batch).sum().item()
        count += batch.shape[0]
    model.train(was_training)
    return total / count


def train(
    model: FlowModel,
    train_data: Tensor,
    config: TrainConfig = TrainConfig(),
    test_data: Tensor | None = None,
    transform: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    test_transform: Callable[[Tensor], Tensor] | None = None,
) -> tuple[FlowModel, dict]:
    """Fit a flow by maximum likelihood: Adam on the mean negative log-likelihood (NICE §5.1).

    The loop goes through :class:`course_lib.training.TrainingRun`: the divergence
    guard, a checkpoint after every epoch and at the step boundary where the time
    budget, Ctrl-C or an exception stopped it, and faithful resume, also mid-epoch
    (the permutation, the position in it, the epoch's sums and the generator that
    draws the permutation and the ``transform`` noise are all checkpointed).

    Args:
        model: a :class:`FlowModel` already on its device; batches follow it.
        train_data: (N, D), N >= 1, no NaN/inf; any dtype ``transform`` accepts
            (uint8 pixels for :func:`course_lib.data.dequantize`).
        config: a :class:`TrainConfig`. Resuming under another config is refused,
            except for ``epochs`` (extend a run), ``lr`` (resume a diverged run, whose
            last finite state is kept, with a lower one) and
            :data:`course_lib.training.ALWAYS_SAFE_TO_CHANGE`.
        test_data: optional (M, D) examples, evaluated after every epoch.
        transform: ``transform(batch, generator) -> float batch`` for training batches.
        test_transform: ``transform(batch) -> float batch``; deterministic, so epochs compare.

    Returns:
        ``(model, history)``, model in eval mode. ``history``: lists with one entry
        per epoch, ``epoch``, ``step``, ``seconds`` (cumulative wall time of the loop, evaluations included),
        ``train_log_likelihood`` (mean over the epoch's batches), ``test_log_likelihood``
        (nats per example; NaN without test data), ``epoch_complete`` (False for an
        epoch cut short); and ``stop_reason``: ``"completed"``, ``"time_budget"`` or
        ``"interrupted"``.

    Raises:
        ValueError: data of the wrong shape, empty, or with NaN/inf entries.
        ArgumentTypeError (TypeError): a model, config, data or transform of the wrong kind.
        TrainingDiverged (FloatingPointError): a non-finite loss, gradient or parameter;
            names the step, the quantity and the likely cause (bad input first).
        CheckpointError: an unreadable checkpoint, or one from another config (lists the fields).

    References:
        Dinh, Krueger, Bengio. NICE, 2014, §5.1 (maximum likelihood with Adam).
    """
    _check_flow(model)
    if not isinstance(config, TrainConfig):
        raise checks.ArgumentTypeError(f"config must be a flows.TrainConfig, got {type(config).__name__}")
    train_data = _check_data("train_data", train_data, model.dim)
    if test_data is not None:
        test_data = _check_data("test_data", test_data, model.dim)
    _check_callable("transform", transform)
    _check_callable("test_transform", test_transform)

    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, eps=config.adam_eps)
    generator = torch.Generator(device=train_data.device).manual_seed(config.seed)  # shuffling and transform noise
    n = train_data.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    run = TrainingRun(
        config, model=model, optimizer=optimizer, generators={"data": generator}, history_keys=HISTORY_KEYS,
        allow_changed=("epochs", "lr"), total=config.epochs * steps_per_epoch, desc="train",
    )
    fresh_epoch = {"perm": None, "position": 0, "sum_log_likelihood": 0.0, "seen": 0}
    state = run.restore(default={"epoch": 0, **fresh_epoch})
    if run.history["epoch_complete"] and not run.history["epoch_complete"][-1]:
        for key in HISTORY_KEYS:  # the epoch that was cut short is finished below and logged again
            run.history[key].pop()

    model.train()
    with run:
        while state["epoch"] < config.epochs:
            if state["perm"] is None:
                state.update(fresh_epoch, perm=torch.randperm(n, generator=generator, device=train_data.device))
            while state["position"] < steps_per_epoch:
                i = state["position"]
                batch = train_data[state["perm"][i * config.batch_size : (i + 1) * config.batch_size]]
                if transform is not None:
                    batch = transform(batch, generator)
                batch = batch.to(device, non_blocking=True)
                loss = -model.log_prob(batch).mean()  # negative log-likelihood, nats per example
                nll = run.optimize(loss, inputs=batch)  # guard + zero_grad/backward/step
                state.update(
                    position=i + 1,
                    sum_log_likelihood=state["sum_log_likelihood"] - nll * batch.shape[0],
                    seen=state["seen"] + batch.shape[0],
                )
                if run.end_step(state, nll=nll):  # time budget or Ctrl-C: stop at this boundary
                    break
            complete = state["position"] >= steps_per_epoch
            test_ll = float("nan") if test_data is None else evaluate_log_likelihood(model, test_data, test_transform)
            model.train()
            run.log(
                epoch=state["epoch"] + 1, step=run.step, seconds=run.seconds,
                train_log_likelihood=state["sum_log_likelihood"] / state["seen"],
                test_log_likelihood=test_ll, epoch_complete=complete,
            )
            if complete:
                state.update(fresh_epoch, epoch=state["epoch"] + 1)
            run.save(state)
            if run.stop_reason is not None:
                break
    model.eval()
    return model, run.finish()
