"""Chapter 4 (and the baselines of Chapter 5): the REINFORCE training loop.

Batched REINFORCE with reward-to-go on vectorized gymnasium envs. The loop reads
top to bottom: collect complete episodes, turn the reward-to-go into weights
(a baseline), one Adam step on the surrogate loss, and, with a learned baseline,
a few regression steps of the value network. Everything around the loop
(validation, divergence guard, checkpoint/resume, Ctrl-C, progress bar) is
:class:`course_lib.training.TrainingRun`.

=====================  ==========================================================
``baseline``           weights ``w_t`` of :func:`~course_lib.rl.reinforce_loss`
=====================  ==========================================================
``"none"``             ``G_t`` (Williams 1992, eq. 9 with reward-to-go)
``"mean"``             ``G_t - mean(G)`` (a constant baseline, the batch mean)
``"standardize"``      ``(G_t - mean(G)) / (std(G) + 1e-8)`` (Chapter 4's default)
``"value"``            ``G_t - V_w(s_t)``, ``V_w`` fitted to ``G_t`` by Monte Carlo
                       regression (Sutton & Barto 2018, §13.4, the
                       "REINFORCE with Baseline" box)
=====================  ==========================================================

Symbols: ``G_t`` discounted reward-to-go, ``V_w`` the :class:`ValueNetwork`,
``M`` transitions in a batch; see :mod:`course_lib.rl` for the rest.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from course_lib import checks
from course_lib._runtime import seed_everything
from course_lib.rl._snapshots import end_update, take_snapshots
from course_lib.rl.envs import collect_batch, env_generators, make_vec_env
from course_lib.rl.policy_gradient import CategoricalPolicy, ValueNetwork, reinforce_loss
from course_lib.training import RunOptions, TrainingDiverged, TrainingRun

__all__ = ["ReinforceConfig", "train_reinforce", "BASELINES"]

#: The choices of ``ReinforceConfig.baseline``.
BASELINES = ("none", "mean", "standardize", "value")


# --------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReinforceConfig(RunOptions):
    """Hyperparameters of :func:`train_reinforce` (defaults tuned on CartPole-v1).

    With the defaults, REINFORCE solves CartPole-v1 (mean undiscounted return >= 475
    over 100 episodes with *sampled* actions) in a median of about 30,000
    environment steps (every one of 24 seeds tried in under 85,000); see
    ``benchmarks/reinforce_cartpole.py``. What mattered in tuning, on 8-16 seeds:

    - many small updates: ``batch_size=1000`` beat 2000 (about 1.5x fewer steps)
      at the same learning rate. The batch holds complete episodes, so once
      episodes last 500 steps it grows to ``num_envs * 500`` on its own;
    - a large Adam step, ``learning_rate=0.05`` (0.01 needed 3-5x more steps; 0.03
      about 1.3x more; in runs continued to 200,000 steps, 0.03 and 0.05 wobbled
      after solving about equally often);
    - ``baseline="standardize"``; ``gamma`` between 0.99 and 1 made little
      difference (within about 20%), 0.98 was about 1.3x slower;
    - a small net, one hidden layer of 32 tanh units: 64x64 (learning rates
      0.003-0.01) and 64 units (0.02) were no faster than the best 32-unit
      setting, and three of those five settings left one seed unsolved after
      200,000 steps;
    - ``num_envs=8``: 16 took about 1.4x more steps (larger, later-ending batches).

    Like any vanilla policy gradient, the return curve can dip after solving; the
    final policy of a long run is not always the best one seen.

    Raises:
        ValueError: from ``__post_init__`` for any field outside its documented
            range, naming the field (a bool where a number belongs, ``2.5`` for a
            count, a non-finite learning rate, ``gamma`` outside [0, 1], an unknown
            ``baseline`` or device, ``"cuda"`` without CUDA).
    """

    env_id: str = "CartPole-v1"
    """gymnasium id of an environment with a Discrete action space and Box observations."""
    num_envs: int = 8
    """parallel environments in the ``make_vec`` ("sync") vector env."""
    batch_size: int = 1000
    """least number of environment steps (transitions of complete episodes) per update;
    ``batch_size // num_envs`` steps per env before the envs finish their episodes."""
    total_steps: int = 100_000
    """training budget in environment steps; training stops at the first update past it."""
    learning_rate: float = 0.05
    """Adam step size of the policy."""
    gamma: float = 0.99
    """discount in the reward-to-go weights; a variance-reduction device: the reported
    ``mean_return`` is always the undiscounted return."""
    hidden_sizes: tuple[int, ...] = (32,)
    """widths of the policy MLP's hidden layers (tanh)."""
    normalize_returns: bool = True
    """deprecated alias kept for Chapter 4: ``True`` is ``baseline="standardize"``,
    ``False`` (with the default ``baseline``) is ``baseline="none"``. After
    construction it always equals ``baseline == "standardize"``."""
    seed: int = 0
    """seeds torch/numpy/python (:func:`seed_everything`) and the first env reset."""
    device: str = "cpu"
    """torch device of the policy; tiny MLPs are fastest on the CPU."""
    checkpoint_fractions: tuple[float, ...] = ()
    """keep in-memory policy ``state_dict`` snapshots once ``env_steps >= f * total_steps``
    for each ``f`` (strictly increasing, in [0, 1]); see :func:`train_reinforce`."""
    baseline: str = "standardize"
    """how the reward-to-go becomes the weights: one of :data:`BASELINES` (table in
    :mod:`course_lib.rl.reinforce`)."""
    value_learning_rate: float = 0.01
    """Adam step size of the value network (``baseline="value"`` only)."""
    value_hidden_sizes: tuple[int, ...] = (64,)
    """hidden widths of the value network (``baseline="value"`` only)."""
    value_iterations: int = 25
    """full-batch regression steps of the value network per update (``baseline="value"`` only)."""
    checkpoint_every: int = 10
    """write the checkpoint file every this many updates (and at the end, on Ctrl-C
    and on an exception)."""
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty str, got {self.env_id!r}")
        checks.positive_int("num_envs", self.num_envs)
        checks.positive_int("batch_size", self.batch_size)
        checks.positive_int("total_steps", self.total_steps)
        checks.positive_float("learning_rate", self.learning_rate)
        checks.unit_interval("gamma", self.gamma)
        object.__setattr__(self, "hidden_sizes", checks.int_sizes("hidden_sizes", self.hidden_sizes, min_len=0))
        if not isinstance(self.normalize_returns, bool):
            raise checks.ArgumentTypeError(f"normalize_returns must be a bool, got {self.normalize_returns!r}")
        checks.nonnegative_int("seed", self.seed)
        checks.device("device", self.device)
        object.__setattr__(
            self, "checkpoint_fractions", checks.fractions("checkpoint_fractions", self.checkpoint_fractions)
        )
        checks.one_of("baseline", self.baseline, BASELINES)
        if not self.normalize_returns and self.baseline == "standardize":
            warnings.warn(
                "ReinforceConfig(normalize_returns=False) is deprecated; use baseline='none'",
                DeprecationWarning,
                stacklevel=3,
            )
            object.__setattr__(self, "baseline", "none")
        object.__setattr__(self, "normalize_returns", self.baseline == "standardize")
        checks.positive_float("value_learning_rate", self.value_learning_rate)
        object.__setattr__(
            self, "value_hidden_sizes", checks.int_sizes("value_hidden_sizes", self.value_hidden_sizes)
        )
        checks.positive_int("value_iterations", self.value_iterations)
        checks.positive_int("checkpoint_every", self.checkpoint_every)


# --------------------------------------------------------------------------------------
# Pieces of the loop
# --------------------------------------------------------------------------------------


def _check_not_saturated(dist, run: TrainingRun, learning_rate: float) -> None:
    """Stop when every action probability in the batch is exactly 0 or 1.

    Then ``grad log pi`` is exactly zero on every sample: the policy can never move
    again, and training would go on silently with a dead policy (what a huge
    learning rate such as ``1e6`` does after one step). A healthy softmax policy
    never gets there: it needs logit gaps above about 100 in every state visited.
    """
    probs = dist.probs.detach()
    if bool(((probs == 0) | (probs == 1)).all()):
        raise TrainingDiverged(
            run.step,
            "policy",
            f"an update was far too large: lower the learning rate (it is {learning_rate})",
            detail=" (every action probability in the batch is exactly 0 or 1, so the policy gradient is "
            "exactly zero and training can never recover)",
            problem="is saturated",
        )


def _weights(returns: torch.Tensor, baseline: str, values: torch.Tensor | None) -> torch.Tensor:
    """The weights ``w_t`` of the surrogate loss from the reward-to-go ``G_t``: ``(M,)``."""
    if baseline == "standardize":
        return (returns - returns.mean()) / (returns.std() + 1e-8)
    if baseline == "mean":
        return returns - returns.mean()
    if baseline == "value":
        return returns - values
    return returns


# --------------------------------------------------------------------------------------
# REINFORCE training
# --------------------------------------------------------------------------------------


def train_reinforce(
    config: ReinforceConfig,
    *,
    callback: Callable[[CategoricalPolicy, dict], bool | None] | None = None,
    allow_changed: tuple[str, ...] = (),
) -> tuple[CategoricalPolicy, dict]:
    """Train a :class:`CategoricalPolicy` with batched REINFORCE (reward-to-go).

    Each update (Williams 1992; Sutton & Barto 2018, the REINFORCE box of §13.3,
    batched; the "REINFORCE with Baseline" box of §13.4 with ``baseline="value"``):

    1. collect ``>= batch_size`` transitions of complete episodes with the current
       policy in ``num_envs`` parallel envs (:func:`collect_batch`);
    2. weights ``w_t`` from the discounted reward-to-go ``G_t`` and the
       ``baseline`` (see :mod:`course_lib.rl.reinforce`);
    3. one guarded Adam step on :func:`reinforce_loss` of ``log pi(a_t|s_t)`` and ``w_t``;
    4. with ``baseline="value"``: ``value_iterations`` full-batch Adam steps on
       ``mean_t (V_w(s_t) - G_t)^2`` (Monte Carlo regression on the reward-to-go).

    The usual deep-RL practice is followed for discounting: the weights are ``G_t``,
    not ``gamma^t G_t``; the factor ``gamma^t`` of the exact discounted gradient (kept
    in :func:`reinforce_gradient_estimate`) is dropped, and ``gamma < 1`` serves as
    variance reduction for the undiscounted objective.

    **Checkpoint and resume.** With ``config.checkpoint_path`` set, the file holds the
    policy (and value network), the optimizer, the counters, the history, the
    global RNGs (the policy samples actions from torch's global generator) and
    every sub-environment's ``np_random``; a run interrupted at any update and
    resumed from it ends bit-identical (on CPU) to one that never stopped.

    Args:
        config: a :class:`ReinforceConfig`.
        callback: optional ``callback(policy, history)`` called after every update
            (after ``history`` got its entry, at a consistent point: an exception
            it raises leaves a resumable checkpoint); if it returns ``True``,
            training stops. Used by the benchmark to stop when solved. Its run time
            counts in ``wall_time`` of later updates.
        allow_changed: config fields that may differ from those of the checkpoint
            being resumed (beyond ``max_seconds``, ``progress``, ``checkpoint_path``,
            ``device``), e.g. ``("learning_rate",)`` to resume a diverged run from
            its last finite checkpoint with a lower learning rate.

    Returns:
        ``(policy, history)``. ``policy`` is in eval mode on ``config.device``.
        ``history`` is a dict of lists, one entry per update (plot
        ``history["env_steps"]`` against ``history["mean_return"]``):

        - ``"env_steps"``: cumulative environment steps used for training (kept
          transitions, int; what a sample-complexity axis means);
        - ``"wall_time"``: seconds of training so far (float, summed over resumes);
        - ``"mean_return"``: mean undiscounted return of the batch's episodes;
        - ``"num_episodes"``: episodes in the batch;
        - ``"simulated_steps"``: cumulative transitions simulated, including those
          discarded while an env waited for the others (>= ``env_steps``);
        - ``"value_loss"`` (``baseline="value"`` only): mean squared error of
          ``V_w`` on the batch's ``G_t`` *before* this update's regression;
        - ``"checkpoints"``: list of ``{"fraction", "env_steps", "state_dict"}`` dicts,
          one per ``config.checkpoint_fractions`` entry, in order. Fraction ``f`` is
          saved at the end of the first update with ``env_steps >= f * total_steps``
          (``0.0``: before any update); those not reached because training stopped
          early are saved with the final weights (their ``env_steps`` says so).
          Load one with ``policy.load_state_dict(ckpt["state_dict"])``;
        - ``"stop_reason"``: ``"completed"``, ``"callback"``, ``"time_budget"`` or
          ``"interrupted"`` (Ctrl-C: the partial history is returned);
        - ``"value_network"`` (``baseline="value"`` only): the trained
          :class:`ValueNetwork` (eval mode).

    Raises:
        ValueError: if ``config`` is not a :class:`ReinforceConfig`, or the
            environment's action space is not Discrete (the message names the
            space, e.g. ``Box(-2.0, 2.0, (1,), float32)``).
        TrainingDiverged: a non-finite loss, gradient or parameter, or a policy
            saturated to probabilities of exactly 0 and 1 (a far too large learning
            rate); the message names the update and the likely cause.
        CheckpointError: an unreadable checkpoint file, or one written with a
            different config (the message lists the fields).
        Any exception of ``callback``; it carries the partial history as
        ``err.history`` and, with ``checkpoint_path``, the checkpoint is on disk.
    """
    if not isinstance(config, ReinforceConfig):
        raise checks.ArgumentTypeError(f"config must be a ReinforceConfig, got {type(config).__name__}")
    device = checks.device("device", config.device)  # resolved once; everything below follows the policy
    envs = make_vec_env(config.env_id, config.num_envs)  # ValueError for continuous actions
    seed_everything(config.seed)
    obs_dim = envs.single_observation_space.shape[0]
    policy = CategoricalPolicy(obs_dim, int(envs.single_action_space.n), config.hidden_sizes).to(device)
    use_value = config.baseline == "value"
    if use_value:
        value_net = ValueNetwork(obs_dim, config.value_hidden_sizes).to(device)
        # one Adam, two parameter groups: a step on one loss leaves the other group alone
        # (its gradients are None), and one optimizer state is checkpointed
        optimizer = torch.optim.Adam(
            [{"params": policy.parameters()}, {"params": value_net.parameters(), "lr": config.value_learning_rate}],
            lr=config.learning_rate,
        )
    else:
        value_net = None
        optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)

    keys = ("env_steps", "wall_time", "mean_return", "num_episodes", "simulated_steps")
    run = TrainingRun(
        config,
        model=policy,
        optimizer=optimizer,
        generators=env_generators(envs),
        history_keys=keys + (("value_loss",) if use_value else ()),
        allow_changed=("checkpoint_every", *allow_changed),  # how often a file is written never changes the run
        total=config.total_steps,
        desc="REINFORCE",
        extra_modules={"value_network": value_net} if use_value else None,
    )
    run.history["checkpoints"] = []
    try:
        state = run.restore(default={"env_steps": 0, "simulated_steps": 0, "next_snapshot": 0})
        snapshots = run.history.setdefault("checkpoints", [])
        fractions = config.checkpoint_fractions
        state["next_snapshot"] = take_snapshots(
            snapshots, policy, fractions, state["next_snapshot"], state["env_steps"], config.total_steps
        )
        with run:
            while state["env_steps"] < config.total_steps:
                # 1. on-policy data: complete episodes from the current policy
                first = run.step == 0
                batch = collect_batch(envs, policy, config.batch_size, config.gamma, seed=config.seed if first else None)
                if first:  # a seeded reset made new env RNGs: checkpoint those from now on
                    run.generators.update(env_generators(envs))
                obs = torch.as_tensor(batch.obs, device=device)
                actions = torch.as_tensor(batch.actions, device=device)
                returns = torch.as_tensor(batch.weights_rtg, device=device)  # G_t, (M,)

                # 2. weights: reward-to-go minus a baseline
                values = None
                if use_value:
                    with torch.no_grad():
                        values = value_net(obs)  # V_w(s_t) before this update, (M,)
                weights = _weights(returns, config.baseline, values)

                # 3. one guarded gradient step on the surrogate loss
                dist = policy(obs)
                _check_not_saturated(dist, run, config.learning_rate)
                log_probs = dist.log_prob(actions)  # re-evaluated with grad, one batched pass
                run.optimize(reinforce_loss(log_probs, weights), inputs=[obs, weights])

                # 4. baseline="value": Monte Carlo regression of V_w on G_t
                log = {}
                if use_value:
                    log["value_loss"] = float(((values - returns) ** 2).mean())
                    for _ in range(config.value_iterations):
                        run.optimize(((value_net(obs) - returns) ** 2).mean(), inputs=[obs, returns])

                state["env_steps"] += batch.num_steps
                state["simulated_steps"] += batch.simulated_steps
                run.log(
                    env_steps=state["env_steps"],
                    wall_time=run.seconds,
                    mean_return=float(batch.episode_returns.mean()),
                    num_episodes=int(batch.episode_returns.size),
                    simulated_steps=state["simulated_steps"],
                    **log,
                )
                if end_update(run, state, policy=policy, snapshots=snapshots, fractions=fractions,
                              total_steps=config.total_steps, checkpoint_every=config.checkpoint_every,
                              steps_this_update=batch.num_steps, callback=callback):
                    break  # time budget, Ctrl-C, the step budget or the callback
            run.save(state)
    finally:
        envs.close()
    take_snapshots(snapshots, policy, fractions, state["next_snapshot"], state["env_steps"], config.total_steps, force=True)
    history = run.finish()
    if use_value:
        history["value_network"] = value_net.eval()
    return policy.eval(), history
