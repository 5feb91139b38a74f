"""The replay buffer of DQN (Chapter 7): a preallocated ring buffer of transitions and its sampling rule.

Part of :mod:`course_lib.rl.dqn`, which imports every name here (``rl.dqn.ReplayBuffer``
and ``rl.ReplayBuffer`` are these).

==============================  =====================================================
piece                           what it is
==============================  =====================================================
:class:`ReplayBuffer`           preallocated ring buffer of tensors, uniform sampling,
                                ``state_dict`` / ``load_state_dict`` for checkpoints
:class:`ReplayBatch`            a sampled minibatch (a named tuple of tensors)
:func:`sample_indices`          the buffer's sampling rule (pure function)
==============================  =====================================================

Shapes: ``B`` transitions in a minibatch (``batch_size``; Chapter 7's :math:`\mathcal B`), ``N``
transitions added at once.

References:
    L.-J. Lin, "Self-improving reactive agents based on reinforcement learning, planning
    and teaching", Machine Learning 8, 1992 (experience replay).
    V. Mnih et al., "Human-level control through deep reinforcement learning", Nature 518,
    2015 (Algorithm 1).
    CS182 notes section 7.6 (Algorithm 20).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from course_lib import checks

__all__ = ["ReplayBatch", "ReplayBuffer", "sample_indices"]



class ReplayBatch(NamedTuple):
    """A sampled minibatch of ``B`` transitions (``batch_size``; Chapter 7's :math:`\mathcal B`):
    ``obs`` ``(B, *obs_shape)``, ``actions`` ``(B,)`` int64,
    ``rewards`` ``(B,)`` float32, ``next_obs`` ``(B, *obs_shape)``, ``terminated`` ``(B,)`` bool."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


def sample_indices(size: int, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniform sampling *with replacement* of ``batch_size`` slots among the ``size`` filled ones.

    Args:
        size: number of stored transitions (``len(buffer)``), >= 1.
        batch_size: how many indices, >= 1.
        generator: a ``torch.Generator`` for reproducible draws.

    Returns:
        int64 tensor ``(batch_size,)`` with values in ``[0, size)``.

    Raises:
        ValueError: ``size`` or ``batch_size`` not a positive int (naming it).

    References:
        Mnih et al. 2015, Algorithm 1 ("sample random minibatch of transitions from D").
    """
    size = checks.positive_int("size", size)
    batch_size = checks.positive_int("batch_size", batch_size)
    return torch.randint(size, (batch_size,), generator=generator)


class ReplayBuffer:
    """A preallocated ring buffer of transitions ``(s, a, r, s', terminated)``.

    Slot ``i`` is overwritten when the buffer is full, oldest first, so the buffer
    always holds exactly the newest ``min(added, capacity)`` transitions. Only
    ``terminated`` is stored: a time-limit truncation still bootstraps from ``s'``.

    Args:
        capacity: maximum number of transitions (>= 1).
        obs_shape: shape of one observation, e.g. ``(4,)`` or ``(4, 84, 84)``.
        obs_dtype: ``torch.float32`` (vectors) or ``torch.uint8`` (frames, 4x less memory).
        device: where the tensors live (sampling happens there).

    What :meth:`add` stores is what it was given, or it refuses: observations must be
    values ``obs_dtype`` holds exactly when it is an integer type (for ``uint8``:
    integers in ``[0, 255]``; a floating ``obs_dtype`` rounds to its precision), actions
    integers, ``terminated`` booleans or 0/1.

    Raises:
        ValueError: naming ``capacity``, ``obs_shape``, ``obs_dtype`` or ``device``.

    References:
        Lin 1992 (experience replay); Mnih et al. 2015, Algorithm 1; CS182 notes Algorithm 20.
    """

    def __init__(self, capacity: int, obs_shape, obs_dtype: torch.dtype = torch.float32, device="cpu"):
        self.capacity = checks.positive_int("capacity", capacity)
        self.obs_shape = checks.int_sizes("obs_shape", obs_shape)
        if not isinstance(obs_dtype, torch.dtype):
            raise checks.ArgumentTypeError(f"obs_dtype must be a torch.dtype, got {type(obs_dtype).__name__}")
        self.device = checks.device("device", device)
        c = self.capacity
        self.obs = torch.zeros((c, *self.obs_shape), dtype=obs_dtype, device=self.device)
        self.next_obs = torch.zeros((c, *self.obs_shape), dtype=obs_dtype, device=self.device)
        self.actions = torch.zeros(c, dtype=torch.int64, device=self.device)
        self.rewards = torch.zeros(c, dtype=torch.float32, device=self.device)
        self.terminated = torch.zeros(c, dtype=torch.bool, device=self.device)
        self.position = 0  # next slot to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _as(self, name: str, value, shape: tuple | None, dtype: torch.dtype) -> torch.Tensor:
        """``value`` as a tensor of ``shape`` and ``dtype`` on the buffer's device, refusing what
        the conversion would change. The checks on the values run only when the dtype
        differs, so the usual call (the env's own dtypes) pays for none of them."""
        try:
            t = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise checks.ArgumentTypeError(
                f"{name} must be a tensor or array of numbers, got {type(value).__name__}"
            ) from None
        if shape is None:  # obs: (N, *obs_shape), any N
            if t.ndim != 1 + len(self.obs_shape) or tuple(t.shape[1:]) != self.obs_shape:
                raise ValueError(f"{name} must have shape (N, *{self.obs_shape}), got {tuple(t.shape)}")
        elif tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
        if t.dtype != dtype:
            _check_convertible(name, t, dtype)
        return t.to(device=self.device, dtype=dtype)

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        """Store ``N`` transitions: ``obs``/``next_obs`` ``(N, *obs_shape)``, the others ``(N,)``.

        Tensors, NumPy arrays and lists are accepted. Values are stored exactly or refused:

        - ``obs``, ``next_obs``: with an integer ``obs_dtype`` (``uint8`` frames) only
          integers that it holds (``uint8``: ``[0, 255]``; ``0.5``, ``300`` or ``-1`` are
          refused rather than rounded or wrapped); a floating ``obs_dtype`` takes any
          real number (rounded to its precision, as ``torch.float32`` does);
        - ``action``: integers (action indices; ``1.0`` is accepted, ``1.7`` and bools are not);
        - ``reward``: real numbers (stored as float32);
        - ``terminated``: bools, or numbers that are all 0 or 1.

        Raises:
            ValueError: for a shape that does not match, or a value the buffer cannot
                store as given (naming the argument).
            checks.ArgumentTypeError (a TypeError and a ValueError): something that is not
                numbers (a str, None), or bool actions.
        """
        obs_t = self._as("obs", obs, None, self.obs.dtype)
        n = obs_t.shape[0]
        next_t = self._as("next_obs", next_obs, (n, *self.obs_shape), self.obs.dtype)
        act_t = self._as("action", action, (n,), torch.int64)
        rew_t = self._as("reward", reward, (n,), torch.float32)
        term_t = self._as("terminated", terminated, (n,), torch.bool)
        if n > self.capacity:  # only the newest `capacity` survive
            obs_t, next_t, act_t, rew_t, term_t = (x[-self.capacity:] for x in (obs_t, next_t, act_t, rew_t, term_t))
            n = self.capacity
        p = self.position
        if p + n <= self.capacity:  # the common case: a contiguous slice
            idx = slice(p, p + n)
        else:  # wrap around: the oldest slots are overwritten
            idx = (p + torch.arange(n, device=self.device)) % self.capacity
        self.obs[idx], self.next_obs[idx], self.actions[idx] = obs_t, next_t, act_t
        self.rewards[idx], self.terminated[idx] = rew_t, term_t
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def _gather(self, idx: torch.Tensor) -> ReplayBatch:
        return ReplayBatch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> ReplayBatch:
        """A uniform minibatch (with replacement) of ``batch_size`` stored transitions.

        Raises:
            ValueError: ``batch_size`` larger than ``capacity`` (naming both), or an empty buffer.
        """
        batch_size = checks.positive_int("batch_size", batch_size)
        if batch_size > self.capacity:
            raise ValueError(f"batch_size={batch_size} is larger than the buffer's capacity={self.capacity}")
        if self.size == 0:
            raise ValueError("the buffer is empty: add transitions before sampling (len(buffer) = 0)")
        idx = sample_indices(self.size, batch_size, generator).to(self.device)
        return self._gather(idx)

    def latest(self, batch_size: int) -> ReplayBatch:
        """The newest ``batch_size`` transitions in order (the "no replay" ablation: correlated samples)."""
        batch_size = checks.positive_int("batch_size", batch_size)
        if batch_size > self.size:
            raise ValueError(f"batch_size={batch_size} is larger than the number of stored transitions {self.size}")
        idx = (self.position - batch_size + torch.arange(batch_size, device=self.device)) % self.capacity
        return self._gather(idx)

    def state_dict(self) -> dict:
        """Tensors and ints only (a ``weights_only`` checkpoint can hold it)."""
        return {"obs": self.obs, "next_obs": self.next_obs, "actions": self.actions, "rewards": self.rewards,
                "terminated": self.terminated, "position": self.position, "size": self.size}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned, from a buffer of the same capacity, ``obs_shape`` and ``obs_dtype``.

        Every field is checked before anything is copied, so a refused state leaves the
        buffer as it was.

        Raises:
            ValueError: naming the field (``state['size']``, ...): a missing key, a tensor
                of another shape or dtype than this buffer's, ``size`` not in
                ``[0, capacity]``, ``position`` not in ``[0, capacity)``, or ``position !=
                size`` while the buffer is not full (a ring buffer fills in order).
            checks.ArgumentTypeError (a TypeError and a ValueError): ``state`` not a dict,
                a field of the wrong kind (a list for a tensor, a float for ``size``).
        """
        if not isinstance(state, dict):
            raise checks.ArgumentTypeError(f"state must be a dict from ReplayBuffer.state_dict(), got {type(state).__name__}")
        keys = ("obs", "next_obs", "actions", "rewards", "terminated")
        missing = [k for k in (*keys, "position", "size") if k not in state]
        if missing:
            raise ValueError(f"state is missing {missing} (a ReplayBuffer.state_dict() has {[*keys, 'position', 'size']})")
        for key in keys:
            ours, theirs = getattr(self, key), state[key]
            if not isinstance(theirs, torch.Tensor):
                raise checks.ArgumentTypeError(f"state[{key!r}] must be a torch.Tensor, got {type(theirs).__name__}")
            if theirs.shape != ours.shape or theirs.dtype != ours.dtype:
                raise ValueError(
                    f"state[{key!r}] must be a {ours.dtype} tensor of shape {tuple(ours.shape)} (capacity "
                    f"{self.capacity}, obs_shape {self.obs_shape}), got {theirs.dtype} {tuple(theirs.shape)}"
                )
        position, size = (_state_int(f"state[{k!r}]", state[k]) for k in ("position", "size"))
        if size > self.capacity:
            raise ValueError(f"state['size'] must be in [0, capacity] = [0, {self.capacity}], got {size}")
        if position >= self.capacity:
            raise ValueError(f"state['position'] must be in [0, capacity) = [0, {self.capacity}), got {position}")
        if size < self.capacity and position != size:
            raise ValueError(
                f"state['position'] must equal state['size'] = {size} while the buffer is not full "
                f"(capacity {self.capacity}), got {position}"
            )
        for key in keys:
            getattr(self, key).copy_(state[key])
        self.position, self.size = position, size


def _state_int(name: str, value) -> int:
    """An int field of a saved state: an int, a NumPy integer or a 0-dim integer tensor, >= 0."""
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.is_floating_point() \
            and value.dtype != torch.bool:
        value = value.item()
    return checks.nonnegative_int(name, value)


def _check_convertible(name: str, t: torch.Tensor, dtype: torch.dtype) -> None:
    """Refuse a tensor whose conversion to ``dtype`` would change its values (ReplayBuffer.add).

    To bool: only 0 and 1. To an integer dtype: integers it holds (no fraction, no NaN,
    nothing outside its range); bools into action indices are refused. To a floating
    dtype: any real number (rounding to its precision is what storing as float means).
    """
    if t.is_complex():
        raise checks.ArgumentTypeError(f"{name} must hold real numbers, got a {t.dtype} tensor")
    if dtype == torch.bool:
        checks.binary(name, t)  # "terminated must contain only 0 and 1, got ..."
        return
    if dtype.is_floating_point:
        return
    if t.dtype == torch.bool:
        if name == "action":
            raise checks.ArgumentTypeError("action must hold integer action indices, got a bool tensor")
        return
    info = torch.iinfo(dtype)
    if not t.is_floating_point():
        source = torch.iinfo(t.dtype)
        if info.min <= source.min and source.max <= info.max:
            return
        bad = (t < info.min) | (t > info.max)
    else:
        bad = (t != t.round()) | (t < info.min) | (t > info.max)  # NaN != NaN: refused too
    if bool(bad.any()):
        what = "integer action indices" if name == "action" else f"integers in [{info.min}, {info.max}] (stored as {dtype})"
        example = t[bad].flatten()[0].item()
        raise ValueError(f"{name} must hold {what}; got {int(bad.sum())} other entries (e.g. {example!r})")
