"""The one training core that every trainer in ``course_lib`` goes through.

Each training loop (NICE/RealNVP, PixelCNN, VAE, REINFORCE, ES, actor-critic,
DQN) stays readable top to bottom in its own module, CleanRL style. What is
the same in all of them lives here, once (the checkpoint file I/O and the RNG
states are written in :mod:`course_lib._checkpoint` and imported here: use them as
``training.save_checkpoint`` and so on):

==============================  ==================================================
piece                           what it does
==============================  ==================================================
:class:`TrainingRun`            counters, time budget, history, tqdm bar, the
                                divergence guard, checkpoint/resume, Ctrl-C
:meth:`TrainingRun.optimize`    ``zero_grad -> backward -> step`` with the guard
                                on the loss, the gradients and the parameters
:func:`save_checkpoint`,        the checkpoint file and the RNG state, defined in
:func:`load_checkpoint`,        :mod:`course_lib._checkpoint` (its docstring says
:func:`rng_state`,              what each does) and re-exported here
:func:`set_rng_state`
:func:`config_diff`             which config fields differ from a checkpoint's
:func:`progress_bar`            the tqdm bar every trainer shows
:class:`TrainingDiverged`       the error of the divergence guard
:class:`CheckpointError`        the error of a bad checkpoint file
==============================  ==================================================

How a loop uses it (the flows trainer is the full example)::

    run = TrainingRun(config, model=model, optimizer=optimizer,
                      generators={"shuffle": generator},
                      history_keys=("epoch", "step", "loss"),
                      checkpoint_path=config.checkpoint_path,
                      max_seconds=config.max_seconds, total=total_steps)
    state = run.restore(default={"epoch": 0, "position": 0})  # resumes if a checkpoint exists
    with run:                               # Ctrl-C stops at a step boundary, errors keep a checkpoint
        while ...:
            loss = ...
            run.optimize(loss, inputs=batch)    # guard + step
            state.update(position=...)          # every loop-carried variable lives in ``state``
            if run.end_step(state):             # counters, bar, time budget, interrupt
                break
        run.log(epoch=..., step=run.step, loss=...)
        run.save(state)
    return model, run.finish()

**Faithful resume.** A checkpoint is taken only at a *step boundary*: the
model, the optimizer, the counters, every RNG state and the loop's own
``state`` dict are consistent there, so a run resumed from it ends with the
same parameters as one that never stopped (bit-identical on CPU; tested in
``tests/test_training.py``). If an exception happens *inside* a step after the
optimizer has moved, the file on disk is left as it was: it is the last
finite, consistent state, and a diverged run can be resumed from it with a
lower learning rate (``allow_changed=("lr",)``).

**No lost work.** A run checks its ``checkpoint_path`` before training (the
folder is created when missing and must be writable). Every trainer writes its
checkpoint at step boundaries during the run, not only at the end, so a run
killed (even by SIGKILL) resumes from the last boundary to the same result as
one never stopped (``tests/test_kill_resume.py``). A file damaged on disk is
refused, not resumed: every byte is covered by a SHA-256.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from course_lib import checks

# The checkpoint file I/O and the RNG states live in course_lib/_checkpoint.py; they are
# imported here by name, so ``training.save_checkpoint`` (what TrainingRun calls, and
# what a test may patch) and every other name below stay where they were.
from course_lib._checkpoint import (
    CheckpointError,
    _check_checkpoint_path,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from course_lib._checkpoint import _TRAILER_LEN, _TRAILER_MAGIC, _remove_stale_temp_files  # noqa: F401  (tests use them)

__all__ = [
    "TrainingRun",
    "TrainingDiverged",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "rng_state",
    "set_rng_state",
    "config_diff",
    "progress_bar",
    "check_finite_parameters",
    "ALWAYS_SAFE_TO_CHANGE",
    "RunOptions",
]

#: Config fields that may differ between a checkpoint and the run that resumes it.
ALWAYS_SAFE_TO_CHANGE = frozenset({"max_seconds", "progress", "checkpoint_path", "resume", "device"})


class TrainingDiverged(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter.

    Attributes:
        step: the optimisation step (0-based count of completed steps) where it happened.
        quantity: ``"loss"``, ``"gradient"``, ``"parameter"``, or a name the loop gave.
        cause: the most likely cause, checked in order: non-finite inputs, a
            non-finite initialisation, then a too-large step size.
    """

    def __init__(self, step: int, quantity: str, cause: str, detail: str = "", problem: str = "is not finite"):
        self.step, self.quantity, self.cause = step, quantity, cause
        msg = f"training diverged at step {step}: the {quantity} {problem}{detail}. Likely cause: {cause}"
        super().__init__(msg)


# ----------------------------------------------------------------------------
# The run fields every trainer's config shares
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a training run is run, not what it learns: the fields every trainer's config shares.

    Every config in ``course_lib`` (``flows.TrainConfig``, ``autoregressive.TrainConfig``,
    ``vae.VAEConfig``, ``rl.ReinforceConfig``, ``rl.ESConfig``, ``rl.ActorCriticConfig``,
    ``rl.TabularQConfig``, ``rl.FittedQConfig``, ``rl.DQNConfig``) inherits from this class,
    so all of them accept and refuse the same values, with the same messages. The
    fields are keyword-only. Subclasses that define ``__post_init__`` call
    ``super().__post_init__()``. Changing any of them between a checkpoint and the
    run that resumes it is allowed (:data:`ALWAYS_SAFE_TO_CHANGE`).

    Attributes:
        max_seconds: training time budget in seconds, a positive float (``inf`` or
            ``None``: no budget). A run stopped by it says
            ``history["stop_reason"] == "time_budget"`` and can be resumed.
        checkpoint_path: file of the resumable checkpoint (a ``str`` or
            ``os.PathLike``, stored as ``str``); ``None``: no file. An existing
            file there is resumed from when ``resume`` is true. The trainer checks
            it before its first step (:class:`TrainingRun`): the folder is created
            when missing and must be writable, else :class:`CheckpointError`.
        resume: continue from ``checkpoint_path`` when that file exists (a bool).
        progress: show a tqdm progress bar (a bool).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): a field of the wrong kind
            (``progress="no"``, ``checkpoint_path=123``, ``max_seconds="5"``).
        ValueError: ``max_seconds`` <= 0 or NaN; an empty ``checkpoint_path``.
    """

    max_seconds: float | None = None
    checkpoint_path: str | None = None
    resume: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.max_seconds is not None:
            object.__setattr__(
                self, "max_seconds", checks.positive_float("max_seconds", self.max_seconds, finite=False)
            )
        if self.checkpoint_path is not None:
            if not isinstance(self.checkpoint_path, (str, os.PathLike)):
                raise checks.ArgumentTypeError(
                    f"checkpoint_path must be a str or os.PathLike path, or None, got {self.checkpoint_path!r}"
                )
            path = os.fspath(self.checkpoint_path)
            if not isinstance(path, str):
                raise checks.ArgumentTypeError(f"checkpoint_path must be a str path, got bytes {path!r}")
            if not path:
                raise ValueError("checkpoint_path must be a non-empty path or None, got ''")
            object.__setattr__(self, "checkpoint_path", path)
        for name in ("resume", "progress"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise checks.ArgumentTypeError(f"{name} must be a bool (True or False), got {value!r}")
            object.__setattr__(self, name, bool(value))


# ----------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------
def progress_bar(total: int | None, desc: str, enabled: bool = True, unit: str = "step", initial: int = 0):
    """The tqdm bar every trainer shows (``tqdm.auto``: a widget in Jupyter, text elsewhere)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


# ----------------------------------------------------------------------------
# Resuming: which config fields may change
# ----------------------------------------------------------------------------
def _plain(value):
    """Config values as plain, comparable Python (tuples -> lists, recursively)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def config_diff(saved: Mapping, current: Mapping, allow_changed: Iterable[str] = ()) -> list[str]:
    """The fields that differ between two config dicts, as ``"name: saved -> current"`` lines.

    Fields in :data:`ALWAYS_SAFE_TO_CHANGE` and in ``allow_changed`` are ignored.
    """
    allowed = ALWAYS_SAFE_TO_CHANGE | set(allow_changed)
    lines = []
    for key in sorted(set(saved) | set(current)):
        if key in allowed:
            continue
        a, b = _plain(saved.get(key, "<missing>")), _plain(current.get(key, "<missing>"))
        if a != b:
            lines.append(f"{key}: {a!r} -> {b!r}")
    return lines


# ----------------------------------------------------------------------------
# The divergence guard
# ----------------------------------------------------------------------------
def _nonfinite(tensors: Iterable[torch.Tensor]) -> bool:
    tensors = [t for t in tensors if t is not None and (t.is_floating_point() or t.is_complex())]
    if not tensors:
        return False
    norms = torch._foreach_norm([t.detach() for t in tensors])
    return not bool(torch.isfinite(torch.stack([n.float().cpu() for n in norms])).all())


def _clip_grad_norm(params: list[torch.Tensor], max_norm: float) -> float:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)``; returns the total norm before clipping.

    The same arithmetic (scale by ``min(1, max_norm / (norm + 1e-6))``) with the
    three foreach kernels inlined when every gradient shares one device and dtype:
    for the tiny MLPs of the RL chapters the library call's bookkeeping costs more
    than the arithmetic. Otherwise the library call itself.
    """
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if len({(g.device, g.dtype) for g in grads}) > 1:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))
    return float(total)


def _nonfinite_parameter_name(model: nn.Module) -> str:
    """The first parameter with a NaN or inf entry, else the first whose norm overflows (its
    entries finite but huge: what :func:`_nonfinite` also flags)."""
    named = list(model.named_parameters())
    return next((n for n, p in named if not bool(torch.isfinite(p).all())), None) or next(
        (n for n, p in named if not bool(torch.isfinite(p.detach().norm()))), "?")


def check_finite_parameters(model: nn.Module, step: int, name: str = "parameter") -> None:
    """Raise :class:`TrainingDiverged` if any parameter of ``model`` is NaN or infinite."""
    if _nonfinite(model.parameters()):
        bad = _nonfinite_parameter_name(model)
        cause = (
            "the initial parameters are not finite: check the initialisation (or the checkpoint loaded)"
            if step == 0
            else "an update step was too large (lower the learning rate), or the objective is unbounded"
        )
        raise TrainingDiverged(step, f"{name} {bad!r}", cause)


class _Interrupt:
    """Defers Ctrl-C (SIGINT) to the next step boundary; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:  # second Ctrl-C: give up waiting for the boundary
            signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGINT, self._handler)
            except ValueError:
                self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
        return False


# ----------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------
_FROM_CONFIG = object()  # TrainingRun's default for a run field: read it from the config


class TrainingRun:
    """Bookkeeping shared by every training loop: see the module docstring for the pattern.

    Args:
        config: the trainer's frozen dataclass config (saved in checkpoints and
            compared on resume).
        model: the module being trained (several modules: pass an ``nn.ModuleDict``).
        optimizer: its optimizer, or ``None`` (ES updates parameters itself).
        generators: named ``torch.Generator`` / ``numpy.random.Generator``
            objects the loop draws from (shuffling, noise, environments); their
            states are saved and restored with the global RNGs.
        history_keys: the keys of the history dict (each a list, one entry per
            :meth:`log` call).
        checkpoint_path, resume, max_seconds, progress: default to the config's own
            fields (every trainer's config is a :class:`RunOptions`); given here, they win.
        checkpoint_path: where :meth:`save` writes; ``None`` for no file. Checked here,
            before any training: its folder is created if missing and must be writable.
        resume: continue from ``checkpoint_path`` when it exists.
        max_seconds: training time budget in seconds (``None``: none).
        allow_changed: config fields that may differ from the checkpoint's
            (beyond :data:`ALWAYS_SAFE_TO_CHANGE`), e.g. ``("lr",)`` to resume a
            diverged run with a lower learning rate.
        total: the progress bar's total (steps, env steps, ...).
        desc, unit, progress: the progress bar's label, unit and whether it shows.
        extra_modules: more modules whose state is checkpointed (a target
            network, a critic): name -> module.

    Raises:
        CheckpointError: naming ``checkpoint_path``, when it is a folder, its folder
            cannot be created, or no file can be written there.

    Attributes:
        step: completed optimisation steps (or loop iterations).
        elapsed: seconds of training so far, summed over resumed runs.
        history: dict of lists.
        stop_reason: ``None`` while running; then ``"time_budget"``,
            ``"interrupted"`` or whatever :meth:`stop` was given.
    """

    def __init__(
        self,
        config,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        generators: Mapping[str, object] | None = None,
        history_keys: Iterable[str] = (),
        checkpoint_path=_FROM_CONFIG,
        resume=_FROM_CONFIG,
        max_seconds=_FROM_CONFIG,
        allow_changed: Iterable[str] = (),
        total: int | None = None,
        desc: str = "train",
        unit: str = "step",
        progress=_FROM_CONFIG,
        extra_modules: Mapping[str, nn.Module] | None = None,
    ):
        if not dataclasses.is_dataclass(config):
            raise TypeError(f"config must be a dataclass instance, got {type(config).__name__}")
        # The run fields come from the config (every trainer's config is a RunOptions)
        # unless given here; a config without them gets RunOptions' defaults.
        run_fields = config if isinstance(config, RunOptions) else RunOptions()
        checkpoint_path = run_fields.checkpoint_path if checkpoint_path is _FROM_CONFIG else checkpoint_path
        resume = run_fields.resume if resume is _FROM_CONFIG else resume
        max_seconds = run_fields.max_seconds if max_seconds is _FROM_CONFIG else max_seconds
        progress = run_fields.progress if progress is _FROM_CONFIG else progress
        self.config = config
        self.model = model
        self.optimizer = optimizer
        self.generators = dict(generators or {})
        self.extra_modules = dict(extra_modules or {})
        self._history_keys = tuple(history_keys)
        self.history: dict[str, list] = {k: [] for k in self._history_keys}
        self.checkpoint_path = None if checkpoint_path is None else os.fspath(checkpoint_path)
        self.resume = resume
        self.max_seconds = max_seconds
        self.allow_changed = tuple(allow_changed)
        self.step = 0
        self.elapsed = 0.0
        self.stop_reason: str | None = None
        self.resumed = False
        self._bar_args = (total, desc, progress, unit)
        self._bar = None
        self._tic = None
        self._dirty = False  # the optimizer moved since the last step boundary
        self._boundary_state: dict | None = None
        self._boundary_rng: dict | None = None
        self._interrupt = _Interrupt()
        if self.checkpoint_path is not None:  # an unwritable place fails now, not at the first save
            _check_checkpoint_path(self.checkpoint_path)

    # -- resume ---------------------------------------------------------------
    def restore(self, default: dict | None = None) -> dict:
        """Load the checkpoint if there is one (and ``resume``), and return the loop's state dict.

        Returns ``default`` (a fresh copy) when starting from scratch.

        Raises:
            CheckpointError: for an unreadable file, or a checkpoint whose config
                differs in a field not allowed to change (the message lists them).
        """
        state = dict(default or {})
        if not (self.checkpoint_path and self.resume and os.path.exists(self.checkpoint_path)):
            self._mark_boundary(state)
            return state
        saved = load_checkpoint(self.checkpoint_path)
        diff = config_diff(saved["config"], dataclasses.asdict(self.config), self.allow_changed)
        if diff:
            raise CheckpointError(
                f"checkpoint {self.checkpoint_path!r} was written with a different config; refusing to resume.\n  "
                + "\n  ".join(diff)
                + "\nUse the same config, a new checkpoint_path, or allow_changed=(...) for a field that is safe to change."
            )
        device = next(self.model.parameters()).device
        self.model.load_state_dict(_to_device(saved["model"], device))
        for name, module in self.extra_modules.items():
            module.load_state_dict(_to_device(saved["extra_modules"][name], device))
        if self.optimizer is not None:
            self.optimizer.load_state_dict(saved["optimizer"])
            lr_field = next((f for f in ("lr", "learning_rate") if hasattr(self.config, f)), None)
            if lr_field in self.allow_changed:  # resuming a diverged run with a lower learning rate
                for group in self.optimizer.param_groups:
                    group["lr"] = getattr(self.config, lr_field)
        set_rng_state(saved["rng"], self.generators)
        self.step, self.elapsed = saved["step"], saved["elapsed"]
        self.history = {k: list(v) for k, v in saved["history"].items()}
        self.resumed = True
        state.update(saved["loop_state"])
        self._mark_boundary(state)
        return state

    # -- the guard --------------------------------------------------------------
    def _cause(self, inputs) -> str:
        tensors = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs or [])
        if any(_nonfinite([t]) for t in tensors if isinstance(t, torch.Tensor)):
            return "the input batch contains NaN or inf: check the data and any transform applied to it"
        lr = getattr(self.config, "lr", getattr(self.config, "learning_rate", None))
        lr_text = f" (it is {lr})" if lr is not None else ""
        if _nonfinite(self.model.parameters()):
            return (
                "the initial parameters are not finite: check the initialisation"
                if self.step == 0 and not self._dirty
                else f"the parameters became non-finite: an earlier update was too large; lower the learning rate{lr_text}"
            )
        return (
            f"the inputs and parameters are finite, so the update is too large: lower the learning rate{lr_text}, "
            "or check that the objective is bounded"
        )

    def check_finite(self, quantity: str, value, inputs=None) -> None:
        """Raise :class:`TrainingDiverged` if ``value`` (a number or tensor) is not finite."""
        t = torch.as_tensor(value).detach()
        if not bool(torch.isfinite(t).all()):
            shown = f" (it is {t.item()})" if t.numel() == 1 else ""
            raise TrainingDiverged(self.step, quantity, self._cause(inputs), shown)

    def optimize(self, loss: torch.Tensor, inputs=None, clip_grad_norm: float | None = None) -> float:
        """One guarded update: check the loss, take the gradients (``torch.autograd.grad``, which
        replaces ``zero_grad`` + ``backward``), check them, optionally clip them, ``step``.

        The parameters are checked once per step boundary (:meth:`end_step`), not after
        every optimizer step: a step that makes them non-finite makes the next loss
        non-finite, which the next call reports (naming the parameters as the cause),
        and :meth:`end_step` refuses to close a step with non-finite parameters, so
        no checkpoint ever holds them.

        Args:
            loss: a scalar tensor to minimise.
            inputs: the batch (a tensor or a list of tensors), used only to name the
                cause when something is not finite.
            clip_grad_norm: clip the global gradient norm to this value (``None``: no clipping).

        Returns:
            the loss as a float.

        Raises:
            TrainingDiverged: for a non-finite loss, gradient or parameter.
        """
        value = loss.item() if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None
        if value is None or not math.isfinite(value):
            self.check_finite("loss", loss, inputs)  # raises, with the message
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]
        # zero_grad + backward, in one call: autograd.grad returns fresh gradients
        # (None for a parameter the loss does not use) instead of accumulating into
        # zeroed ones, which for a tiny network is a sizeable share of the step
        for p, g in zip(params, torch.autograd.grad(loss, params, allow_unused=True)):
            p.grad = g
        if clip_grad_norm is not None:
            # the total norm that clipping computes anyway is the gradient check:
            # it is finite exactly when every gradient entry is
            bad_gradient = not math.isfinite(_clip_grad_norm(params, clip_grad_norm))
        else:
            bad_gradient = _nonfinite([p.grad for p in params if p.grad is not None])
        if bad_gradient:
            raise TrainingDiverged(self.step, "gradient", self._cause(inputs))
        self.optimizer.step()
        self._dirty = True
        return value

    def _check_parameters(self) -> None:
        """Raise :class:`TrainingDiverged` if an update since the last boundary left a non-finite parameter."""
        if self._dirty and self.model is not None and _nonfinite(self.model.parameters()):
            lr = self.optimizer.param_groups[0].get("lr") if self.optimizer is not None else None
            raise TrainingDiverged(
                self.step, f"parameter {_nonfinite_parameter_name(self.model)!r}",
                "an update made it non-finite: lower the learning rate" + (f" (it is {lr})" if lr is not None else ""),
                " at the end of the step",
            )

    def mark_updated(self) -> None:
        """Tell the run that parameters changed outside :meth:`optimize` (ES, a Polyak update)."""
        self._dirty = True

    # -- the loop ---------------------------------------------------------------
    def __enter__(self):
        total, desc, progress, unit = self._bar_args
        self._bar = progress_bar(total, desc, progress, unit, initial=min(self.step, total or self.step))
        self._tic = time.perf_counter()
        self._interrupt.__enter__()
        return self

    def _now_elapsed(self) -> float:
        return self.elapsed + (time.perf_counter() - self._tic if self._tic is not None else 0.0)

    def out_of_time(self) -> bool:
        """True when the time budget is spent."""
        return self.max_seconds is not None and self._now_elapsed() >= self.max_seconds

    def end_step(self, state: dict | None = None, advance: int = 1, **postfix) -> bool:
        """Close a step: count it, move the bar, remember ``state`` as the last boundary.

        Args:
            state: the loop's state dict at this boundary (what :meth:`restore` returns).
            advance: how far the progress bar moves (1 step, or the env steps of the update).
            postfix: values shown on the bar.

        Returns:
            True when the loop must stop now (time budget spent, Ctrl-C pressed);
            :attr:`stop_reason` says which.
        """
        self._check_parameters()
        self.step += 1
        self._dirty = False
        self._mark_boundary(state)
        if self._bar is not None:
            self._bar.update(advance)
            if postfix:
                self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in postfix.items()}, refresh=False)
        if self._interrupt.requested:
            self.stop_reason = "interrupted"
        elif self.out_of_time():
            self.stop_reason = "time_budget"
        return self.stop_reason is not None

    def stop(self, reason: str) -> None:
        """Record why the loop stops early (e.g. ``"callback"``)."""
        self.stop_reason = reason

    @property
    def seconds(self) -> float:
        """Training seconds so far (summed over resumed runs)."""
        return self._now_elapsed()

    def log(self, **values) -> None:
        """Append one entry to each history list (every key of ``history_keys`` must be given).

        Other entries a loop keeps in :attr:`history` (a list of policy snapshots) are
        not per-step lists and are not required here.
        """
        missing = set(self._history_keys) - set(values)
        if missing:
            raise KeyError(f"log() is missing history keys {sorted(missing)}")
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)

    def _mark_boundary(self, state: dict | None) -> None:
        """Remember a consistent point: a shallow copy of the loop state and, when there is a
        checkpoint file, every RNG state *now* (a later draw, e.g. the next batch's noise, must
        not leak into a checkpoint written by :meth:`__exit__` for this boundary)."""
        if state is not None:
            self._boundary_state = dict(state)  # values are replaced, not mutated, by the loops
        if self.checkpoint_path:
            self._boundary_rng = rng_state(self.generators)

    def save(self, state: dict | None = None) -> None:
        """Make the current point a boundary and write its checkpoint (no-op without ``checkpoint_path``).

        Call it where the loop's ``state``, the model, the optimizer and every RNG agree
        (after :meth:`end_step` and any end-of-epoch work such as an evaluation).
        """
        self._check_parameters()
        self._mark_boundary(state)
        self._write_boundary()

    def _write_boundary(self) -> None:
        if not self.checkpoint_path:
            return
        save_checkpoint(
            self.checkpoint_path,
            {
                "model": self.model.state_dict(),
                "extra_modules": {n: m.state_dict() for n, m in self.extra_modules.items()},
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
                "rng": self._boundary_rng if self._boundary_rng is not None else rng_state(self.generators),
                "step": self.step,
                "elapsed": self._now_elapsed(),
                "history": self.history,
                "config": dataclasses.asdict(self.config),
                "loop_state": self._boundary_state or {},
            },
        )

    def __exit__(self, exc_type, exc, tb):
        self._interrupt.__exit__()
        if self._tic is not None:
            self.elapsed += time.perf_counter() - self._tic
            self._tic = None
        if self._bar is not None:
            self._bar.close()
        if exc_type is None:
            return False
        if exc_type is KeyboardInterrupt:
            self.stop_reason = "interrupted"
        # Keep the last consistent state on disk: at a step boundary the saved state
        # is exactly where a resumed run must start; inside a half-done step it is not,
        # and the previous checkpoint (the last finite state) stays as it is.
        saved = False
        if self.checkpoint_path and not self._dirty and self._boundary_state is not None:
            try:
                self._write_boundary()  # the state and RNGs remembered at the boundary, not now
                saved = True
            except Exception:  # never hide the original error behind a checkpoint error
                pass
        if isinstance(exc, BaseException) and hasattr(exc, "add_note"):
            where = (
                f"a checkpoint of the last step boundary (step {self.step}) was saved to {self.checkpoint_path!r}"
                if saved
                else (
                    f"the checkpoint at {self.checkpoint_path!r} holds the last finite state saved"
                    if self.checkpoint_path
                    else "set checkpoint_path to keep the state on disk"
                )
            )
            exc.add_note(f"course_lib: the partial history is in the exception's .history attribute; {where}.")
            try:
                exc.history = self.history
                exc.model = self.model
            except AttributeError:
                pass
        return False

    def finish(self) -> dict:
        """The history, with ``history["stop_reason"]`` set (``"completed"`` if nothing stopped the loop)."""
        self.history["stop_reason"] = self.stop_reason or "completed"
        return self.history


def _to_device(state_dict: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in state_dict.items()}
