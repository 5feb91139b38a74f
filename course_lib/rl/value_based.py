"""Learning values from samples (Chapter 6): bandits and epsilon-greedy exploration, tabular
Q-learning and SARSA, fully fitted Q-iteration, and Baird's counterexample.

Chapter 7 (DQN) builds on :func:`epsilon_greedy` and :func:`q_learning_td_target`.
Fitted Q-iteration (:func:`collect_transitions`, :class:`FittedQConfig`,
:class:`FittedQFunction`, :func:`fitted_q_iteration`, :func:`evaluate_q_function`) is
in :mod:`course_lib.rl.fitted_q`, imported here.

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
    H. van Hasselt, "Double Q-learning", NeurIPS 23, 2010 (Algorithm 1).
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
from course_lib.training import RunOptions, TrainingRun

__all__ = [
    "epsilon_greedy",
    "epsilon_greedy_probs",
    "boltzmann_probs",
    "bandit_testbed",
    "q_learning_td_target",
    "sarsa_td_target",
    "double_q_learning_td_target",
    "maximization_bias",
    "TabularQConfig",
    "q_learning",
    "sarsa",
    "collect_transitions",
    "FittedQConfig",
    "FittedQFunction",
    "fitted_q_iteration",
    "evaluate_q_function",
    "baird_counterexample",
    "baird_target_periods",
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


def boltzmann_probs(q_values: torch.Tensor, temperature: float) -> torch.Tensor:
    """Boltzmann (softmax) exploration: ``pi(a) = exp(Q(a) / kappa) / sum_b exp(Q(b) / kappa)``.

    Unlike epsilon-greedy, which explores uniformly, the probability of an action grows
    with its estimated value: ``pi(a) / pi(b) = exp((Q(a) - Q(b)) / kappa)``. As the
    temperature ``kappa -> 0`` it becomes greedy (ties shared equally); as ``kappa -> inf``
    uniform. Adding a constant to every ``Q`` changes nothing.

    Args:
        q_values: ``(A,)`` or ``(B, A)`` float Q-values.
        temperature: ``kappa > 0`` (finite), in the units of ``Q``.

    Returns:
        probabilities of the same shape as ``q_values`` (float64), each row summing to 1.

    Raises:
        ArgumentTypeError / ValueError: naming ``q_values`` (not a float tensor of shape
            ``(A,)`` / ``(B, A)``, or a NaN/inf entry) or ``temperature`` (not a positive
            finite number).

    References:
        Sutton and Barto 2018, section 2.8 and section 13.1 (soft-max action preferences);
        CS182 notes 7.6.2 (Boltzmann exploration).
    """
    q_values = _check_q_values(q_values)
    temperature = checks.positive_float("temperature", temperature)
    return torch.softmax(q_values.to(torch.float64) / temperature, dim=-1)


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


def double_q_learning_td_target(reward: torch.Tensor, next_q_select: torch.Tensor, next_q_evaluate: torch.Tensor,
                                terminated: torch.Tensor, gamma: float) -> torch.Tensor:
    """The Double Q-learning target ``y = r + gamma (1 - terminated) Q2(s', argmax_a' Q1(s', a'))``.

    One table (``Q1``, the one being updated) *selects* the next action, the other
    (``Q2``) *evaluates* it. With a single table, ``max_a' Q(s', a')`` is the max of noisy
    estimates, whose expectation exceeds the max of their means (maximization bias);
    with independent noise in the two tables the evaluation is unbiased for the
    selected action. Ties in the selection go to the lowest index.

    Args:
        reward: ``()`` or ``(B,)``.
        next_q_select: ``(A,)`` or ``(B, A)``, ``Q1(s', .)``, the table being updated.
        next_q_evaluate: same shape, ``Q2(s', .)``, the other table.
        terminated: bool, ``()`` or ``(B,)``.
        gamma: discount in ``[0, 1]``.

    Returns:
        the target, shape of ``reward``, dtype of ``next_q_evaluate``.

    Raises:
        ArgumentTypeError / ValueError: as :func:`q_learning_td_target`, naming
            ``next_q_select`` or ``next_q_evaluate``; ``ValueError`` when their shapes differ.

    References:
        H. van Hasselt, "Double Q-learning", NeurIPS 2010, Algorithm 1; Sutton and Barto
        2018, section 6.7 (eq. 6.10).
    """
    if isinstance(next_q_select, torch.Tensor) and isinstance(next_q_evaluate, torch.Tensor) \
            and next_q_select.shape != next_q_evaluate.shape:
        raise ValueError(f"next_q_select and next_q_evaluate must have the same shape, got "
                         f"{tuple(next_q_select.shape)} and {tuple(next_q_evaluate.shape)}")
    _check_td("next_q_select", reward, next_q_select, terminated, gamma, with_actions=True)
    reward, next_q_evaluate, terminated, gamma = _check_td("next_q_evaluate", reward, next_q_evaluate, terminated,
                                                           gamma, with_actions=True)
    chosen = next_q_select.argmax(-1, keepdim=True)
    return reward + gamma * (~terminated).to(next_q_evaluate.dtype) * next_q_evaluate.gather(-1, chosen).squeeze(-1)


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
                      total=config.total_steps, desc="sarsa" if on_policy else "q_learning",
                      unit="env step")
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
# Maximization bias: Sutton and Barto's Example 6.7, vectorized over runs
# --------------------------------------------------------------------------------------


def _argmax_random_ties(q: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """``(R, A)`` -> ``(R,)`` argmax with ties broken uniformly at random."""
    is_max = q == q.amax(-1, keepdim=True)
    return (torch.rand(q.shape, generator=gen, dtype=torch.float64) * is_max).argmax(-1)


def _epsilon_greedy_random_ties(q: torch.Tensor, epsilon: float, gen: torch.Generator) -> torch.Tensor:
    explore = torch.rand(q.shape[0], generator=gen, dtype=torch.float64) < epsilon
    return torch.where(explore, torch.randint(q.shape[1], (q.shape[0],), generator=gen), _argmax_random_ties(q, gen))


def maximization_bias(double: bool, num_runs: int = 10_000, episodes: int = 300, num_b_actions: int = 10,
                      epsilon: float = 0.1, alpha: float = 0.1, gamma: float = 1.0, b_mean: float = -0.1,
                      seed: int = 0) -> dict:
    """Q-learning or Double Q-learning on Sutton and Barto's Example 6.7, ``num_runs`` runs in lockstep.

    Every episode starts in state A with two actions: *right* ends the episode with reward
    0; *left* moves to B with reward 0. From B each of ``num_b_actions`` actions ends the
    episode with a reward drawn from ``N(b_mean, 1)``. With ``b_mean < 0`` *left* is worth
    ``b_mean`` and *right* 0, so the optimal epsilon-greedy agent goes left with
    probability ``epsilon / 2`` only. Q-learning's target for *left*,
    ``max_b Q(B, b)``, is the max of noisy estimates and starts positive: early on the
    agent prefers *left*. Double Q-learning (two tables; a fair coin picks the one to
    update; its target comes from :func:`double_q_learning_td_target`; the behaviour is
    epsilon-greedy on ``Q_1 + Q_2``) removes the bias. Tables start at 0; greedy ties are
    broken at random. Each run is its own random problem instance (its own rewards and
    coins), so ``num_runs`` plays the role of seeds.

    Args:
        double: ``False`` for Q-learning, ``True`` for Double Q-learning.
        num_runs: independent runs ``R`` (>= 1).
        episodes: episodes per run ``E`` (>= 1).
        num_b_actions: actions at B (>= 1).
        epsilon: exploration probability in ``[0, 1]``; alpha: step size in ``(0, 1]``;
        gamma: discount in ``[0, 1]``; b_mean: mean reward of B's actions (finite).
        seed: seed of the one ``torch.Generator`` that draws everything.

    Returns:
        dict with ``left`` ``(E,)`` float64, the fraction of runs that took *left* in
        episode ``e``; ``left_runs`` ``(R, E)`` bool; ``q_a`` ``(R, 2)`` the final
        ``Q(A, .)`` (for Double Q-learning the mean of the two tables); ``optimal_left``
        the float ``epsilon / 2``.

    Raises:
        ArgumentTypeError / ValueError: naming the argument (a non-bool ``double``, sizes
            < 1, ``epsilon`` or ``gamma`` outside ``[0, 1]``, ``alpha`` outside ``(0, 1]``,
            a non-finite ``b_mean``, a negative seed).

    References:
        Sutton and Barto 2018, section 6.7, Example 6.7 and Figure 6.5; H. van Hasselt,
        "Double Q-learning", NeurIPS 2010, Algorithm 1.
    """
    if not isinstance(double, bool):
        raise checks.ArgumentTypeError(f"double must be a bool, got {double!r}")
    R = checks.positive_int("num_runs", num_runs)
    E = checks.positive_int("episodes", episodes)
    nb = checks.positive_int("num_b_actions", num_b_actions)
    epsilon = checks.unit_interval("epsilon", epsilon)
    alpha = checks.unit_interval("alpha", checks.positive_float("alpha", alpha))
    gamma = checks.unit_interval("gamma", gamma)
    b_mean = _finite_float("b_mean", b_mean)
    gen = torch.Generator().manual_seed(checks.nonnegative_int("seed", seed))
    tables = 2 if double else 1
    q_a = torch.zeros(tables, R, 2, dtype=torch.float64)        # action 0 = left (to B), 1 = right (end)
    q_b = torch.zeros(tables, R, nb, dtype=torch.float64)
    rows = torch.arange(R)
    no_end = torch.zeros(R, dtype=torch.bool)
    zeros = torch.zeros(R, dtype=torch.float64)
    left_runs = torch.zeros(R, E, dtype=torch.bool)
    for e in range(E):
        a = _epsilon_greedy_random_ties(q_a.sum(0), epsilon, gen)
        left = a == 0
        left_runs[:, e] = left
        # the update of Q(A, a): target max_b Q(B, b) after left (Double: the other table evaluates), 0 after right
        which = (torch.rand(R, generator=gen) < 0.5).long() if double else torch.zeros(R, dtype=torch.long)
        if double:
            bootstrap = double_q_learning_td_target(zeros, q_b[which, rows], q_b[1 - which, rows], no_end, gamma)
        else:
            bootstrap = q_learning_td_target(zeros, q_b[0], no_end, gamma)
        target = torch.where(left, bootstrap, zeros)
        q_a[which, rows, a] += alpha * (target - q_a[which, rows, a])
        # at B (runs that went left): one action, a N(b_mean, 1) reward, and the episode ends
        b = _epsilon_greedy_random_ties(q_b.sum(0), epsilon, gen)
        reward = b_mean + torch.randn(R, generator=gen, dtype=torch.float64)
        which_b = (torch.rand(R, generator=gen) < 0.5).long() if double else torch.zeros(R, dtype=torch.long)
        step = torch.where(left, alpha * (reward - q_b[which_b, rows, b]), zeros)
        q_b[which_b, rows, b] += step
    return {"left": left_runs.double().mean(0), "left_runs": left_runs, "q_a": q_a.mean(0),
            "optimal_left": epsilon / 2}

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


def baird_target_periods(periods, sweeps: int = 20_000, alpha: float = 0.01, gamma: float = 0.99) -> dict:
    """Baird's counterexample with a frozen target: the target weights are copied every ``K`` sweeps.

    (``K`` is the chapter's ``N_target``, counted in sweeps.)

    The expected semi-gradient sweep of :func:`baird_counterexample`, but the bootstrap
    ``gamma v(7)`` is computed from target weights ``w^-`` that are refreshed
    (``w^- <- w``) only every ``K`` sweeps, like a DQN target network:
    ``w += alpha/7 sum_s (gamma x(7) . w^- - x(s) . w) x(s)``. ``K = 1`` is the plain
    semi-gradient sweep. Between refreshes the update is a regression towards fixed
    targets, which contracts; a short period still diverges, a long one stays bounded.
    The state weighting is the same uniform (off-policy) one for every ``K``.

    Args:
        periods: sequence of ``P`` target periods ``K >= 1`` (ints).
        sweeps: number of sweeps (>= 1); alpha: step size (> 0); gamma: discount in ``[0, 1]``.

    Returns:
        dict with ``periods`` ``(P,)`` int64, ``weight_norms`` ``(P, sweeps + 1)`` float64
        (``||w_k||``, from ``w_0 = (1,...,1,10,1)``) and ``max_values`` ``(P, sweeps + 1)``
        (``max_s |v_k(s)|``; the true values are 0).

    Raises:
        ArgumentTypeError / ValueError: naming the argument (an empty ``periods`` or one
            that is not a positive int, ``sweeps < 1``, ``alpha <= 0``, ``gamma`` outside ``[0, 1]``).

    References:
        Baird 1995; Sutton and Barto 2018, section 11.2; Mnih et al. 2015 (the target network).
    """
    if isinstance(periods, (str, bytes)) or not hasattr(periods, "__len__") or len(periods) == 0:
        raise checks.ArgumentTypeError(f"periods must be a non-empty sequence of positive ints, got {periods!r}")
    periods_list = [checks.positive_int("periods", period) for period in periods]
    K = torch.tensor(periods_list, dtype=torch.int64)
    sweeps = checks.positive_int("sweeps", sweeps)
    alpha = checks.positive_float("alpha", alpha)
    gamma = checks.unit_interval("gamma", gamma)
    X = baird_counterexample(sweeps=1)["features"]
    # one sweep is linear in z = (w, w^-): w <- (I - alpha/7 X^T X) w + (alpha gamma / 7) (sum_s x(s)) x(7)^T w^-
    step = torch.zeros(16, 16, dtype=torch.float64)
    step[:8, :8] = torch.eye(8, dtype=torch.float64) - alpha / 7 * X.T @ X
    step[:8, 8:] = alpha * gamma / 7 * torch.outer(X.sum(0), X[6])
    step[8:, 8:] = torch.eye(8, dtype=torch.float64)
    z = torch.tensor([1, 1, 1, 1, 1, 1, 10, 1] * 2, dtype=torch.float64).expand(len(K), 16).clone()
    history = torch.empty(sweeps + 1, len(K), 8, dtype=torch.float64)
    history[0] = z[:, :8]
    for k in range(1, sweeps + 1):
        z = z @ step.T
        refresh = [i for i, period in enumerate(periods_list) if k % period == 0]   # w^- <- w every K sweeps
        if refresh:
            z[refresh, 8:] = z[refresh, :8]
        history[k] = z[:, :8]
    history = history.transpose(0, 1)                                   # (P, sweeps + 1, 8)
    norms, values = history.norm(dim=-1), (history @ X.T).abs().amax(-1)
    return {"periods": K, "weight_norms": norms, "max_values": values}

# Fully fitted Q-iteration lives in course_lib/rl/fitted_q.py, which imports _set_checked
# and epsilon_greedy from here: imported at the end, once they are defined.
from course_lib.rl.fitted_q import (  # noqa: E402
    FittedQConfig,
    FittedQFunction,
    collect_transitions,
    evaluate_q_function,
    fitted_q_iteration,
)
