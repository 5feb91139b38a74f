"""Chapter 5: advantage actor-critic (A2C with GAE) on vectorized environments, and PPO's clip.

Reads top to bottom, CleanRL style: roll the current policy ``n_steps`` forward in
``num_envs`` environments that never stop (SAME_STEP autoreset), score each step
with :func:`gae` using the critic, take one (A2C) or several clipped (PPO) gradient
steps on ``policy loss + value_coef * value loss - entropy_coef * entropy``.
Everything around the loop (validation, the divergence guard, checkpoints that
resume bit-identically, tqdm) is :mod:`course_lib.training`.

Truncation versus termination: when a time limit cuts an episode the critic's
target bootstraps from the value of the *final* observation
(``info["final_obs"]``); only a terminal state has value 0.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib import checks
from course_lib._runtime import seed_everything
from course_lib.rl._snapshots import take_snapshots
from course_lib.rl.advantage import gae
from course_lib.rl.envs import env_snapshot, make_vec_env, restore_env_snapshot  # re-exported here as before
from course_lib.rl.policy_gradient import CategoricalPolicy, ValueNetwork
from course_lib.training import RunOptions, TrainingRun

__all__ = ["SharedValueHead", "ActorCriticConfig", "train_actor_critic", "env_snapshot", "restore_env_snapshot"]


class SharedValueHead(nn.Module):
    """A critic that shares the policy's hidden layers: ``V(s) = w^T h(s) + c``.

    ``h`` is the policy MLP without its last (logits) layer, so the actor and the
    critic are trained through the same features (the "shared network" design).

    Args:
        policy: a :class:`CategoricalPolicy` with at least one hidden layer.

    Shapes:
        ``obs``: ``(B, obs_dim)`` -> ``(B,)``.

    Raises:
        ValueError: if the policy has no hidden layer (nothing to share).

    References:
        Mnih et al. (2016), section 5.1 (one network with a softmax and a linear
        value output); CS182 notes section 7.4 (shared or separate networks).
    """

    def __init__(self, policy: CategoricalPolicy):
        super().__init__()
        if not isinstance(policy, CategoricalPolicy):
            raise checks.ArgumentTypeError(f"policy must be a CategoricalPolicy, got {type(policy).__name__}")
        if not policy.hidden_sizes:
            raise ValueError("policy must have at least one hidden layer to share, got hidden_sizes=()")
        self.policy = policy
        self.head = nn.Linear(policy.hidden_sizes[-1], 1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.policy.net[:-1](self.policy._as_obs(obs))
        return self.head(features).squeeze(-1)


@dataclass(frozen=True)
class ActorCriticConfig(RunOptions):
    """Hyperparameters of :func:`train_actor_critic`.

    The defaults are a plain A2C that learns CartPole-v1 but slowly (3 of 5 seeds
    passed the benchmark's 475 bar within 100,000 steps, at about 80,000); the
    benchmark's A2C, ``n_steps=8, learning_rate=0.003``, passed in 5 of 5 (median
    72,448 steps). For a fast solve use the PPO settings of
    ``benchmarks/policy_gradient_cartpole.py`` (``clip_range=0.2, n_epochs=10,
    num_minibatches=4, n_steps=64, gamma=0.99, gae_lambda=0.9,
    learning_rate=0.003``: median 19,968 steps). These figures come from the
    tuning runs on seeds 0-4 under the benchmark's old protocol
    (``benchmarks/HISTORY.md``); the current held-out results are in
    ``benchmarks/RESULTS.md``.

    The policy loss weights each step by its advantage without the ``gamma^t`` of
    the exact discounted gradient, as deep-RL code usually does, so the update is
    in general not the gradient of any function (Nota & Thomas 2020; Chapter 5, section 5.1).

    ``clip_range=None, n_epochs=1, num_minibatches=1`` is A2C (Mnih et al. 2016,
    synchronous); a ``clip_range`` makes the policy loss PPO's clipped surrogate,
    usually with several epochs of minibatches over each rollout.

    Raises:
        ValueError: from ``__post_init__`` for any field outside its range (the
            message names the field), and a ``num_minibatches`` that does not divide
            ``num_envs * n_steps``.
        checks.ArgumentTypeError (a TypeError and a ValueError): a field of the wrong
            kind (``shared="yes"``, ``n_steps=2.5``).
    """

    env_id: str = "CartPole-v1"
    """gymnasium id with a Discrete action space and flat Box observations."""
    num_envs: int = 8
    """parallel environments (a ``make_vec`` "sync" vector env, SAME_STEP autoreset)."""
    n_steps: int = 32
    """steps per environment per rollout; a rollout holds ``num_envs * n_steps`` transitions."""
    total_steps: int = 100_000
    """training budget in environment steps (stops at the first update past it)."""
    learning_rate: float = 0.01
    """Adam step size (actor and critic share one optimizer)."""
    gamma: float = 0.99
    """discount of the advantages and the critic's targets."""
    gae_lambda: float = 0.95
    """GAE lambda: 0 is the TD error, 1 the Monte Carlo advantage."""
    hidden_sizes: tuple[int, ...] = (64,)
    """hidden widths of the policy MLP (and of the critic MLP when not shared)."""
    shared: bool = False
    """the critic is a linear head on the policy's last hidden layer (:class:`SharedValueHead`)."""
    value_coef: float = 0.5
    """weight of the critic's squared error in the joint loss."""
    entropy_coef: float = 0.0
    """weight of the policy-entropy bonus."""
    max_grad_norm: float | None = 0.5
    """clip the global gradient norm (``None``: no clipping)."""
    normalize_advantages: bool = True
    """standardize the advantages over each minibatch (a per-batch step size)."""
    clip_range: float | None = None
    """PPO's ``epsilon``; ``None`` for A2C's plain policy gradient."""
    n_epochs: int = 1
    """passes over each rollout (PPO); 1 for A2C."""
    num_minibatches: int = 1
    """minibatches per epoch; 1 for A2C. It must divide ``num_envs * n_steps``, so that every
    epoch uses every transition of the rollout once."""
    return_window: int = 20
    """``mean_return`` averages the last this-many completed episodes."""
    seed: int = 0
    """seeds torch/numpy/python and the first env reset."""
    device: str = "cpu"
    """torch device of the networks; tiny MLPs are fastest on the CPU."""
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)
    checkpoint_fractions: tuple[float, ...] = ()
    """keep copies of the weights once ``env_steps >= f * total_steps`` (in ``history["checkpoints"]``)."""
    checkpoint_every: int = 10
    """with a ``checkpoint_path``: write the resumable checkpoint every this many updates (and at the end).
    How often never changes the run, so it may differ between a checkpoint and its resume."""

    def __post_init__(self):
        super().__post_init__()

        def keep(name, value):  # store the checked value: Python numbers, not NumPy scalars
            object.__setattr__(self, name, value)

        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty str, got {self.env_id!r}")
        keep("env_id", str(self.env_id))
        for name in ("num_envs", "n_steps", "total_steps", "n_epochs", "num_minibatches", "return_window",
                     "checkpoint_every"):
            keep(name, checks.positive_int(name, getattr(self, name)))
        keep("learning_rate", checks.positive_float("learning_rate", self.learning_rate))
        keep("gamma", checks.unit_interval("gamma", self.gamma))
        keep("gae_lambda", checks.unit_interval("gae_lambda", self.gae_lambda))
        keep("hidden_sizes", checks.int_sizes("hidden_sizes", self.hidden_sizes))
        for name in ("shared", "normalize_advantages"):
            value = getattr(self, name)
            if not isinstance(value, (bool, np.bool_)):
                raise checks.ArgumentTypeError(f"{name} must be a bool, got {value!r}")
            keep(name, bool(value))
        if self.shared and not self.hidden_sizes:
            raise ValueError("shared=True needs at least one hidden layer in hidden_sizes, got ()")
        keep("value_coef", checks.nonnegative_float("value_coef", self.value_coef))
        keep("entropy_coef", checks.nonnegative_float("entropy_coef", self.entropy_coef))
        for name in ("max_grad_norm", "clip_range"):
            if getattr(self, name) is not None:
                keep(name, checks.positive_float(name, getattr(self, name)))
        batch_size = self.num_envs * self.n_steps
        if batch_size % self.num_minibatches:
            divisors = [d for d in range(1, min(batch_size, 64) + 1) if batch_size % d == 0]
            raise ValueError(
                f"num_minibatches must divide the batch size num_envs * n_steps = {self.num_envs} * {self.n_steps} "
                f"= {batch_size}, so that every epoch uses every transition; got {self.num_minibatches} "
                f"(divisors of {batch_size}: {divisors}{', ...' if batch_size > 64 else ''})"
            )
        keep("seed", checks.nonnegative_int("seed", self.seed))
        checks.device("device", self.device)
        keep("device", str(self.device))
        keep("checkpoint_fractions", checks.fractions("checkpoint_fractions", self.checkpoint_fractions))

    @property
    def algorithm(self) -> str:
        """``"A2C"`` or ``"PPO"`` (with a ``clip_range``)."""
        return "A2C" if self.clip_range is None else "PPO"


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


def _log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log pi(a_i|s_i)`` ``(B,)`` and the mean entropy (nats, a scalar) from logits ``(B, A)``.

    What ``Categorical(logits=...)`` gives, in three tensor ops instead of a
    distribution object per minibatch (the object's overhead is a sizeable part of
    a tiny-MLP update).
    """
    log_pi = torch.log_softmax(logits, dim=-1)  # (B, A)
    log_probs = log_pi.gather(1, actions[:, None]).squeeze(1)  # (B,)
    entropy = -(log_pi.exp() * log_pi).sum(-1).mean()
    return log_probs, entropy


def train_actor_critic(
    config: ActorCriticConfig,
    *,
    callback: Callable[[CategoricalPolicy, dict], bool | None] | None = None,
) -> tuple[CategoricalPolicy, nn.Module, dict]:
    """Train a policy and a critic with A2C (or PPO's clipped loss) and GAE.

    Each update:

    1. roll ``n_steps`` in each of ``num_envs`` environments with the current
       policy; for a step that ends an episode, remember the final observation;
    2. ``V(s_t)`` and ``V(s_{t+1})`` from the critic, advantages with
       :func:`gae` (bootstrap on truncation, not on termination), critic targets
       ``A_t + V(s_t)``;
    3. gradient step(s) on ``-mean(log pi(a|s) A) + value_coef * mean((V - target)^2)
       - entropy_coef * entropy`` (PPO: ``-mean(min(rho A, clip(rho) A))``).

    Args:
        config: an :class:`ActorCriticConfig`.
        callback: optional ``callback(policy, history)`` after each update; if it
            returns ``True`` training stops (``history["stop_reason"] = "callback"``).
            Used by the benchmark to stop when solved.

    With ``config.checkpoint_path`` the resumable checkpoint is written every
    ``config.checkpoint_every`` updates and when the loop ends (also by an error at
    an update boundary, Ctrl-C or the time budget); a run killed in between resumes
    from the last one to the same weights and history as a run never stopped.

    Returns:
        ``(policy, value_network, history)``: the :class:`CategoricalPolicy` and the
        critic (a :class:`ValueNetwork`, or a :class:`SharedValueHead` when
        ``config.shared``), both in eval mode; ``history``, one entry per update:

        - ``"env_steps"``: cumulative environment steps used for training (int);
        - ``"wall_time"``: seconds of training so far (float, summed over resumes);
        - ``"mean_return"``: mean *undiscounted* return of the last
          ``return_window`` completed episodes (NaN before the first one ends);
        - ``"num_episodes"``: episodes completed during the update;
        - ``"simulated_steps"``: equal to ``env_steps`` (nothing is discarded);
        - ``"value_loss"``, ``"entropy"`` (nats), ``"explained_variance"`` of the
          critic on the rollout (``1 - Var[target - V] / Var[target]``);
        - ``"checkpoints"``: ``{"fraction", "env_steps", "policy", "value"}`` dicts
          of state dicts, one per ``config.checkpoint_fractions`` entry;
        - ``"stop_reason"``: ``"completed"``, ``"time_budget"``, ``"callback"`` or
          ``"interrupted"``.

    Raises:
        ValueError: for a config of another type, or an environment without a
            Discrete action space (naming the space).
        course_lib.training.TrainingDiverged: for a non-finite loss, gradient or
            parameter.
        course_lib.training.CheckpointError: for a checkpoint written with another config,
            a damaged checkpoint file, or a ``checkpoint_path`` that cannot be written
            (raised before training).

    References:
        Mnih et al. (2016), Algorithm S3 (A3C, here synchronous: A2C); Schulman et
        al. (2016), eq. 16 (GAE); Schulman et al. (2017), eq. 7 (the clipped
        surrogate); Sutton & Barto (2018), section 13.5; CS182 notes section 7.4
        (batch actor-critic with parallel workers).
    """
    if not isinstance(config, ActorCriticConfig):
        raise checks.ArgumentTypeError(f"config must be an ActorCriticConfig, got {type(config).__name__}")
    device = torch.device(config.device)
    envs = make_vec_env(config.env_id, config.num_envs)
    seed_everything(config.seed)
    obs_dim = envs.single_observation_space.shape[0]
    policy = CategoricalPolicy(obs_dim, int(envs.single_action_space.n), config.hidden_sizes).to(device)
    value = (SharedValueHead(policy) if config.shared else ValueNetwork(obs_dim, config.hidden_sizes)).to(device)
    model = nn.ModuleDict({"policy": policy, "value": value})
    # fused Adam: one kernel for all parameters instead of a loop over tensors (a
    # third of the time of a tiny-MLP update)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=device.type in ("cpu", "cuda"))
    obs, _ = envs.reset(seed=config.seed)

    keys = ("env_steps", "wall_time", "mean_return", "num_episodes", "simulated_steps",
            "value_loss", "entropy", "explained_variance")
    N, T = config.num_envs, config.n_steps
    batch_size = N * T
    minibatch = batch_size // config.num_minibatches
    run = TrainingRun(
        config, model=model, optimizer=optimizer,
        generators={f"env{i}": env.unwrapped.np_random for i, env in enumerate(envs.envs)},
        history_keys=keys,
        allow_changed=("checkpoint_every",),  # how often the file is written never changes the run
        total=config.total_steps, desc=config.algorithm,
    )
    state = run.restore(default={
        "env_steps": 0, "obs": torch.from_numpy(np.asarray(obs, dtype=np.float32)),
        "env": env_snapshot(envs), "ep_return": torch.zeros(N, dtype=torch.float64),
        "recent_returns": [], "checkpoints": [],
    })
    restore_env_snapshot(envs, state["env"])
    obs = state["obs"].numpy().copy()
    ep_return = state["ep_return"].numpy().copy()
    recent = list(state["recent_returns"])
    fractions = config.checkpoint_fractions

    def checkpoint_due(saved: list, env_steps: int, force: bool = False) -> None:
        take_snapshots(saved, {"policy": policy, "value": value}, fractions, len(saved), env_steps,
                       config.total_steps, force)

    checkpoint_due(state["checkpoints"], state["env_steps"])
    try:
        with run:
            while state["env_steps"] < config.total_steps:
                # 1. rollout: n_steps in every env; buffers are (T, N, ...)
                obs_buf = np.zeros((T, N, obs_dim), dtype=np.float32)
                next_obs_buf = np.zeros((T, N, obs_dim), dtype=np.float32)
                act_buf = np.zeros((T, N), dtype=np.int64)
                rew_buf = np.zeros((T, N), dtype=np.float32)
                term_buf = np.zeros((T, N), dtype=bool)
                end_buf = np.zeros((T, N), dtype=bool)
                finished = []
                for t in range(T):
                    actions = policy.act(torch.as_tensor(obs, device=device)).cpu().numpy()
                    next_obs, reward, terminated, truncated, info = envs.step(actions)
                    done = terminated | truncated
                    obs_buf[t], act_buf[t], rew_buf[t] = obs, actions, reward
                    term_buf[t], end_buf[t] = terminated, done
                    next_obs_buf[t] = next_obs
                    if done.any():  # SAME_STEP autoreset: next_obs is the next episode's start
                        final = np.stack(info["final_obs"][done])
                        next_obs_buf[t][done] = final
                    ep_return += reward
                    finished.extend(ep_return[done].tolist())
                    ep_return[done] = 0.0
                    obs = next_obs

                # 2. advantages with the critic (no gradient): rows are envs, time on the last axis
                o = torch.as_tensor(obs_buf, device=device).reshape(batch_size, obs_dim)
                a = torch.as_tensor(act_buf, device=device).reshape(batch_size)
                with torch.no_grad():
                    v = value(o).reshape(T, N)
                    nv = value(torch.as_tensor(next_obs_buf, device=device).reshape(batch_size, obs_dim)).reshape(T, N)
                    old_log_probs, _ = _log_prob_and_entropy(policy.logits(o), a)
                adv = gae(torch.as_tensor(rew_buf).T, v.T.cpu(), nv.T.cpu(), torch.as_tensor(term_buf).T,
                          torch.as_tensor(end_buf).T, config.gamma, config.gae_lambda).T.reshape(batch_size)
                adv = adv.to(device=device, dtype=v.dtype)
                targets = adv + v.reshape(batch_size)

                # 3. gradient step(s) on the joint loss
                rollout = (o, a, adv, old_log_probs, targets)
                for _ in range(config.n_epochs):
                    if config.num_minibatches > 1:  # shuffle once per epoch; minibatches are then cheap slices
                        order = torch.randperm(batch_size)
                        shuffled = tuple(t[order] for t in rollout)
                    else:
                        shuffled = rollout
                    for start in range(0, batch_size - minibatch + 1, minibatch):
                        o_mb, a_mb, mb_adv, old_mb, target_mb = (t[start:start + minibatch] for t in shuffled)
                        log_probs, entropy = _log_prob_and_entropy(policy.logits(o_mb), a_mb)
                        if config.normalize_advantages and minibatch > 1:
                            mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                        if config.clip_range is None:
                            policy_loss = -(log_probs * mb_adv).mean()
                        else:
                            ratio = (log_probs - old_mb).exp()
                            clipped = ratio.clamp(1 - config.clip_range, 1 + config.clip_range)
                            policy_loss = -torch.min(ratio * mb_adv, clipped * mb_adv).mean()
                        value_loss = (value(o_mb) - target_mb).pow(2).mean()
                        loss = policy_loss + config.value_coef * value_loss
                        if config.entropy_coef > 0:  # a zero-weight term would still cost its backward pass
                            loss = loss - config.entropy_coef * entropy
                        run.optimize(loss, inputs=o, clip_grad_norm=config.max_grad_norm)

                # bookkeeping: every loop-carried variable goes into `state`
                recent = (recent + finished)[-config.return_window:]
                state["env_steps"] += batch_size
                explained = 1.0 - float((targets - v.reshape(batch_size)).var() / (targets.var() + 1e-12))
                run.log(
                    env_steps=state["env_steps"], wall_time=run.seconds,
                    mean_return=float(np.mean(recent)) if recent else float("nan"),
                    num_episodes=len(finished), simulated_steps=state["env_steps"],
                    value_loss=float(value_loss.detach()), entropy=float(entropy.detach()), explained_variance=explained,
                )
                checkpoint_due(state["checkpoints"], state["env_steps"])
                state.update(obs=torch.from_numpy(obs.copy()), env=env_snapshot(envs),
                             ep_return=torch.from_numpy(ep_return.copy()), recent_returns=list(recent))
                bar_advance = max(0, min(batch_size, config.total_steps - state["env_steps"] + batch_size))
                if run.end_step(state, advance=bar_advance, mean_return=run.history["mean_return"][-1]):
                    break
                if config.checkpoint_path and run.step % config.checkpoint_every == 0 \
                        and state["env_steps"] < config.total_steps:  # the last one is written after the loop
                    run.save(state)
                if callback is not None and callback(policy, run.history):
                    run.stop("callback")
                    break
            run.save(state)
    finally:
        envs.close()
    history = run.finish()
    # fractions not reached (stopped early) get the final weights; kept out of the saved state
    history["checkpoints"] = list(state["checkpoints"])
    checkpoint_due(history["checkpoints"], state["env_steps"], force=True)
    return policy.eval(), value.eval(), history
