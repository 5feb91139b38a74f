"""Chapter 7: deep Q-networks (DQN) and Double DQN, from scratch.

DQN is the previous chapter's fitted Q-iteration made online: act
epsilon-greedily, store every transition in a replay buffer, and take gradient
steps on the Huber (threshold ``zeta = 1``) or squared TD error ``delta = y - Q(s, a)``
against a slowly moving target network.

==============================  =====================================================
piece                           what it is
==============================  =====================================================
:class:`ReplayBuffer`           preallocated ring buffer of tensors, uniform sampling
:func:`sample_indices`          the buffer's sampling rule (pure function); both are
                                in :mod:`course_lib.rl.replay`, imported here
:func:`td_target`               ``y = r + gamma (1 - terminated) max_a' Q_target(s', a')``
:func:`double_dqn_target`       ``y = r + gamma (1 - terminated) Q_target(s', argmax_a' Q(s', a'))``
:func:`linear_schedule`         the epsilon schedule
:class:`QNetwork`               MLP with one output per action, ``(B, D) -> (B, A)``
:class:`NatureCNN`              the Nature DQN network, ``(B, C, 84, 84) -> (B, A)``
:class:`DQNConfig`              frozen, validated hyperparameters
:func:`train_dqn`               the training loop (through :class:`course_lib.training.TrainingRun`)
:func:`evaluate_greedy`         vectorized greedy (epsilon = 0) evaluation
==============================  =====================================================

Shapes: ``B`` transitions in a minibatch (``batch_size``; Chapter 7's :math:`\mathcal B`),
``A`` actions, ``D`` observation size, ``N`` transitions added at once. Returns in a
history are *undiscounted* episode returns; Q-values are expected *discounted* returns.

References:
    V. Mnih et al., "Playing Atari with deep reinforcement learning", 2013 (Algorithm 1).
    V. Mnih et al., "Human-level control through deep reinforcement learning", Nature 518,
    2015 (Algorithm 1, Methods, Extended Data Table 1).
    H. van Hasselt, A. Guez and D. Silver, "Deep reinforcement learning with double
    Q-learning", AAAI 2016 (eq. 4).
    CS182 notes section 7.6 (Algorithms 20-22).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from course_lib import checks
from course_lib._runtime import seed_everything
from course_lib.nets import mlp
from course_lib.rl import advantage as _advantage
from course_lib.rl._snapshots import take_snapshots
from course_lib.rl.envs import env_snapshot, restore_env_snapshot
from course_lib.rl.replay import ReplayBatch, ReplayBuffer, sample_indices
from course_lib.rl.value_based import _epsilon_greedy_draws, epsilon_greedy
from course_lib.training import RunOptions, TrainingRun

__all__ = [
    "ReplayBatch",
    "ReplayBuffer",
    "sample_indices",
    "td_target",
    "double_dqn_target",
    "linear_schedule",
    "QNetwork",
    "NatureCNN",
    "DQNConfig",
    "train_dqn",
    "evaluate_greedy",
    "make_dqn_env",
    "expected_max_gaussian",
    "DQN_HISTORY_KEYS",
]

#: The keys of ``train_dqn``'s history (one entry per ``log_every`` env steps).
DQN_HISTORY_KEYS = ("env_steps", "wall_time", "mean_return", "num_episodes", "simulated_steps",
                    "loss", "epsilon", "q_mean", "eval_return", "gradient_steps")


# --------------------------------------------------------------------------------------
# Targets and schedules (pure math)
# --------------------------------------------------------------------------------------


def _check_q_target_inputs(rewards, q_tensors: dict, terminated, gamma):
    gamma = checks.unit_interval("gamma", gamma)
    if rewards is None or isinstance(rewards, (str, bytes)):
        raise checks.ArgumentTypeError(f"rewards must be a tensor of shape (B,), got {type(rewards).__name__}")
    r = torch.as_tensor(rewards)
    if r.ndim != 1:
        raise ValueError(f"rewards must have shape (B,), got {tuple(r.shape)}")
    qs = []
    for name, q in q_tensors.items():
        q = torch.as_tensor(q)
        if q.ndim != 2 or q.shape[0] != r.shape[0] or q.shape[1] < 1:
            raise ValueError(f"{name} must have shape (B, A) = ({r.shape[0]}, A) with A >= 1, got {tuple(q.shape)}")
        qs.append(q)
    if any(q.shape != qs[0].shape for q in qs):
        raise ValueError(f"{' and '.join(q_tensors)} must have the same shape, got {[tuple(q.shape) for q in qs]}")
    term = torch.as_tensor(terminated)
    if term.shape != r.shape:
        raise ValueError(f"terminated must have shape (B,) = {tuple(r.shape)}, got {tuple(term.shape)}")
    if term.dtype != torch.bool:
        checks.binary("terminated", term)
    dtype = qs[0].dtype if qs[0].is_floating_point() else torch.get_default_dtype()
    return r.to(dtype), qs, (1.0 - term.to(dtype)), gamma


def td_target(rewards, next_q_values=None, terminated=None, gamma=None, *, next_values=None) -> torch.Tensor:
    """The DQN target ``y = r + gamma (1 - terminated) max_a' Q_target(s', a')``, without gradient.

    ``terminated`` (the MDP reached a terminal state, whose value is 0) cuts the
    bootstrap; a *truncated* transition (time limit) is not terminated and still
    bootstraps from ``s'``.

    One function serves Chapters 5 and 7: when the second argument has the shape of
    ``rewards`` (or is passed as ``next_values=``) it is a state value ``V(s')``
    and this is :func:`course_lib.rl.advantage.td_target`; with one more axis it
    holds ``Q(s', .)`` and the max over the last axis is taken.

    Args:
        rewards: ``(B,)``.
        next_q_values: ``(B, A)``, ``Q_target(s', .)`` from the target network.
        terminated: ``(B,)``, bool or 0/1.
        gamma: discount in ``[0, 1]``.

    Returns:
        ``(B,)`` targets, dtype of ``next_q_values``; no gradient flows through them.

    Raises:
        ValueError: shapes that do not match, ``terminated`` not 0/1, ``gamma``
            outside ``[0, 1]`` (naming the argument; a non-number gives
            :class:`checks.ArgumentTypeError`, a TypeError and a ValueError).

    References:
        Mnih et al. 2015, Algorithm 1 and eq. 2 (``y_j``); CS182 notes Algorithm 22.
    """
    if next_values is not None:  # Chapter 5's keyword: a state value
        if next_q_values is not None:
            raise checks.ArgumentTypeError("td_target takes next_q_values or next_values, not both")
        return _advantage.td_target(rewards, next_values, terminated, gamma)
    if next_q_values is None:
        raise checks.ArgumentTypeError("td_target needs next_q_values (B, A), got None")
    if rewards is not None and not isinstance(rewards, (str, bytes)):
        r_ndim = torch.as_tensor(rewards).ndim
        if torch.as_tensor(next_q_values).ndim == r_ndim:  # V(s'), Chapter 5's form
            return _advantage.td_target(rewards, next_q_values, terminated, gamma)
    r, (q,), not_done, gamma = _check_q_target_inputs(rewards, {"next_q_values": next_q_values}, terminated, gamma)
    return _td_target(r, q, not_done, gamma)


def _td_target(rewards: torch.Tensor, next_q_values: torch.Tensor, not_done: torch.Tensor, gamma: float) -> torch.Tensor:
    """:func:`td_target`'s arithmetic on checked inputs (``not_done = 1 - terminated``, float).

    ``train_dqn`` calls it directly: its minibatches come from the replay buffer,
    whose shapes and dtypes are right by construction, and the checks cost as much
    as the arithmetic.
    """
    with torch.no_grad():
        return rewards + gamma * not_done * next_q_values.detach().amax(dim=1)


def double_dqn_target(rewards, next_q_online, next_q_target, terminated, gamma) -> torch.Tensor:
    """The Double DQN target: the online network picks ``a*``, the target network rates it.

    ``y = r + gamma (1 - terminated) Q_target(s', argmax_a' Q_online(s', a'))``.

    Args:
        rewards: ``(B,)``; next_q_online, next_q_target: ``(B, A)``; terminated: ``(B,)``
            bool or 0/1; gamma: in ``[0, 1]``.

    Returns:
        ``(B,)`` targets, no gradient.

    Raises:
        ValueError: naming the argument, as :func:`td_target`.

    References:
        van Hasselt, Guez and Silver 2016, eq. 4.
    """
    r, (q_on, q_tg), not_done, gamma = _check_q_target_inputs(
        rewards, {"next_q_online": next_q_online, "next_q_target": next_q_target}, terminated, gamma)
    with torch.no_grad():
        best = q_on.detach().argmax(dim=1, keepdim=True)
        return r + gamma * not_done * q_tg.detach().gather(1, best).squeeze(1).to(r.dtype)


def linear_schedule(start: float, end: float, duration: int, step: int) -> float:
    """Linear interpolation from ``start`` (step 0) to ``end`` (step ``duration``), then constant.

    Args:
        start, end: finite floats (epsilon in DQN).
        duration: steps of the ramp, >= 0 (0: ``end`` at once).
        step: current step, >= 0.

    Returns:
        the value at ``step`` (float).

    Python and NumPy numbers are accepted alike (``np.float32(1.0)``, ``np.int64(100)``).

    Raises:
        ValueError: non-finite ``start``/``end``, negative ``duration``/``step`` (naming it);
            :class:`checks.ArgumentTypeError` (a TypeError and a ValueError) for a non-number.

    References:
        Mnih et al. 2015, Extended Data Table 1 (epsilon from 1 to 0.1 over 1M frames).
    """
    start = checks.finite_float("start", start)
    end = checks.finite_float("end", end)
    duration = checks.nonnegative_int("duration", duration)
    step = checks.nonnegative_int("step", step)
    if duration == 0:
        return float(end)
    frac = min(1.0, step / duration)
    return float(start + frac * (end - start))


def expected_max_gaussian(sigma: float, num_actions: int = 2) -> float:
    """``E[max_a X_a]`` for ``num_actions`` independent ``X_a ~ N(0, sigma^2)``: the overestimation
    of a max over equally good actions with noisy estimates (0 for one action).

    Computed by quadrature of ``sigma * int x A phi(x) Phi(x)^(A-1) dx`` (float64, error < 1e-9).

    Raises:
        ValueError: negative ``sigma`` or ``num_actions`` < 1 (naming it).

    References:
        Thrun and Schwartz 1993; van Hasselt et al. 2016, section 3 (Theorem 1).
    """
    sigma = checks.nonnegative_float("sigma", sigma)
    A = checks.positive_int("num_actions", num_actions)
    x = torch.linspace(-12.0, 12.0, 48_001, dtype=torch.float64)
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    density = A * normal.log_prob(x).exp() * normal.cdf(x) ** (A - 1)
    return float(sigma * torch.trapezoid(x * density, x))


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


class QNetwork(nn.Module):
    """``Q(s, .)``: an MLP from a ``(B, obs_dim)`` observation to ``(B, num_actions)`` Q-values.

    One head per action (the CS182 notes' second representation): a single forward
    pass gives every action's value, so ``max_a`` costs nothing extra.

    Raises:
        ValueError: naming ``obs_dim``, ``num_actions`` or ``hidden_sizes``.

    References:
        Mnih et al. 2015 (Methods, "Model architecture"); CS182 notes section 7.6.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes=(64, 64)):
        super().__init__()
        self.obs_dim = checks.positive_int("obs_dim", obs_dim)
        self.num_actions = checks.positive_int("num_actions", num_actions)
        hidden = checks.int_sizes("hidden_sizes", hidden_sizes)
        self.net = mlp([self.obs_dim, *hidden, self.num_actions], activation=nn.ReLU)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, obs_dim)`` -> ``(B, num_actions)``."""
        return self.net(obs)


class NatureCNN(nn.Module):
    """The Nature DQN network: 3 conv layers and a 512-unit layer, ``(B, C, 84, 84)`` -> ``(B, A)``.

    uint8 frames are scaled to ``[0, 1]`` inside ``forward``.

    Raises:
        ValueError: naming ``in_channels`` or ``num_actions``.

    References:
        Mnih et al. 2015, Methods ("Model architecture") and Extended Data Table 1.
    """

    def __init__(self, in_channels: int = 4, num_actions: int = 6):
        super().__init__()
        in_channels = checks.positive_int("in_channels", in_channels)
        self.num_actions = checks.positive_int("num_actions", num_actions)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 512), nn.ReLU(),
            nn.Linear(512, self.num_actions),
        )

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """``(B, C, 84, 84)`` uint8 or float -> ``(B, num_actions)``."""
        if obs.dtype == torch.uint8:
            obs = obs.float() / 255.0
        return self.net(obs)


# --------------------------------------------------------------------------------------
# Environments and evaluation
# --------------------------------------------------------------------------------------


def _is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/") or "NoFrameskip" in env_id


def make_dqn_env(env_id: str, num_envs: int = 1, *, frame_stack: int = 4, evaluation: bool = False):
    """A sync vector env with SAME_STEP autoreset; Atari ids get the Nature preprocessing.

    For ``ALE/...`` ids each sub-env is :func:`course_lib.rl.atari.make_atari_env`
    (``AtariPreprocessing`` + ``FrameStackObservation``). Others are
    :func:`course_lib.rl.envs.make_vec_env`.

    Raises:
        ValueError: a non-Discrete action space (naming it), ``num_envs`` < 1.
    """
    from course_lib.rl.envs import make_vec_env

    if not isinstance(env_id, str) or not env_id:
        raise checks.ArgumentTypeError(f"env_id must be a non-empty str (a gymnasium id), got {env_id!r}")
    if not _is_atari(env_id):
        return make_vec_env(env_id, num_envs)
    from course_lib.rl.atari import make_atari_env

    checks.positive_int("num_envs", num_envs)
    return gym.vector.SyncVectorEnv(
        [lambda: make_atari_env(env_id, frame_stack=frame_stack, evaluation=evaluation) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


@torch.no_grad()
def evaluate_greedy(q_network: nn.Module, env_id: str = "CartPole-v1", num_episodes: int = 100, seed: int = 0,
                    epsilon: float = 0.0, max_steps: int = 100_000) -> np.ndarray:
    """Undiscounted returns of ``num_episodes`` episodes run in parallel, epsilon-greedy (0: greedy).

    CartPole uses gymnasium's numpy-vectorized ``CartPoleVectorEnv`` (all episodes in
    one array); other ids a sync vector env. Only each env's *first* episode counts.
    Seeded by ``seed`` alone, so evaluation draws nothing from the training RNGs.

    Returns:
        float64 array ``(num_episodes,)`` of undiscounted returns.

    Raises:
        ValueError: naming ``num_episodes``, ``epsilon``, ``max_steps`` or ``seed``.

    References:
        Machado et al. 2018, section 5 (evaluation protocol); Mnih et al. 2015, Methods.
    """
    n = checks.positive_int("num_episodes", num_episodes)
    epsilon = checks.unit_interval("epsilon", epsilon)
    max_steps = checks.positive_int("max_steps", max_steps)
    seed = checks.nonnegative_int("seed", seed)  # a NumPy integer too (gymnasium wants an int)
    if env_id == "CartPole-v1":
        envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    else:
        envs = make_dqn_env(env_id, n, evaluation=True)
    device = next(q_network.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(n)
        running = np.ones(n, dtype=bool)
        for _ in range(max_steps):
            q = q_network(torch.as_tensor(np.asarray(obs), device=device))
            actions = q.argmax(1) if epsilon == 0 else epsilon_greedy(q.float(), epsilon, gen)
            obs, reward, terminated, truncated, _ = envs.step(actions.cpu().numpy())
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
            if not running.any():
                break
    finally:
        envs.close()
    return returns


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

_LOSSES = ("huber", "mse")


@dataclass(frozen=True)
class DQNConfig(RunOptions):
    """Hyperparameters of :func:`train_dqn` (frozen, validated in ``__post_init__``).

    The defaults solve CartPole-v1 (see ``benchmarks/dqn_cartpole.py``). Intervals are
    in environment steps (all ``num_envs`` count).

    Attributes:
        env_id: a gymnasium id with a Discrete action space (``ALE/...``: Atari pipeline).
        total_steps: environment steps of training.
        buffer_size: replay capacity. learning_starts: steps of pure exploration first.
        batch_size: minibatch size ``B`` (the minibatch is Chapter 7's :math:`\mathcal B`).
        train_frequency: env steps between update bursts;
        gradient_steps: gradient steps per burst. The default 24 per 64 env steps solved
            CartPole-v1's 5 benchmark seeds at the same median (13,056-15,040 steps) as 32,
            with a quarter fewer updates; 16 needed up to 3x more steps.
        target_update_interval: env steps between target updates; tau: 1.0 = hard copy,
            < 1 = Polyak averaging ``theta' <- tau theta + (1 - tau) theta'``.
        gamma: discount. learning_rate: Adam step size. max_grad_norm: clipping (None: off).
        epsilon_start, epsilon_end, exploration_fraction: epsilon decays linearly over
            ``exploration_fraction * total_steps`` steps.
        double: Double DQN target. loss: ``"huber"`` (``smooth_l1_loss``: the Huber loss
            ``l_zeta`` of the TD error with threshold ``zeta = 1``, the Nature paper's error
            clipping) or ``"mse"``.
        replay: False = the "no replay" ablation (each update uses the newest ``batch_size``
            transitions in order). target_network: False = bootstrap from the online network.
        hidden_sizes: of the :class:`QNetwork` (ignored for Atari: :class:`NatureCNN`).
        eval_every, eval_episodes: greedy evaluation every ``eval_every`` steps (0: never);
            stop_at_return: stop once that evaluation reaches it (None: never).
        log_every: env steps between history entries. return_window: episodes in ``mean_return``.
        checkpoint_fractions: fractions of ``total_steps`` at which the weights are kept in
            ``history["checkpoints"]`` (the widget's checkpoints).
        checkpoint_path, checkpoint_every (env steps), checkpoint_buffer (save the replay
            buffer too, for a bit-identical resume), max_seconds, progress, seed, device.

    Raises:
        ValueError: a field outside its range (named), ``learning_starts`` or
            ``batch_size`` above ``total_steps`` (no gradient step would ever be taken).
        checks.ArgumentTypeError (a TypeError and a ValueError): a field of the wrong kind.
    """

    env_id: str = "CartPole-v1"
    total_steps: int = 30_000
    buffer_size: int = 50_000
    learning_starts: int = 1_000
    batch_size: int = 64
    train_frequency: int = 64
    gradient_steps: int = 24
    target_update_interval: int = 64
    tau: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 2.5e-3
    max_grad_norm: float | None = 10.0
    epsilon_start: float = 1.0
    epsilon_end: float = 0.04
    exploration_fraction: float = 0.2
    double: bool = False
    loss: str = "huber"
    replay: bool = True
    target_network: bool = True
    hidden_sizes: tuple[int, ...] = (128, 128)
    frame_stack: int = 4
    num_envs: int = 1
    eval_every: int = 0
    eval_episodes: int = 100
    stop_at_return: float | None = None
    log_every: int = 1_000
    return_window: int = 20
    checkpoint_fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 10_000
    checkpoint_buffer: bool = True
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()

        def keep(name, value):  # store the checked value: Python numbers, not NumPy scalars
            object.__setattr__(self, name, value)

        if not isinstance(self.env_id, str) or not self.env_id:
            raise checks.ArgumentTypeError(f"env_id must be a non-empty str, got {self.env_id!r}")
        keep("env_id", str(self.env_id))
        for name in ("total_steps", "buffer_size", "batch_size", "train_frequency", "gradient_steps",
                     "target_update_interval", "frame_stack", "num_envs", "eval_episodes", "log_every",
                     "return_window", "checkpoint_every"):
            keep(name, checks.positive_int(name, getattr(self, name)))
        for name in ("learning_starts", "eval_every", "seed"):
            keep(name, checks.nonnegative_int(name, getattr(self, name)))
        for name in ("gamma", "epsilon_start", "epsilon_end", "exploration_fraction", "tau"):
            keep(name, checks.unit_interval(name, getattr(self, name)))
        keep("learning_rate", checks.positive_float("learning_rate", self.learning_rate))
        if not 0.0 < self.tau:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        if self.max_grad_norm is not None:
            keep("max_grad_norm", checks.positive_float("max_grad_norm", self.max_grad_norm))
        keep("loss", str(checks.one_of("loss", self.loss, _LOSSES)))
        for name in ("double", "replay", "target_network", "checkpoint_buffer"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise checks.ArgumentTypeError(f"{name} must be a bool, got {value!r}")
            keep(name, bool(value))
        keep("hidden_sizes", checks.int_sizes("hidden_sizes", self.hidden_sizes))
        if self.batch_size > self.buffer_size:
            raise ValueError(f"buffer_size={self.buffer_size} must be >= batch_size={self.batch_size}")
        # a run that could never take a gradient step would "complete" untrained
        if self.learning_starts > self.total_steps:
            raise ValueError(
                f"learning_starts={self.learning_starts} must be <= total_steps={self.total_steps}: "
                "no gradient step would be taken before the budget ends"
            )
        if self.batch_size > self.total_steps:
            raise ValueError(
                f"batch_size={self.batch_size} must be <= total_steps={self.total_steps}: the buffer "
                "would never hold a minibatch, so no gradient step would be taken"
            )
        if self.stop_at_return is not None:
            keep("stop_at_return", checks.finite_float("stop_at_return", self.stop_at_return))
            if self.eval_every == 0:
                raise ValueError("stop_at_return needs eval_every > 0 (an evaluation to compare with)")
        if isinstance(self.checkpoint_fractions, (str, bytes)) or not hasattr(self.checkpoint_fractions, "__iter__"):
            raise checks.ArgumentTypeError(
                f"checkpoint_fractions must be a sequence of floats in [0, 1], got {self.checkpoint_fractions!r}")
        fr = tuple(checks.unit_interval("checkpoint_fractions", f) for f in self.checkpoint_fractions)
        if list(fr) != sorted(fr):
            raise ValueError(f"checkpoint_fractions must be increasing values in [0, 1], got {self.checkpoint_fractions}")
        keep("checkpoint_fractions", fr)
        checks.device("device", self.device)
        keep("device", str(self.device))


def train_dqn(config: DQNConfig = DQNConfig(), *,
              callback: Callable[[nn.Module, dict], bool | None] | None = None) -> tuple[nn.Module, dict]:
    """Train a Q-network with DQN (or Double DQN) and return ``(q_network, history)``.

    The loop (Mnih et al. 2015, Algorithm 1), one iteration per ``train_frequency`` env steps:

    1. act epsilon-greedily (epsilon from :func:`linear_schedule`) and store each
       transition ``(s, a, r, s', terminated)`` in the :class:`ReplayBuffer`
       (``s'`` is the true final observation at an episode end);
    2. after ``learning_starts`` steps: ``gradient_steps`` times, sample a minibatch,
       compute the target (:func:`td_target` or :func:`double_dqn_target` on the
       target network) and take an Adam step on the Huber (or squared) TD error;
    3. every ``target_update_interval`` steps, copy (or Polyak-average) the online
       weights into the target network.

    Args:
        config: a :class:`DQNConfig`.
        callback: optional ``callback(q_network, history)`` after each history entry;
            returning True stops training (``stop_reason = "callback"``).

    Returns:
        ``(q_network, history)``: the network in eval mode; ``history`` has one entry per
        ``log_every`` env steps with :data:`DQN_HISTORY_KEYS`: ``env_steps``,
        ``wall_time`` (s), ``mean_return`` (undiscounted, last ``return_window``
        training episodes, NaN before one ends), ``num_episodes``, ``simulated_steps``,
        ``loss``, ``epsilon``, ``q_mean`` (mean predicted Q on the last batch),
        ``eval_return`` (NaN when not evaluated), ``gradient_steps``; plus
        ``"checkpoints"`` (``{"fraction", "env_steps", "q_network"}``) and ``"stop_reason"``
        (``"completed"``, ``"solved"``, ``"time_budget"``, ``"callback"``, ``"interrupted"``).

    Raises:
        ValueError: a config of another type, a non-Discrete action space.
        course_lib.training.TrainingDiverged: non-finite loss, gradient or parameter.
        course_lib.training.CheckpointError: a checkpoint written with another config.

    References:
        Mnih et al. 2015, Algorithm 1; van Hasselt et al. 2016 (Double DQN);
        CS182 notes Algorithms 20-22.
    """
    if not isinstance(config, DQNConfig):
        raise checks.ArgumentTypeError(f"config must be a DQNConfig, got {type(config).__name__}")
    device = torch.device(config.device)
    envs = make_dqn_env(config.env_id, config.num_envs, frame_stack=config.frame_stack)
    seed_everything(config.seed)
    obs_space = envs.single_observation_space
    num_actions = int(envs.single_action_space.n)
    atari = _is_atari(config.env_id)
    if atari:
        q_network = NatureCNN(obs_space.shape[0], num_actions).to(device)
    else:
        q_network = QNetwork(int(np.prod(obs_space.shape)), num_actions, config.hidden_sizes).to(device)
    target = copy.deepcopy(q_network)
    for p in target.parameters():
        p.requires_grad_(False)
    # fused Adam: one kernel for all parameters (the per-tensor loop is a third of a CartPole update)
    optimizer = torch.optim.Adam(q_network.parameters(), lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))
    obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
    buffer = ReplayBuffer(config.buffer_size, obs_space.shape, obs_dtype, device)
    gen = torch.Generator().manual_seed(config.seed)
    obs, _ = envs.reset(seed=config.seed)
    N = config.num_envs
    generators = {"sample": gen}
    if not atari:
        generators.update({f"env{i}": env.unwrapped.np_random for i, env in enumerate(envs.envs)})
    run = TrainingRun(
        config, model=q_network, optimizer=optimizer, generators=generators, history_keys=DQN_HISTORY_KEYS,
        total=config.total_steps,
        desc="DQN" + (" (double)" if config.double else ""), unit="env step",
        extra_modules={"target_network": target},
        allow_changed=("checkpoint_every",),  # how often the file is written never changes the run
    )
    checkpointing = config.checkpoint_path is not None
    state = run.restore(default={
        "env_steps": 0, "obs": torch.as_tensor(np.asarray(obs)), "env": env_snapshot(envs) if checkpointing and not atari else [],
        "ep_return": torch.zeros(N, dtype=torch.float64), "recent_returns": [], "num_episodes": 0,
        "gradient_steps": 0, "loss": float("nan"), "q_mean": float("nan"), "checkpoints": [],
    })
    if run.resumed:
        if state["env"]:
            restore_env_snapshot(envs, state["env"])
        if "replay_buffer" in state:
            buffer.load_state_dict(state["replay_buffer"])
    obs = state["obs"].numpy().copy()
    ep_return = state["ep_return"].numpy().copy()
    recent = list(state["recent_returns"])
    fractions = config.checkpoint_fractions
    eps_duration = int(config.exploration_fraction * config.total_steps)
    loss_fn = F.smooth_l1_loss if config.loss == "huber" else F.mse_loss

    def checkpoint_due(saved: list, env_steps: int, force: bool = False) -> None:
        take_snapshots(saved, {"q_network": q_network}, fractions, len(saved), env_steps, config.total_steps, force)

    checkpoint_due(state["checkpoints"], state["env_steps"])
    try:
        with run:
            last_q = None  # Q(s, a) of the last minibatch
            while state["env_steps"] < config.total_steps:
                start = state["env_steps"]
                episodes = 0
                # 1. act epsilon-greedily for train_frequency env steps, store the transitions
                for _ in range(max(1, config.train_frequency // N)):
                    epsilon = linear_schedule(config.epsilon_start, config.epsilon_end, eps_duration, state["env_steps"])
                    obs_t = torch.as_tensor(obs, device=device)
                    if state["env_steps"] < config.learning_starts:
                        actions = torch.randint(num_actions, (N,), generator=gen)
                    else:
                        # epsilon-greedy; the Q-network runs only if some env exploits
                        with torch.no_grad():
                            actions = _epsilon_greedy_draws(lambda: q_network(obs_t).argmax(-1), (N,), num_actions,
                                                            epsilon, gen, "cpu")
                    next_obs, reward, terminated, truncated, info = envs.step(actions.cpu().numpy())
                    done = terminated | truncated
                    real_next = next_obs
                    if done.any():  # SAME_STEP autoreset: the final observation is in info
                        real_next = next_obs.copy()
                        real_next[done] = np.stack(info["final_obs"][done])
                    buffer.add(obs_t, actions, torch.as_tensor(reward), torch.as_tensor(real_next), torch.as_tensor(terminated))
                    ep_return += reward
                    recent.extend(ep_return[done].tolist())
                    episodes += int(done.sum())
                    ep_return[done] = 0.0
                    obs = next_obs
                    state["env_steps"] += N
                    if state["env_steps"] % config.target_update_interval < N and config.target_network \
                            and state["env_steps"] > config.learning_starts:
                        # 3. the target network: a hard copy (tau = 1) or Polyak averaging
                        with torch.no_grad():
                            for p_t, p in zip(target.parameters(), q_network.parameters()):
                                p_t.lerp_(p, config.tau)
                        run.mark_updated()
                recent = recent[-config.return_window:]

                # 2. gradient steps on the TD error against the target network
                if state["env_steps"] >= config.learning_starts and len(buffer) >= config.batch_size:
                    for _ in range(config.gradient_steps):
                        batch = buffer.sample(config.batch_size, gen) if config.replay else buffer.latest(config.batch_size)
                        bootstrap = target if config.target_network else q_network
                        with torch.no_grad():
                            next_q = bootstrap(batch.next_obs)
                            if config.double:
                                y = double_dqn_target(batch.rewards, q_network(batch.next_obs), next_q, batch.terminated, config.gamma)
                            else:  # td_target, without re-checking the buffer's shapes every step
                                y = _td_target(batch.rewards, next_q, 1.0 - batch.terminated.to(next_q.dtype), config.gamma)
                        q = q_network(batch.obs).gather(1, batch.actions[:, None]).squeeze(1)
                        loss = loss_fn(q, y)
                        state["loss"] = run.optimize(loss, inputs=batch.obs, clip_grad_norm=config.max_grad_norm)
                        last_q = q.detach()  # its mean is logged (a float() per step would sync)
                        state["gradient_steps"] += 1

                # bookkeeping: every loop-carried variable lives in `state`
                state["num_episodes"] += episodes
                log_now = state["env_steps"] // config.log_every > start // config.log_every \
                    or state["env_steps"] >= config.total_steps or run.out_of_time()
                eval_now = config.eval_every > 0 and state["env_steps"] // config.eval_every > start // config.eval_every
                eval_return = float("nan")
                if eval_now:
                    eval_return = float(evaluate_greedy(q_network, config.env_id, config.eval_episodes,
                                                        seed=10_000 + config.seed).mean())
                if last_q is not None:
                    state["q_mean"] = float(last_q.mean())
                    last_q = None
                if log_now or eval_now:
                    run.log(env_steps=state["env_steps"], wall_time=run.seconds,
                            mean_return=float(np.mean(recent)) if recent else float("nan"),
                            num_episodes=state["num_episodes"], simulated_steps=state["env_steps"],
                            loss=state["loss"], epsilon=epsilon, q_mean=state["q_mean"],
                            eval_return=eval_return, gradient_steps=state["gradient_steps"])
                checkpoint_due(state["checkpoints"], state["env_steps"])
                state.update(obs=torch.as_tensor(np.asarray(obs)).clone(), ep_return=torch.from_numpy(ep_return.copy()),
                             recent_returns=list(recent))
                if checkpointing:
                    state["env"] = env_snapshot(envs) if not atari else []
                    if config.checkpoint_buffer:
                        state["replay_buffer"] = buffer.state_dict()
                stop = run.end_step(state, advance=state["env_steps"] - start, loss=state["loss"])
                if checkpointing and state["env_steps"] // config.checkpoint_every > start // config.checkpoint_every:
                    run.save(state)
                if stop:
                    break
                if config.stop_at_return is not None and eval_return >= config.stop_at_return:
                    run.stop("solved")
                    break
                if (log_now or eval_now) and callback is not None and callback(q_network, run.history):
                    run.stop("callback")
                    break
            run.save(state)
    finally:
        envs.close()
    history = run.finish()
    history["checkpoints"] = list(state["checkpoints"])
    checkpoint_due(history["checkpoints"], state["env_steps"], force=True)
    return q_network.eval(), history
