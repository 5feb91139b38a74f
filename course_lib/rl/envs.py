"""Environments, on-policy batch collection, evaluation and rollouts (shared by Chapters 4, 5 and 7).

Vector environments are built with ``gymnasium.make_vec(..., vectorization_mode="sync")``
and SAME_STEP autoreset (see :func:`make_vec_env`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from course_lib import checks
from course_lib.rl.policy_gradient import CategoricalPolicy, reward_to_go

__all__ = [
    "make_vec_env",
    "env_generators",
    "env_snapshot",
    "restore_env_snapshot",
    "Batch",
    "collect_batch",
    "evaluate",
    "rollout_episode",
]


# --------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------


def _check_discrete_env(env_id: str, action_space, observation_space) -> None:
    """Raise ValueError unless the env has a Discrete action space and flat Box observations."""
    if not isinstance(action_space, gym.spaces.Discrete):
        raise ValueError(
            f"env_id {env_id!r} has action space {action_space}; this code needs a "
            f"Discrete action space (a categorical policy), not a continuous one"
        )
    if not (isinstance(observation_space, gym.spaces.Box) and len(observation_space.shape) == 1):
        raise ValueError(
            f"env_id {env_id!r} has observation space {observation_space}; a flat "
            f"(1-D) Box observation space is needed"
        )


def _check_policy_type(policy) -> None:
    if not isinstance(policy, nn.Module) or not hasattr(policy, "num_actions") or not hasattr(policy, "obs_dim"):
        raise checks.ArgumentTypeError(f"policy must be a CategoricalPolicy, got {type(policy).__name__}")


def _check_policy_fits(env_id: str, policy, action_space, observation_space) -> None:
    """Raise ValueError naming ``policy`` if its action count or observation size differs from the env's."""
    _check_policy_type(policy)
    if int(action_space.n) != policy.num_actions:
        raise ValueError(
            f"policy has {policy.num_actions} actions but env_id {env_id!r} has {int(action_space.n)} "
            f"({action_space}); build the policy with num_actions={int(action_space.n)}"
        )
    if observation_space.shape[0] != policy.obs_dim:
        raise ValueError(
            f"policy expects observations of size obs_dim={policy.obs_dim}, but env_id {env_id!r} "
            f"has observations of size {observation_space.shape[0]}"
        )


def make_vec_env(env_id: str, num_envs: int) -> gym.vector.VectorEnv:
    """``gymnasium.make_vec`` in "sync" mode with SAME_STEP autoreset.

    Gymnasium 1.x defaults to NEXT_STEP autoreset: the ``step`` *after* an episode
    ends returns the reset observation and a dummy transition that must be skipped.
    With ``AutoresetMode.SAME_STEP`` the step that ends an episode already returns the
    first observation of the next one (the true final observation is in
    ``info["final_obs"]``, which REINFORCE does not need), so every transition a
    ``step`` returns is real and ``obs = next_obs`` is always right.

    Raises:
        ValueError: if the environment's action space is not Discrete (naming it),
            or ``num_envs < 1``.
        ArgumentTypeError (a TypeError and a ValueError): ``env_id`` not a str,
            ``num_envs`` not an int.
    """
    if not isinstance(env_id, str) or not env_id:
        raise checks.ArgumentTypeError(f"env_id must be a non-empty str (a gymnasium id), got {env_id!r}")
    checks.positive_int("num_envs", num_envs)
    envs = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP},
    )
    try:
        _check_discrete_env(env_id, envs.single_action_space, envs.single_observation_space)
    except ValueError:
        envs.close()
        raise
    return envs


def env_generators(envs: gym.vector.VectorEnv) -> dict[str, np.random.Generator]:
    """The random number generators of a vector env's sub-environments, by name ``"env0"``, ``"env1"``, ...

    A trainer passes them to :class:`course_lib.training.TrainingRun` (``generators=``)
    so that a checkpoint holds every environment's RNG state and a resumed run
    draws the same initial states as one that never stopped. A reset *with* a seed
    replaces these objects, so call this again after one.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``envs`` is not a
            synchronous vector env (one with an ``envs`` list).
    """
    subenvs = getattr(envs, "envs", None)
    if not isinstance(envs, gym.vector.VectorEnv) or subenvs is None:
        raise checks.ArgumentTypeError(
            f"envs must be a gymnasium SyncVectorEnv (see make_vec_env), got {type(envs).__name__}"
        )
    return {f"env{i}": env.unwrapped.np_random for i, env in enumerate(subenvs)}


def _check_envs_and_policy(envs, policy) -> None:
    """``collect_batch``'s preconditions: SAME_STEP autoreset, and a policy that fits the env."""
    if not isinstance(envs, gym.vector.VectorEnv):
        raise checks.ArgumentTypeError(
            f"envs must be a gymnasium vector env (see make_vec_env), got {type(envs).__name__}"
        )
    mode = envs.metadata.get("autoreset_mode")
    if mode != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError(
            f"envs must use SAME_STEP autoreset (make_vec_env does), got autoreset_mode={mode}; "
            f"with NEXT_STEP the step after an episode ends is a dummy transition that would be "
            f"counted as real"
        )
    _check_policy_type(policy)
    space = envs.single_action_space
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"envs has action space {space}; the policy needs a Discrete one")
    if int(space.n) != policy.num_actions:
        raise ValueError(
            f"policy has {policy.num_actions} actions but the env has {int(space.n)} "
            f"(action space {space}); build the policy with num_actions={int(space.n)}"
        )
    obs_shape = envs.single_observation_space.shape
    if len(obs_shape) != 1 or obs_shape[0] != policy.obs_dim:
        raise ValueError(
            f"policy expects observations of size obs_dim={policy.obs_dim}, but the env's are {obs_shape}"
        )


@dataclass
class Batch:
    """One on-policy batch of complete episodes (the output of :func:`collect_batch`).

    ``M`` is the number of transitions kept (the sum of the episode lengths).

    Attributes:
        obs: ``(M, obs_dim)`` float32, the observation each action was taken in.
        actions: ``(M,)`` int64.
        rewards: ``(M,)`` float32.
        weights_rtg: ``(M,)`` float32, discounted reward-to-go ``G_t`` within the
            episode (computed with the ``gamma`` given to :func:`collect_batch`).
        dones: ``(M,)`` bool, True at the last transition of each episode
            (terminated or truncated). The episodes of a batch are contiguous, so
            ``np.flatnonzero(dones)`` gives the index of each episode's last step.
        episode_returns: ``(E,)`` float64 undiscounted returns of the ``E`` episodes.
        episode_lengths: ``(E,)`` int64.
        simulated_steps: transitions the vector env produced, including the ones
            discarded because their env had already finished its last episode of the
            batch (``>= M``).
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    weights_rtg: np.ndarray
    dones: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    simulated_steps: int

    @property
    def num_steps(self) -> int:
        """``M``, the number of transitions in the batch."""
        return int(self.actions.shape[0])


def collect_batch(
    envs: gym.vector.VectorEnv,
    policy: CategoricalPolicy,
    min_steps: int,
    gamma: float,
    seed: int | None = None,
) -> Batch:
    """Run ``policy`` in a vector env until ``min_steps`` transitions of complete episodes.

    Every environment starts a fresh episode (``envs.reset``). All of them keep
    starting new episodes until the transitions gathered reach ``min_steps``; after
    that, each one finishes the episode it is in and then idles (its further
    transitions are simulated but discarded). So the batch holds only *complete*
    episodes, and whether an episode is in the batch is decided before it starts:
    there is no bias towards short episodes (dropping the unfinished ones at a
    fixed deadline would have one). With no critic, an episode cut by a time limit
    (``truncated``) is treated like a terminated one: its reward-to-go sums the
    rewards up to the cut, which is exactly right for the time-limited objective
    (CartPole-v1 is scored over at most 500 steps) and there is nothing to bootstrap
    with.

    Args:
        envs: a vector env made with SAME_STEP autoreset (see :func:`make_vec_env`).
        policy: the current policy; its device is used for the forward passes.
        min_steps: the least number of kept transitions (>= 1).
        gamma: discount for ``weights_rtg`` (in ``[0, 1]``).
        seed: seed for ``envs.reset`` (``None``: continue the envs' RNG).

    Returns:
        a :class:`Batch`.

    Raises:
        ValueError: for ``min_steps < 1``, ``gamma`` outside ``[0, 1]``, a vector env
            without SAME_STEP autoreset (its dummy reset transitions would be kept as
            real ones), or a policy whose number of actions or observation size
            differs from the env's.
        ArgumentTypeError (a TypeError and a ValueError): ``envs`` not a vector env,
            ``policy`` not a policy, ``min_steps`` not an int (e.g. ``2.5``).

    Source: the batch collection of Spinning Up's ``simple_pg.py`` (complete
    episodes), made vectorized.
    """
    _check_envs_and_policy(envs, policy)
    checks.positive_int("min_steps", min_steps)
    gamma = checks.unit_interval("gamma", gamma)
    if seed is not None:
        checks.nonnegative_int("seed", seed)
    device = next(policy.parameters()).device
    num_envs = envs.num_envs

    obs, _ = envs.reset(seed=seed)
    active = np.ones(num_envs, dtype=bool)  # False once an env finished its last episode
    kept = 0
    obs_buf, act_buf, rew_buf, done_buf, keep_buf = [], [], [], [], []
    ep_ret = np.zeros(num_envs)
    ep_len = np.zeros(num_envs, dtype=np.int64)
    returns, lengths = [], []

    while active.any():
        actions = policy.act(torch.as_tensor(obs, device=device)).cpu().numpy()
        next_obs, reward, terminated, truncated, _ = envs.step(actions)
        done = terminated | truncated  # a truncated episode also ends here (no bootstrap)
        obs_buf.append(obs)
        act_buf.append(actions)
        rew_buf.append(reward)
        done_buf.append(done)
        keep_buf.append(active.copy())  # transitions of idle envs are discarded
        kept += int(active.sum())
        ep_ret += reward
        ep_len += 1
        finished = done & active
        returns.extend(ep_ret[finished].tolist())
        lengths.extend(ep_len[finished].tolist())
        ep_ret[done] = 0.0
        ep_len[done] = 0
        if kept >= min_steps:
            active &= ~done  # past the quota: an env that just finished stops collecting
        obs = next_obs  # SAME_STEP autoreset: next_obs of a done env is its next episode's start

    # (T, N) blocks -> per-env rows (N, T), so that reward_to_go runs along time
    rew = np.stack(rew_buf).T
    done = np.stack(done_buf).T
    keep = np.stack(keep_buf).T
    rtg = reward_to_go(torch.from_numpy(rew.astype(np.float64)), gamma, dones=torch.from_numpy(done))
    obs_arr = np.stack(obs_buf).transpose(1, 0, 2)
    act_arr = np.stack(act_buf).T
    return Batch(
        obs=obs_arr[keep].astype(np.float32),
        actions=act_arr[keep].astype(np.int64),
        rewards=rew[keep].astype(np.float32),
        weights_rtg=rtg.numpy()[keep].astype(np.float32),
        dones=done[keep],
        episode_returns=np.asarray(returns, dtype=np.float64),
        episode_lengths=np.asarray(lengths, dtype=np.int64),
        simulated_steps=int(keep.size),
    )


# --------------------------------------------------------------------------------------
# Snapshots of environment state (for faithful resume of A2C, PPO and DQN)
# --------------------------------------------------------------------------------------


def env_snapshot(envs) -> list[dict]:
    """The state of each sub-environment of a sync vector env, as tensors and ints.

    Covers the classic-control environments, whose whole state is
    ``unwrapped.state`` (plus CartPole's ``steps_beyond_terminated``) and the
    ``TimeLimit`` step counter. Each env's RNG is saved separately (its
    ``np_random`` is passed to :class:`TrainingRun` as a generator).

    Raises:
        ValueError: for an environment without a ``state`` attribute.
    """
    out = []
    for i, env in enumerate(envs.envs):
        base = env.unwrapped
        if not hasattr(base, "state"):
            raise ValueError(f"envs.envs[{i}] ({base}) has no .state: its state cannot be checkpointed")
        snap = {"state": torch.from_numpy(np.array(base.state, copy=True))}
        sbt = getattr(base, "steps_beyond_terminated", None)
        snap["steps_beyond_terminated"] = -1 if sbt is None else int(sbt)
        w = env
        while hasattr(w, "env"):
            if hasattr(w, "_elapsed_steps"):
                snap["elapsed_steps"] = int(w._elapsed_steps or 0)
            w = w.env
        out.append(snap)
    return out


def restore_env_snapshot(envs, snapshot: list[dict]) -> None:
    """Put back what :func:`env_snapshot` saved (same number of envs)."""
    for env, snap in zip(envs.envs, snapshot, strict=True):
        base = env.unwrapped
        old = base.state
        base.state = snap["state"].numpy().astype(np.asarray(old).dtype) if old is not None else snap["state"].numpy()
        if hasattr(base, "steps_beyond_terminated"):
            sbt = snap["steps_beyond_terminated"]
            base.steps_beyond_terminated = None if sbt < 0 else sbt
        w = env
        while hasattr(w, "env"):
            if hasattr(w, "_elapsed_steps") and "elapsed_steps" in snap:
                w._elapsed_steps = snap["elapsed_steps"]
            w = w.env


# --------------------------------------------------------------------------------------
# Evaluation and the widget's rollout
# --------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(
    policy: CategoricalPolicy,
    env_id: str = "CartPole-v1",
    episodes: int = 100,
    seed: int = 0,
    temperature: float = 1.0,
    greedy: bool = False,
    num_envs: int | None = None,
) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes of ``policy`` (vectorized).

    Actions are sampled from ``pi(.|s)`` at ``temperature`` (the stochastic policy
    *is* the policy REINFORCE learns), or are ``argmax`` if ``greedy``. Sampling uses
    a private ``torch.Generator`` seeded with ``seed`` and the envs are reset with
    ``seed, seed+1, ...``: results repeat, and the global RNG (hence a training run
    that calls this from a callback) is not disturbed. Each of the ``num_envs``
    environments plays a fixed quota of episodes, so short episodes are not
    over-represented.

    Args:
        policy: a :class:`CategoricalPolicy` (its device is used).
        env_id: gymnasium id with a Discrete action space.
        episodes: number of episodes (>= 1).
        seed: non-negative int.
        temperature: sampling temperature (> 0); ignored when ``greedy``.
        greedy: act with ``argmax`` of the logits.
        num_envs: parallel environments (default ``min(episodes, 100)``).

    Returns:
        ``(episodes,)`` float64 array of undiscounted episode returns.

    Raises:
        ValueError: for a non-Discrete action space (naming it), or bad
            ``episodes``/``seed``/``temperature``/``num_envs`` (a temperature so small
            that the probabilities overflow included), or a policy whose number of
            actions or observation size differs from the env's (a 2-action policy on
            MountainCar's 3 actions).
        ArgumentTypeError (a TypeError and a ValueError): ``policy`` not a policy,
            a count that is not an int (``episodes=2.5``), a non-bool ``greedy``.
    """
    checks.positive_int("episodes", episodes)
    checks.nonnegative_int("seed", seed)
    if not isinstance(greedy, bool):
        raise checks.ArgumentTypeError(f"greedy must be a bool, got {greedy!r}")
    _check_policy_type(policy)
    if not greedy:
        checks.temperature(temperature)
    num_envs = min(episodes, 100) if num_envs is None else num_envs
    checks.positive_int("num_envs", num_envs)
    num_envs = min(num_envs, episodes)
    envs = make_vec_env(env_id, num_envs)
    try:
        _check_policy_fits(env_id, policy, envs.single_action_space, envs.single_observation_space)
        device = next(policy.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(seed))
        quota = np.full(num_envs, episodes // num_envs) + (np.arange(num_envs) < episodes % num_envs)
        done_count = np.zeros(num_envs, dtype=np.int64)
        ep_ret = np.zeros(num_envs)
        results: list[float] = []
        obs, _ = envs.reset(seed=int(seed))
        while (done_count < quota).any():
            actions = policy.act(
                torch.as_tensor(obs, device=device), temperature, greedy, generator=gen
            ).cpu().numpy()
            obs, reward, terminated, truncated, _ = envs.step(actions)  # SAME_STEP autoreset
            ep_ret += reward
            done = terminated | truncated
            for i in np.flatnonzero(done):
                if done_count[i] < quota[i]:
                    results.append(float(ep_ret[i]))
                    done_count[i] += 1
                ep_ret[i] = 0.0
    finally:
        envs.close()
    return np.asarray(results, dtype=np.float64)


@torch.no_grad()
def rollout_episode(
    policy: CategoricalPolicy,
    env_id: str = "CartPole-v1",
    seed: int = 0,
    temperature: float = 1.0,
    render: bool = True,
    greedy: bool = False,
    max_steps: int | None = None,
    frame_stride: int = 1,
) -> dict:
    """Play one episode and record what the chapter's widget shows.

    Args:
        policy: a :class:`CategoricalPolicy`.
        env_id: gymnasium id with a Discrete action space (rendered with
            ``render_mode="rgb_array"``; headless for CartPole with pygame-ce).
        seed: seeds the env reset and the action sampling (private generator).
        temperature: sampling temperature (> 0); ignored when ``greedy``.
        render: record frames (costs time and memory; ``False`` gives ``None``).
        greedy: act with ``argmax``.
        max_steps: optional cap on the steps played (default: the env's own limit).
        frame_stride: keep every ``frame_stride``-th frame (CartPole frames are
            400x600x3 bytes, 0.7 MB each: 360 MB for a 500-step episode at stride 1).

    Returns:
        dict with

        - ``"frames"``: ``(ceil(T / frame_stride), height, width, 3)`` uint8; frame
          ``j`` shows the state in which action ``j * frame_stride`` was chosen; or
          ``None`` if not ``render``;
        - ``"probs"``: ``(T, A)`` float32, ``pi(.|s_t)`` at ``temperature``;
        - ``"actions"``: ``(T,)`` int64;
        - ``"rewards"``: ``(T,)`` float32;
        - ``"return"``: float, the undiscounted return.

    Raises:
        ValueError: for a non-Discrete action space (naming it), a bad ``temperature``
            (one so small that the probabilities overflow included), ``seed``,
            ``max_steps`` or ``frame_stride``, or a policy that does not fit the env.
        ArgumentTypeError (a TypeError and a ValueError): ``policy`` not a policy, a
            count that is not an int, a non-bool ``render``/``greedy``.
    """
    checks.nonnegative_int("seed", seed)
    checks.positive_int("frame_stride", frame_stride)
    for name, flag in (("render", render), ("greedy", greedy)):
        if not isinstance(flag, bool):
            raise checks.ArgumentTypeError(f"{name} must be a bool, got {flag!r}")
    _check_policy_type(policy)
    if max_steps is not None:
        checks.positive_int("max_steps", max_steps)
    if not greedy:
        temperature = checks.temperature(temperature)
    env = gym.make(env_id, render_mode="rgb_array" if render else None)
    try:
        _check_discrete_env(env_id, env.action_space, env.observation_space)
        _check_policy_fits(env_id, policy, env.action_space, env.observation_space)
        device = next(policy.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(seed))
        obs, _ = env.reset(seed=int(seed))
        frames, probs, actions, rewards = [], [], [], []
        for t in itertools.count():
            if max_steps is not None and t >= max_steps:
                break
            if render and t % frame_stride == 0:
                frames.append(np.asarray(env.render(), dtype=np.uint8))
            logits = policy.logits(torch.as_tensor(obs, device=device))
            p = torch.softmax(logits / (1.0 if greedy else temperature), dim=-1)
            if not bool(torch.isfinite(p).all()) and bool(torch.isfinite(logits).all()):
                raise ValueError(
                    f"temperature={temperature!r} is so small that logits / temperature overflow and the "
                    f"action probabilities are NaN; use greedy=True for the temperature -> 0 limit"
                )
            a = int(logits.argmax()) if greedy else int(torch.multinomial(p, 1, generator=gen))
            obs, reward, terminated, truncated, _ = env.step(a)
            probs.append(p.cpu().numpy())
            actions.append(a)
            rewards.append(float(reward))
            if terminated or truncated:
                break
    finally:
        env.close()
    return {
        "frames": np.stack(frames) if render and frames else None,
        "probs": np.asarray(probs, dtype=np.float32).reshape(-1, policy.num_actions),
        "actions": np.asarray(actions, dtype=np.int64),
        "rewards": np.asarray(rewards, dtype=np.float32),
        "return": float(np.sum(rewards)),
    }


