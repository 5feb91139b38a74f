"""Fully fitted Q-iteration (Chapter 6): batch (offline) RL on a fixed dataset of transitions.

Part of :mod:`course_lib.rl.value_based`, which imports every name here
(``rl.value_based.fitted_q_iteration`` and ``rl.fitted_q_iteration`` are these).

==============================  =====================================================
piece                           what it is
==============================  =====================================================
:func:`collect_transitions`     a fixed dataset from a uniform-random (or
                                epsilon-greedy) policy
:class:`FittedQConfig`          the regressor (extra-trees, MLP, linear) and its settings
:class:`FittedQFunction`        ``Q(s, .)``: ``(B, D) -> (B, A)``
:func:`fitted_q_iteration`      the iteration, through :class:`course_lib.training.TrainingRun`
:func:`evaluate_q_function`     undiscounted returns of the greedy policy
==============================  =====================================================

Shapes: ``B`` a batch of states, ``A`` actions, ``N`` transitions in a dataset, ``D``
observation size. Returns are *undiscounted* episode returns; Q-values are expected
*discounted* returns.

References:
    D. Ernst, P. Geurts and L. Wehenkel, "Tree-based batch mode reinforcement learning",
    JMLR 6, 2005 (fitted Q-iteration, section 3; extra-trees, section 4).
    M. Riedmiller, "Neural fitted Q iteration", ECML 2005 (NFQ, Rprop).
    CS182 notes Algorithm 18.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from course_lib import checks
from course_lib.nets import mlp
from course_lib.training import RunOptions, TrainingRun

# value_based imports this module at its end, once these two are defined (a cycle that
# holds because value_based, not course_lib.rl's __init__, is what imports this module)
from course_lib.rl.value_based import _set_checked, epsilon_greedy

__all__ = [
    "collect_transitions",
    "FittedQConfig",
    "FittedQFunction",
    "fitted_q_iteration",
    "evaluate_q_function",
]



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
                      allow_changed=allow_changed,
                      total=config.iterations, desc=f"fitted Q-iteration ({config.regressor})",
                      unit="iteration")
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
