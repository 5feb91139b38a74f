"""Learning values from samples (Chapter 6): bandits and epsilon-greedy exploration, tabular
Q-learning and SARSA, fully fitted Q-iteration, and Baird's counterexample.

Chapter 7 (DQN) builds on :func:`epsilon_greedy` and :func:`q_learning_td_target`.

Shapes: ``B`` a batch of states, ``A`` actions, ``S`` states, ``R`` independent runs
(bandits), ``N`` transitions in a dataset, ``D`` observation size. Returns in a history
are *undiscounted* episode returns; Q-values are expected *discounted* returns.

References:
    R. S. Sutton and A. G. Barto, *Reinforcement Learning: An Introduction*, 2nd ed., 2018:
    section 2.3-2.6 (bandits, Figure 2.2, optimistic initial values), section 6.4-6.5
    (SARSA eq. 6.7, Q-learning eq. 6.8, Example 6.6), section 11.2 (Baird's counterexample).
    C. J. C. H. Watkins and P. Dayan, "Q-learning", Machine Learning 8, 1992.
    D. Ernst, P. Geurts and L. Wehenkel, "Tree-based batch mode reinforcement learning",
    JMLR 6, 2005 (fitted Q-iteration, section 3).
    M. Riedmiller, "Neural fitted Q iteration", ECML 2005 (NFQ).
    L. Baird, "Residual algorithms", ICML 1995.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from course_lib import checks
from course_lib.nets import mlp
from course_lib.training import RunOptions, TrainingRun

__all__ = [
    "epsilon_greedy",
    "epsilon_greedy_probs",
    "bandit_testbed",
    "q_learning_td_target",
    "sarsa_td_target",
    "TabularQConfig",
    "q_learning",
    "sarsa",
    "collect_transitions",
    "FittedQConfig",
    "FittedQFunction",
    "fitted_q_iteration",
    "evaluate_q_function",
    "baird_counterexample",
]


# --------------------------------------------------------------------------------------
# Exploration
# --------------------------------------------------------------------------------------


def epsilon_greedy_probs(q_values: torch.Tensor, epsilon: float) -> torch.Tensor:
    """The epsilon-greedy distribution: ``1 - eps + eps/A`` on the argmax, ``eps/A`` elsewhere.

    With probability ``epsilon`` the action is uniform over **all** ``A`` actions (Sutton
    and Barto's convention; CS182 spreads ``eps`` over the ``A - 1`` others instead).

    Args:
        q_values: ``(A,)`` or ``(B, A)``.
        epsilon: in ``[0, 1]``.

    Returns:
        probabilities of the same shape as ``q_values`` (float64). Ties go to the lowest index.

    Raises:
        ArgumentTypeError / ValueError: naming ``q_values`` (not a float tensor of shape
            ``(A,)`` / ``(B, A)``, or a NaN/inf entry: the argmax would be meaningless) or
            ``epsilon`` (outside ``[0, 1]``; NumPy scalars are accepted).

    References:
        Sutton and Barto 2018, section 2.2 and section 5.4 (epsilon-soft policies); CS182 notes 7.6.2.
    """
    q_values = _check_q_values(q_values)
    epsilon = checks.unit_interval("epsilon", epsilon)
    A = q_values.shape[-1]
    greedy = torch.nn.functional.one_hot(q_values.argmax(-1), A).to(torch.float64)
    return (1 - epsilon) * greedy + epsilon / A


def epsilon_greedy(q_values: torch.Tensor, epsilon: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample epsilon-greedy actions: uniform over all ``A`` actions with probability ``epsilon``, else argmax.

    Args:
        q_values: ``(A,)`` or ``(B, A)`` Q-values of the current state(s).
        epsilon: exploration probability in ``[0, 1]``.
        generator: a ``torch.Generator`` (on ``q_values.device``) for reproducible draws.

    Returns:
        int64 action(s): shape ``()`` for ``(A,)`` input, ``(B,)`` for ``(B, A)``.

    Raises:
        ArgumentTypeError / ValueError: naming the argument (``q_values`` with a NaN/inf
            entry, of the wrong shape or not float; ``epsilon`` outside ``[0, 1]``; a
            ``generator`` that is not a ``torch.Generator``).

    References:
        Sutton and Barto 2018, section 2.2; Mnih et al. 2015 (DQN's behaviour policy).
    """
    q_values = _check_q_values(q_values)
    epsilon = checks.unit_interval("epsilon", epsilon)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return _epsilon_greedy_draws(lambda: q_values.argmax(-1), q_values.shape[:-1], q_values.shape[-1], epsilon,
                                 generator, q_values.device)


def _epsilon_greedy_draws(greedy_actions: Callable[[], torch.Tensor], batch_shape, num_actions: int,
                          epsilon: float, generator: torch.Generator | None, device) -> torch.Tensor:
    """:func:`epsilon_greedy` on checked inputs, with the greedy actions computed only when needed.

    The coins and the random actions are drawn first (always the same draws), so a
    caller whose Q-values cost a network pass (``train_dqn``) skips it when every
    entry explores.
    """
    explore = torch.rand(batch_shape, generator=generator, device=device) < epsilon
    random_actions = torch.randint(num_actions, batch_shape, generator=generator, device=device)
    if bool(explore.all()):
        return random_actions
    return torch.where(explore, random_actions, greedy_actions().to(device))


def _check_q_values(q_values) -> torch.Tensor:
    if not isinstance(q_values, torch.Tensor):
        raise checks.ArgumentTypeError(f"q_values must be a torch.Tensor of shape (A,) or (B, A), got {type(q_values).__name__}")
    if q_values.ndim not in (1, 2) or q_values.shape[-1] < 1 or not q_values.is_floating_point():
        raise ValueError(f"q_values must be a float tensor of shape (A,) or (B, A) with A >= 1, got {tuple(q_values.shape)} {q_values.dtype}")
    return checks.finite("q_values", q_values)


def _finite_float(name: str, value) -> float:
    """``value`` as a finite ``float`` (NumPy scalars accepted; bools, strings, NaN and inf refused)."""
    value = checks._real(name, value, "a finite float")
    if math.isinf(value):
        raise ValueError(f"{name} must be a finite float, got {value!r}")
    return value


# --------------------------------------------------------------------------------------
# The k-armed testbed (vectorized over runs)
# --------------------------------------------------------------------------------------


def bandit_testbed(epsilon: float, num_runs: int = 2000, num_arms: int = 10, steps: int = 1000,
                   initial_value: float = 0.0, step_size: float | None = None, seed: int = 0) -> dict:
    """Sutton and Barto's k-armed testbed, all ``num_runs`` bandit problems advanced in lockstep.

    Each run draws true means ``q*(a) ~ N(0, 1)``; a pull of arm ``a`` pays ``N(q*(a), 1)``.
    The agent is epsilon-greedy on its estimates ``Q(a)`` (ties broken at random), which
    start at ``initial_value`` and are updated by ``Q += alpha (r - Q)`` with
    ``alpha = 1/N(a)`` (sample average) or a constant ``step_size``.

    Returns:
        dict of tensors: ``average_reward`` ``(steps,)`` and ``optimal_action``
        ``(steps,)`` (fraction of runs that pulled the best arm), both averaged over runs;
        ``Q`` and ``q_star`` ``(R, k)``, ``counts`` ``(R, k)``.

    Raises:
        ArgumentTypeError / ValueError: naming the argument (``epsilon`` and ``step_size``
            outside ``[0, 1]``, sizes < 1, a non-finite ``initial_value``, bools for ints).

    References:
        Sutton and Barto 2018, section 2.3 (Figure 2.2), eq. 2.3-2.5, section 2.6
        (optimistic initial values, Figure 2.3).
    """
    epsilon = checks.unit_interval("epsilon", epsilon)
    R = checks.positive_int("num_runs", num_runs)
    k = checks.positive_int("num_arms", num_arms)
    steps = checks.positive_int("steps", steps)
    initial_value = _finite_float("initial_value", initial_value)
    if step_size is not None:
        step_size = checks.unit_interval("step_size", step_size)
    gen = torch.Generator().manual_seed(checks.nonnegative_int("seed", seed))
    q_star = torch.randn(R, k, generator=gen, dtype=torch.float64)
    best = q_star.argmax(-1)
    Q = torch.full((R, k), initial_value, dtype=torch.float64)
    counts = torch.zeros(R, k, dtype=torch.float64)
    rows = torch.arange(R)
    average_reward = torch.zeros(steps, dtype=torch.float64)
    optimal_action = torch.zeros(steps, dtype=torch.float64)
    for t in range(steps):
        is_max = Q == Q.amax(-1, keepdim=True)
        greedy = (torch.rand(R, k, generator=gen, dtype=torch.float64) * is_max).argmax(-1)  # random tie-break
        explore = torch.rand(R, generator=gen, dtype=torch.float64) < epsilon
        actions = torch.where(explore, torch.randint(k, (R,), generator=gen), greedy)
        rewards = q_star[rows, actions] + torch.randn(R, generator=gen, dtype=torch.float64)
        counts[rows, actions] += 1
        alpha = 1.0 / counts[rows, actions] if step_size is None else step_size
        Q[rows, actions] += alpha * (rewards - Q[rows, actions])
        average_reward[t] = rewards.mean()
        optimal_action[t] = (actions == best).double().mean()
    return {"average_reward": average_reward, "optimal_action": optimal_action, "Q": Q, "q_star": q_star, "counts": counts}


# --------------------------------------------------------------------------------------
# TD targets (pure math)
# --------------------------------------------------------------------------------------


def q_learning_td_target(reward: torch.Tensor, next_q_values: torch.Tensor, terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """The Q-learning target ``y = r + gamma * (1 - terminated) * max_a' Q(s', a')``.

    ``terminated`` (the MDP reached a terminal state) cuts the bootstrap: the value of a
    terminal state is 0. A *truncated* episode (a time limit) is not terminated: its
    target still bootstraps from ``s'``, so ``truncated`` does not enter the formula.

    Args:
        reward: ``()`` or ``(B,)``.
        next_q_values: ``(A,)`` or ``(B, A)``, ``Q(s', .)``.
        terminated: bool, ``()`` or ``(B,)``.
        gamma: discount in ``[0, 1]``.

    Returns:
        the target, shape of ``reward``, dtype of ``next_q_values``.

    Raises:
        ArgumentTypeError / ValueError: naming the argument (not a tensor, a bool
            ``reward``, a ``terminated`` that is not bool, mismatched shapes, a NaN/inf
            ``reward`` or ``next_q_values``, ``gamma`` outside ``[0, 1]``).

    References:
        Watkins and Dayan 1992; Sutton and Barto 2018, eq. 6.8; CS182 notes Algorithm 19
        (the max is over the action at the next state ``s'``).
    """
    reward, next_q_values, terminated, gamma = _check_td("next_q_values", reward, next_q_values, terminated, gamma, with_actions=True)
    return reward + gamma * (~terminated).to(next_q_values.dtype) * next_q_values.amax(-1)


def sarsa_td_target(reward: torch.Tensor, next_q_value: torch.Tensor, terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """The SARSA target ``y = r + gamma * (1 - terminated) * Q(s', a')`` with ``a'`` the action actually taken next.

    Args:
        reward, terminated: ``()`` or ``(B,)``; next_q_value: ``Q(s', a')``, same shape.
        gamma: discount in ``[0, 1]``.

    Raises:
        As :func:`q_learning_td_target`, naming ``next_q_value``.

    References:
        Sutton and Barto 2018, eq. 6.7 (on-policy TD control).
    """
    reward, next_q_value, terminated, gamma = _check_td("next_q_value", reward, next_q_value, terminated, gamma, with_actions=False)
    return reward + gamma * (~terminated).to(next_q_value.dtype) * next_q_value


def _check_td(q_name, reward, next_q, terminated, gamma, with_actions):
    for name, value in (("reward", reward), (q_name, next_q), ("terminated", terminated)):
        if not isinstance(value, torch.Tensor):
            raise checks.ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    gamma = checks.unit_interval("gamma", gamma)
    if reward.dtype == torch.bool:
        raise checks.ArgumentTypeError("reward must be a numeric tensor, got dtype torch.bool")
    if terminated.dtype != torch.bool:
        raise ValueError(f"terminated must be a bool tensor, got {terminated.dtype}")
    batch = tuple(next_q.shape[:-1]) if with_actions else tuple(next_q.shape)
    if with_actions and next_q.ndim not in (1, 2):
        raise ValueError(f"{q_name} must have shape (A,) or (B, A), got {tuple(next_q.shape)}")
    if tuple(reward.shape) != batch or tuple(terminated.shape) != batch:
        raise ValueError(f"reward and terminated must have shape {batch} to match {q_name}, got {tuple(reward.shape)} and {tuple(terminated.shape)}")
    checks.finite("reward", reward)
    checks.finite(q_name, next_q)
    return reward.to(next_q.dtype), next_q, terminated, gamma


# --------------------------------------------------------------------------------------
# Tabular Q-learning and SARSA (online Q-iteration)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TabularQConfig(RunOptions):
    """Settings of :func:`q_learning` / :func:`sarsa` (validated on construction).

    ``alpha`` is the step size; with ``alpha_power > 0`` the step of the ``n``-th visit
    to ``(s, a)`` is ``alpha / n**alpha_power`` (``0.5 < alpha_power <= 1`` meets the
    Robbins-Monro conditions of Watkins and Dayan's convergence theorem).
    ``max_episode_steps`` truncates (not terminates) an episode. Every ``eval_every``
    environment steps the history gets one entry. NumPy scalars are accepted and stored
    as Python ``int``/``float`` (so checkpoints stay loadable); bools are refused for ints.

    Raises:
        ArgumentTypeError / ValueError: naming the field (out of range, NaN, a non-finite
            ``initial_q``, a bool or float where an int belongs).
    """

    total_steps: int = 50_000
    alpha: float = 0.1
    alpha_power: float = 0.0
    gamma: float = 0.99
    epsilon: float = 0.1
    initial_q: float = 0.0
    max_episode_steps: int = 200
    eval_every: int = 1_000
    seed: int = 0
    env_kwargs: dict = field(default_factory=dict)
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        _set_checked(self, (("total_steps", checks.positive_int), ("alpha", checks.unit_interval),
                            ("alpha_power", checks.unit_interval), ("gamma", checks.unit_interval),
                            ("epsilon", checks.unit_interval), ("initial_q", _finite_float),
                            ("max_episode_steps", checks.positive_int), ("eval_every", checks.positive_int),
                            ("seed", checks.nonnegative_int)))
        if not isinstance(self.env_kwargs, dict):
            raise checks.ArgumentTypeError(f"env_kwargs must be a dict, got {type(self.env_kwargs).__name__}")


def _set_checked(config, fields) -> None:
    """Check each ``(name, checker)`` field of a frozen config and store the checker's plain-Python value."""
    for name, checker in fields:
        object.__setattr__(config, name, checker(name, getattr(config, name)))


class QTable(nn.Module):
    """The parameters of tabular TD control: ``q`` ``(S, A)`` and the visit ``counts`` ``(S, A)``, float64.

    Raises:
        ArgumentTypeError / ValueError: sizes that are not ints >= 1, a non-finite ``initial_q``.
    """

    def __init__(self, num_states: int, num_actions: int, initial_q: float = 0.0):
        super().__init__()
        num_states = checks.positive_int("num_states", num_states)
        num_actions = checks.positive_int("num_actions", num_actions)
        initial_q = _finite_float("initial_q", initial_q)
        self.q = nn.Parameter(torch.full((num_states, num_actions), initial_q, dtype=torch.float64), requires_grad=False)
        self.counts = nn.Parameter(torch.zeros(num_states, num_actions, dtype=torch.float64), requires_grad=False)


def q_learning(env_id: str, config: TabularQConfig = TabularQConfig(), q_star: torch.Tensor | None = None):
    """Watkins' Q-learning (online Q-iteration) on a discrete-state gymnasium env.

    Each environment step: ``a`` epsilon-greedy on ``Q(s, .)``; observe ``r, s'``;
    ``Q(s, a) += alpha (r + gamma (1 - terminated) max_a' Q(s', a') - Q(s, a))``.

    Args:
        env_id: a toy-text env id (``"FrozenLake-v1"``, ``"CliffWalking-v1"``, ``"Taxi-v4"``).
        config: :class:`TabularQConfig`.
        q_star: optional ``(S, A)`` optimal Q (from :func:`q_iteration`); the history
            then records ``q_error = ||Q - Q*||_inf``.

    Returns:
        ``(Q, history)``: ``Q`` ``(S, A)`` float64; history lists ``step`` (env steps),
        ``episodes``, ``mean_return`` (undiscounted, of the episodes that ended since the
        last entry; NaN if none), ``q_error`` (NaN without ``q_star``) and ``stop_reason``.

    Raises:
        ValueError / ArgumentTypeError: naming the argument (a non-Discrete env, a
            ``q_star`` that is not a tensor, of the wrong shape or with NaN/inf entries,
            a config that is not a TabularQConfig).

    References:
        Watkins and Dayan 1992; Sutton and Barto 2018, eq. 6.8 and the box "Q-learning
        (off-policy TD control)"; CS182 notes Algorithm 19.
    """
    return _td_control(env_id, config, q_star, on_policy=False)


def sarsa(env_id: str, config: TabularQConfig = TabularQConfig(), q_star: torch.Tensor | None = None):
    """SARSA (on-policy TD control): like :func:`q_learning` but the target uses the next action actually taken.

    Returns and raises as :func:`q_learning`.

    References:
        Sutton and Barto 2018, eq. 6.7 and the box "Sarsa (on-policy TD control)", Example 6.6.
    """
    return _td_control(env_id, config, q_star, on_policy=True)


def _td_control(env_id: str, config: TabularQConfig, q_star, on_policy: bool):
    if not isinstance(env_id, str):
        raise checks.ArgumentTypeError(f"env_id must be a str, got {type(env_id).__name__}")
    if not isinstance(config, TabularQConfig):
        raise checks.ArgumentTypeError(f"config must be a TabularQConfig, got {type(config).__name__}")
    env = gym.make(env_id, **config.env_kwargs).unwrapped  # no TimeLimit wrapper: truncation is ours
    if not (isinstance(env.observation_space, gym.spaces.Discrete) and isinstance(env.action_space, gym.spaces.Discrete)):
        raise ValueError(f"env_id {env_id!r} must have Discrete observation and action spaces")
    S, A = int(env.observation_space.n), int(env.action_space.n)
    if q_star is not None:
        if not isinstance(q_star, torch.Tensor):
            raise checks.ArgumentTypeError(f"q_star must be a tensor of shape (S, A) = ({S}, {A}), got {type(q_star).__name__}")
        if q_star.shape != (S, A):
            raise ValueError(f"q_star must be a tensor of shape (S, A) = ({S}, {A}), got {tuple(q_star.shape)}")
        q_star = checks.finite("q_star", q_star.detach().cpu().double()).numpy()
    gamma, eps = config.gamma, config.epsilon
    table = QTable(S, A, config.initial_q)
    Q, N = table.q.data.numpy(), table.counts.data.numpy()  # views: updates land in the module
    obs, _ = env.reset(seed=config.seed)
    rng = np.random.default_rng(config.seed + 1)  # the behaviour policy's draws

    def behaviour(s: int) -> int:
        if rng.random() < eps:
            return int(rng.integers(A))
        best = np.flatnonzero(Q[s] == Q[s].max())
        return int(best[0]) if len(best) == 1 else int(best[rng.integers(len(best))])  # random tie-break

    run = TrainingRun(config, model=table, generators={"env": env.np_random, "policy": rng},
                      history_keys=("step", "episodes", "mean_return", "q_error"),
                      checkpoint_path=config.checkpoint_path, resume=config.resume, max_seconds=config.max_seconds,
                      total=config.total_steps, desc="sarsa" if on_policy else "q_learning",
                      unit="env step", progress=config.progress)
    state = run.restore(default={"obs": int(obs), "action": -1, "episode_return": 0.0, "episode_length": 0,
                                 "episodes": 0, "window_returns": []})
    env.s = state["obs"]  # toy-text envs keep their state in .s: put the env where the run stopped
    with run:
        while run.step < config.total_steps:
            run.mark_updated()  # the step draws randomness and moves Q: a crash inside it keeps the last checkpoint
            s = state["obs"]
            a = state["action"] if (on_policy and state["action"] >= 0) else behaviour(s)
            s_next, r, terminated, _, _ = env.step(a)
            s_next = int(s_next)
            length = state["episode_length"] + 1
            truncated = length >= config.max_episode_steps
            a_next = behaviour(s_next) if on_policy else -1
            bootstrap = Q[s_next, a_next] if on_policy else Q[s_next].max()
            target = r + (0.0 if terminated else gamma * bootstrap)  # truncated still bootstraps
            N[s, a] += 1
            alpha = config.alpha / N[s, a] ** config.alpha_power
            Q[s, a] += alpha * (target - Q[s, a])
            if terminated or truncated:
                state["window_returns"].append(state["episode_return"] + float(r))
                state["episodes"] += 1
                s_next, _ = env.reset()
                state.update(obs=int(s_next), action=-1, episode_return=0.0, episode_length=0)
            else:
                state.update(obs=s_next, action=a_next, episode_return=state["episode_return"] + float(r), episode_length=length)
            stop = run.end_step(state)
            if run.step % config.eval_every == 0 or run.step == config.total_steps or stop:
                window = state["window_returns"]
                run.log(step=run.step, episodes=state["episodes"], mean_return=float(np.mean(window)) if window else float("nan"),
                        q_error=float(np.abs(Q - q_star).max()) if q_star is not None else float("nan"))
                state["window_returns"] = []
                run.save(state)
            if stop:
                break
    return table.q.data.clone(), run.finish()


# --------------------------------------------------------------------------------------
# Fully fitted Q-iteration (Ernst et al. 2005; Riedmiller 2005)
# --------------------------------------------------------------------------------------


def collect_transitions(env_id: str = "CartPole-v1", num_steps: int = 10_000, seed: int = 0,
                        q_function=None, epsilon: float = 1.0) -> dict:
    """A fixed dataset of transitions from a uniform-random (or epsilon-greedy) policy.

    Args:
        env_id: a gymnasium env with a flat Box observation and Discrete actions.
        num_steps: transitions to collect (episodes restart as needed; time limits truncate).
        q_function: optional callable ``(B, D) -> (B, A)``; actions are epsilon-greedy on it.
        epsilon: exploration probability (1.0: uniform random).

    Returns:
        dict of tensors: ``obs`` ``(N, D)`` float32, ``actions`` ``(N,)`` int64, ``rewards``
        ``(N,)`` float32, ``next_obs`` ``(N, D)``, ``terminated`` ``(N,)`` bool, and
        ``num_actions`` (int).

    Raises:
        ArgumentTypeError / ValueError: naming the argument (an ``env_id`` that is not a
            str or whose env has no flat Box observation or no Discrete actions, a
            ``q_function`` that is not callable or returns NaN/inf or a wrong shape,
            ``num_steps`` < 1, ``epsilon`` outside ``[0, 1]``).
    """
    num_steps = checks.positive_int("num_steps", num_steps)
    epsilon = checks.unit_interval("epsilon", epsilon)
    seed = checks.nonnegative_int("seed", seed)
    if q_function is not None and not callable(q_function):
        raise checks.ArgumentTypeError(f"q_function must be a callable (B, D) -> (B, A) or None, got {type(q_function).__name__}")
    env = gym.make(_check_env_id(env_id))
    A = _check_box_discrete_env(env_id, env.observation_space, env.action_space)
    gen = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    buf = {k: [] for k in ("obs", "actions", "rewards", "next_obs", "terminated")}
    for _ in range(num_steps):
        o = torch.as_tensor(obs, dtype=torch.float32)
        q = torch.zeros(A) if q_function is None else _q_outputs(q_function, o[None], A)[0].float()
        a = int(epsilon_greedy(q, epsilon if q_function is not None else 1.0, gen))
        next_obs, r, terminated, truncated, _ = env.step(a)
        for k, v in zip(buf, (o, a, float(r), torch.as_tensor(next_obs, dtype=torch.float32), bool(terminated))):
            buf[k].append(v)
        obs = env.reset()[0] if (terminated or truncated) else next_obs
    return {"obs": torch.stack(buf["obs"]), "actions": torch.tensor(buf["actions"]), "rewards": torch.tensor(buf["rewards"]),
            "next_obs": torch.stack(buf["next_obs"]), "terminated": torch.tensor(buf["terminated"]), "num_actions": A}


def _check_env_id(env_id) -> str:
    if not isinstance(env_id, str):
        raise checks.ArgumentTypeError(f"env_id must be a gymnasium env id (a str), got {type(env_id).__name__}")
    return env_id


def _check_box_discrete_env(env_id: str, observation_space, action_space) -> int:
    """The number of actions of an env with a flat Box observation and Discrete actions."""
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1
            and isinstance(action_space, gym.spaces.Discrete)):
        raise ValueError(f"env_id {env_id!r} must have a flat Box observation and Discrete actions, "
                         f"got {observation_space} and {action_space}")
    return int(action_space.n)


def _q_outputs(q_function, obs: torch.Tensor, num_actions: int) -> torch.Tensor:
    """``q_function(obs)`` checked: a ``(B, A)`` tensor of finite Q-values (a NaN would be a silent argmax)."""
    q = torch.as_tensor(q_function(obs))
    if q.shape != (obs.shape[0], num_actions):
        raise ValueError(f"q_function must return Q-values of shape (B, A) = ({obs.shape[0]}, {num_actions}), "
                         f"got {tuple(q.shape)}")
    return checks.finite("q_function's output", q)


@dataclass(frozen=True)
class FittedQConfig(RunOptions):
    """Settings of :func:`fitted_q_iteration` (validated on construction).

    ``regressor``: ``"extra_trees"`` (Ernst et al. 2005: ``n_estimators`` trees, each
    split needs ``min_samples_split`` samples, inputs ``(s, a)``), ``"mlp"`` (Riedmiller
    2005: a network ``s -> Q(s, .)`` refitted for ``epochs`` full-batch Rprop epochs each
    iteration, warm-started) or ``"linear"`` (exact least squares, one linear map per
    action, no intercept; with one-hot states this is tabular Q-iteration).
    With ``eval_env_id`` set, the greedy policy is played for ``eval_episodes`` after
    every iteration (episodes capped at ``eval_max_steps``) and its mean undiscounted
    return is logged. NumPy scalars are accepted and stored as Python ``int``/``float``
    (so checkpoints stay loadable); bools are refused for ints.

    Raises:
        ArgumentTypeError / ValueError: naming the field.
    """

    regressor: str = "extra_trees"
    iterations: int = 30
    gamma: float = 0.99
    n_estimators: int = 50
    min_samples_split: int = 2
    hidden_sizes: tuple = (64, 64)
    epochs: int = 100
    lr: float = 0.01
    eval_env_id: str | None = None
    eval_episodes: int = 10
    eval_max_steps: int | None = None
    seed: int = 0
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("regressor", self.regressor, ("extra_trees", "mlp", "linear"))
        _set_checked(self, (("iterations", checks.positive_int), ("gamma", checks.unit_interval),
                            ("n_estimators", checks.positive_int),
                            ("min_samples_split", lambda name, v: checks.positive_int(name, v, minimum=2)),
                            ("hidden_sizes", checks.int_sizes), ("epochs", checks.positive_int),
                            ("lr", checks.positive_float), ("eval_episodes", checks.positive_int),
                            ("seed", checks.nonnegative_int)))
        if self.eval_env_id is not None and not isinstance(self.eval_env_id, str):
            raise checks.ArgumentTypeError(f"eval_env_id must be a str or None, got {type(self.eval_env_id).__name__}")
        if self.eval_max_steps is not None:
            _set_checked(self, (("eval_max_steps", checks.positive_int),))
        if self.checkpoint_path is not None and self.regressor == "extra_trees":
            raise ValueError(
                "checkpoint_path must be None with regressor='extra_trees': a checkpoint holds tensors only "
                "(weights_only=True) and extra-trees are not tensors; use regressor='mlp' or 'linear' to checkpoint"
            )


class FittedQFunction(nn.Module):
    """``Q(s, .)`` of fitted Q-iteration: call it on ``(B, D)`` observations to get ``(B, A)`` Q-values.

    ``kind`` is the regressor; ``net`` the MLP (``"mlp"``), ``weight`` ``(A, D)`` the linear
    maps (``"linear"``), ``trees`` the fitted scikit-learn ensemble (``"extra_trees"``,
    inputs ``[s, one_hot(a)]``). Before the first fit it returns zeros (``Q_0 = 0``).

    Raises:
        ArgumentTypeError / ValueError: on construction, naming ``kind``, ``obs_dim``,
            ``num_actions`` or ``hidden_sizes``; on a call, ``obs`` that is not ``(B, obs_dim)``.
    """

    def __init__(self, kind: str, obs_dim: int, num_actions: int, hidden_sizes=(64, 64)):
        super().__init__()
        checks.one_of("kind", kind, ("extra_trees", "mlp", "linear"))
        obs_dim = checks.positive_int("obs_dim", obs_dim)
        num_actions = checks.positive_int("num_actions", num_actions)
        hidden_sizes = checks.int_sizes("hidden_sizes", hidden_sizes)
        self.kind, self.obs_dim, self.num_actions = kind, obs_dim, num_actions
        self.net = mlp([obs_dim, *hidden_sizes, num_actions]) if kind == "mlp" else None
        self.weight = nn.Parameter(torch.zeros(num_actions, obs_dim, dtype=torch.float64), requires_grad=False)
        self.trees = None

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        obs = torch.as_tensor(obs)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must have shape (B, obs_dim) = (B, {self.obs_dim}), got {tuple(obs.shape)}")
        if self.kind == "mlp":
            return self.net(obs.float())
        if self.kind == "linear":
            return obs.to(torch.float64) @ self.weight.T
        if self.trees is None:
            return torch.zeros(obs.shape[0], self.num_actions, dtype=torch.float64)
        B, A = obs.shape[0], self.num_actions
        x = np.concatenate([np.repeat(obs.double().numpy(), A, 0), np.tile(np.eye(A), (B, 1))], 1)
        return torch.from_numpy(self.trees.predict(x)).reshape(B, A)


def _check_dataset(dataset) -> dict:
    """The dataset's tensors, checked once: shapes, finite numbers, integer actions in range, 0/1 flags."""
    if not isinstance(dataset, dict):
        raise checks.ArgumentTypeError(f"dataset must be a dict of tensors, got {type(dataset).__name__}")
    missing = {"obs", "actions", "rewards", "next_obs", "terminated"} - set(dataset)
    if missing:
        raise ValueError(f"dataset is missing the keys {sorted(missing)}")
    data = {}
    for key in ("obs", "actions", "rewards", "next_obs", "terminated", "weights"):
        if key in dataset:
            try:
                data[key] = torch.as_tensor(dataset[key])
            except (TypeError, ValueError, RuntimeError):
                raise checks.ArgumentTypeError(f"dataset[{key!r}] must be a tensor or array of numbers, "
                                               f"got {type(dataset[key]).__name__}") from None
    obs, next_obs = data["obs"], data["next_obs"]
    if obs.ndim != 2 or next_obs.shape != obs.shape or obs.shape[0] == 0:
        raise ValueError(f"dataset['obs'] and dataset['next_obs'] must both be (N, D) with N >= 1, got {tuple(obs.shape)} and {tuple(next_obs.shape)}")
    n = obs.shape[0]
    for key in ("actions", "rewards", "terminated", "weights"):
        if key in data and data[key].shape != (n,):
            raise ValueError(f"dataset[{key!r}] must have shape (N,) = ({n},), got {tuple(data[key].shape)}")
    for key in ("obs", "next_obs", "rewards", "weights"):
        if key in data:
            checks.finite(f"dataset[{key!r}]", data[key])
    actions = data["actions"]
    if actions.dtype == torch.bool or actions.is_floating_point() or actions.is_complex():
        raise checks.ArgumentTypeError(f"dataset['actions'] must hold integer action indices, got dtype {actions.dtype}")
    A = int(actions.max()) + 1
    if "num_actions" in dataset:
        num = dataset["num_actions"]
        if isinstance(num, torch.Tensor) and num.ndim == 0 and not (num.is_floating_point() or num.dtype == torch.bool):
            num = int(num)
        A = checks.positive_int("dataset['num_actions']", num)
    if int(actions.min()) < 0 or int(actions.max()) >= A:
        raise ValueError(f"dataset['actions'] must be in [0, num_actions) = [0, {A}), "
                         f"got min {int(actions.min())} and max {int(actions.max())}")
    checks.binary("dataset['terminated']", data["terminated"])
    if "weights" in data:
        w = data["weights"]
        if bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"dataset['weights'] must be non-negative with a positive sum, got min {float(w.min()):.3g} "
                             f"and sum {float(w.sum()):.3g}")
    data["num_actions"] = A
    return data


def fitted_q_iteration(dataset: dict, config: FittedQConfig = FittedQConfig(), *, allow_changed: tuple[str, ...] = ()):
    """Fully fitted Q-iteration on a fixed dataset of transitions.

    For ``k = 1..K``: targets ``y_i = r_i + gamma (1 - terminated_i) max_a' Q_{k-1}(s'_i, a')``
    from the previous fit, then ``Q_k = argmin sum_i w_i (Q(s_i, a_i) - y_i)^2`` over the
    regressor class. Nothing new is collected: this is batch (offline) RL.

    Args:
        dataset: dict with ``obs`` ``(N, D)``, ``actions`` ``(N,)`` int64, ``rewards`` ``(N,)``,
            ``next_obs`` ``(N, D)``, ``terminated`` ``(N,)`` bool; optional ``weights`` ``(N,)``
            (sample weights of the least squares) and ``num_actions``.
        config: :class:`FittedQConfig` (the regressor is ``config.regressor``). With
            ``config.checkpoint_path`` (``"mlp"`` and ``"linear"`` only) the run is
            checkpointed after every iteration and resumed from an existing file.
        allow_changed: config fields that may differ from the checkpoint's when
            resuming (e.g. ``("iterations",)`` to extend a finished run).

    Returns:
        ``(q_function, history)``: a :class:`FittedQFunction` and a history with
        ``iteration``, ``td_error`` (weighted RMS of ``Q_k(s, a) - y`` after the fit),
        ``q_mean`` (mean of ``max_a Q_k`` over the dataset's states), ``eval_return``
        (mean undiscounted return of the greedy policy, NaN without ``eval_env_id``),
        ``seconds``, and ``stop_reason``.

    Raises:
        ValueError / ArgumentTypeError: naming ``dataset`` (a missing key, mismatched
            shapes, NaN/inf in ``obs``, ``next_obs``, ``rewards`` or ``weights``, actions
            that are not integers in ``[0, num_actions)``, a ``terminated`` that is not
            0/1, negative weights) or ``config``.

    References:
        Ernst, Geurts and Wehenkel 2005, section 3 (Figure 1, the FQI algorithm) and
        section 4 (extra-trees); Riedmiller 2005 (NFQ, Rprop); CS182 notes Algorithm 18.
    """
    data = _check_dataset(dataset)
    if not isinstance(config, FittedQConfig):
        raise checks.ArgumentTypeError(f"config must be a FittedQConfig, got {type(config).__name__}")
    obs = data["obs"].double()
    next_obs = data["next_obs"].double()
    actions = data["actions"].long()
    rewards = data["rewards"].double()
    not_done = (~data["terminated"].bool()).double()
    A = data["num_actions"]
    n, D = obs.shape
    w = torch.as_tensor(data.get("weights", torch.ones(n)), dtype=torch.float64)
    torch.manual_seed(config.seed)
    q_function = FittedQFunction(config.regressor, D, A, config.hidden_sizes)
    optimizer = torch.optim.Rprop(q_function.net.parameters(), lr=config.lr) if config.regressor == "mlp" else None
    run = TrainingRun(config, model=q_function, optimizer=optimizer, history_keys=("iteration", "td_error", "q_mean", "eval_return", "seconds"),
                      checkpoint_path=config.checkpoint_path, resume=config.resume, allow_changed=allow_changed,
                      max_seconds=config.max_seconds, total=config.iterations, desc=f"fitted Q-iteration ({config.regressor})",
                      unit="iteration", progress=config.progress)
    state = run.restore(default={})
    with run:
        for k in range(run.step + 1, config.iterations + 1):  # run.step: iterations done (a resumed run skips them)
            with torch.no_grad():
                y = rewards + config.gamma * not_done * q_function(next_obs).double().amax(-1)  # the max is at s'
            if config.regressor == "linear":
                for a in range(A):  # exact weighted least squares, one linear map per action
                    m = actions == a
                    sw = w[m].sqrt()[:, None]
                    q_function.weight.data[a] = torch.linalg.lstsq(obs[m] * sw, y[m, None] * sw, driver="gelsd").solution[:, 0]
                run.mark_updated()
            elif config.regressor == "extra_trees":
                from sklearn.ensemble import ExtraTreesRegressor

                x = np.concatenate([obs.numpy(), np.eye(A)[actions.numpy()]], 1)
                trees = ExtraTreesRegressor(n_estimators=config.n_estimators, min_samples_split=config.min_samples_split,
                                            random_state=config.seed + k, n_jobs=1)
                q_function.trees = trees.fit(x, y.numpy(), sample_weight=w.numpy())
                run.mark_updated()
            else:
                x_obs, y32, w32 = obs.float(), y.float(), (w / w.mean()).float()
                for _ in range(config.epochs):  # Riedmiller: full-batch Rprop on the whole pattern set
                    q_sa = q_function(x_obs).gather(1, actions[:, None])[:, 0]
                    run.optimize((w32 * (q_sa - y32) ** 2).mean(), inputs=x_obs)
            with torch.no_grad():
                q_all = q_function(obs).double()
                td = q_all.gather(1, actions[:, None])[:, 0] - y
                td_error = float(((w * td**2).sum() / w.sum()).sqrt())
            ret = float("nan")
            if config.eval_env_id is not None:
                ret = float(evaluate_q_function(q_function, config.eval_env_id, config.eval_episodes,
                                                seed=10_000 + config.seed, max_steps=config.eval_max_steps).mean())
            stop = run.end_step(state, td_error=td_error, eval_return=ret)
            run.log(iteration=k, td_error=td_error, q_mean=float(q_all.amax(-1).mean()), eval_return=ret, seconds=run.seconds)
            run.save(state)  # after every iteration (a no-op without checkpoint_path)
            if stop:
                break
    return q_function, run.finish()


def evaluate_q_function(q_function, env_id: str = "CartPole-v1", episodes: int = 10, seed: int = 0,
                        max_steps: int | None = None) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes of the greedy policy ``argmax_a Q(s, a)``.

    The episodes run side by side in a vector env, so ``q_function`` is called once per
    time step on a ``(episodes, D)`` batch (a tree ensemble's ``predict`` is slow per call).

    Args:
        q_function: callable ``(B, D) -> (B, A)``.
        env_id: a gymnasium env with a flat Box observation and Discrete actions.
        episodes: number of episodes (env ``i`` is reset with seed ``seed + i``).
        max_steps: cap on episode length (default: the env's own time limit).

    Returns:
        ``(episodes,)`` float array of undiscounted returns.

    Raises:
        ValueError / ArgumentTypeError: naming the argument (a ``q_function`` that is not
            callable, or returns Q-values of the wrong shape or with NaN/inf entries, whose
            argmax would be meaningless; an ``env_id`` that is not a str or whose env does
            not have a flat Box observation and Discrete actions).
    """
    if not callable(q_function):
        raise checks.ArgumentTypeError(f"q_function must be a callable (B, D) -> (B, A), got {type(q_function).__name__}")
    episodes = checks.positive_int("episodes", episodes)
    seed = checks.nonnegative_int("seed", seed)
    if max_steps is not None:
        max_steps = checks.positive_int("max_steps", max_steps)
    envs = gym.make_vec(_check_env_id(env_id), num_envs=episodes, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    try:
        A = _check_box_discrete_env(env_id, envs.single_observation_space, envs.single_action_space)
        obs, _ = envs.reset(seed=seed)
        returns, running = np.zeros(episodes), np.ones(episodes, dtype=bool)
        t = 0
        while running.any() and (max_steps is None or t < max_steps):
            with torch.no_grad():
                actions = _q_outputs(q_function, torch.as_tensor(obs, dtype=torch.float32), A).argmax(-1).cpu().numpy()
            obs, r, terminated, truncated, _ = envs.step(actions)
            returns += r * running
            running &= ~(terminated | truncated)
            t += 1
    finally:
        envs.close()
    return returns


# --------------------------------------------------------------------------------------
# Baird's counterexample (divergence with linear function approximation)
# --------------------------------------------------------------------------------------


def baird_counterexample(sweeps: int = 1000, alpha: float = 0.01, gamma: float = 0.99) -> dict:
    """Expected semi-gradient TD(0) (semi-gradient dynamic programming) on Baird's 7-state MDP.

    Seven states, linear values ``v(s) = x(s) . w`` with 8 weights (states 1-6:
    ``x = 2 e_i + e_8``; state 7: ``x = e_7 + 2 e_8``), all rewards 0, so the true values
    are 0 and representable (``w = 0``). The target policy always takes "solid" (to state
    7); updates are weighted uniformly over states (the behaviour policy's distribution).
    Each sweep: ``w += alpha/7 sum_s (gamma v(7) - v(s)) x(s)``. The weights diverge
    for every ``alpha > 0``; with a tabular (one-hot) ``x`` the same sweep converges.
    ``sweeps`` must be ``>= 1`` and ``alpha > 0``.

    Returns:
        dict with ``weights`` ``(sweeps + 1, 8)`` float64 (from ``w_0 = (1,...,1,10,1)``),
        ``features`` ``(7, 8)``, ``tabular_values`` ``(sweeps + 1, 7)`` (the same update with
        one-hot features, from ``v_0 = x w_0``; it shrinks slowly, at rate ``1 - alpha (1 - gamma) / 7``),
        ``fitted_values`` ``(sweeps + 1, 7)`` (fully fitted: ``w`` refitted by exact least squares to the
        targets ``gamma v(7)`` every sweep; the 7 feature vectors are independent, so the fit is exact
        and the values shrink by ``gamma`` per sweep).

    References:
        Baird 1995; Sutton and Barto 2018, section 11.2, Example 11.1 and Figure 11.2 (right).
    """
    sweeps = checks.positive_int("sweeps", sweeps)
    alpha = checks.positive_float("alpha", alpha)
    gamma = checks.unit_interval("gamma", gamma)
    X = torch.zeros(7, 8, dtype=torch.float64)
    X[torch.arange(6), torch.arange(6)] = 2.0
    X[:6, 7] = 1.0
    X[6, 6], X[6, 7] = 1.0, 2.0
    w = torch.tensor([1, 1, 1, 1, 1, 1, 10, 1], dtype=torch.float64)
    v_tab = X @ w
    w_fit = w.clone()
    weights, tabular, fitted = [w.clone()], [v_tab.clone()], [X @ w_fit]
    for _ in range(sweeps):
        v = X @ w
        w = w + alpha / 7 * ((gamma * v[6] - v) @ X)
        v_tab = v_tab + alpha / 7 * (gamma * v_tab[6] - v_tab)  # one-hot: each state its own weight
        target = gamma * (X @ w_fit)[6].expand(7)  # fully fitted: exact least squares on all 7 targets
        w_fit = torch.linalg.lstsq(X, target[:, None], driver="gelsd").solution[:, 0]
        weights.append(w.clone())
        tabular.append(v_tab.clone())
        fitted.append(X @ w_fit)
    return {"weights": torch.stack(weights), "features": X, "tabular_values": torch.stack(tabular),
            "fitted_values": torch.stack(fitted)}
