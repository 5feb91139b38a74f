"""Evolution strategies (Salimans et al. 2017) as a gradient-free contrast to REINFORCE (Chapter 4)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from course_lib import checks
from course_lib._runtime import seed_everything
from course_lib.rl.envs import make_vec_env
from course_lib.rl.policy_gradient import CategoricalPolicy
from course_lib.rl._snapshots import end_update, take_snapshots
from course_lib.training import RunOptions, TrainingRun

__all__ = ["centered_ranks", "es_gradient_estimate", "ESConfig", "train_es"]


# --------------------------------------------------------------------------------------
# Evolution strategies (Salimans et al. 2017)
# --------------------------------------------------------------------------------------


def centered_ranks(x) -> torch.Tensor:
    """Fitness shaping: replace values by their ranks, scaled to ``[-0.5, 0.5]``.

    ``out_i = rank(x_i) / (P - 1) - 0.5`` with ranks ``0..P-1``. Invariant to any
    increasing transform of the returns, and robust to outliers. Ties are broken by
    position, as in OpenAI's code: if every return is equal (e.g. every candidate
    falls over after 9 steps), the ES update is then a random direction rather than
    zero, which lets the search drift off such a plateau.

    Args:
        x: ``(P,)`` fitness values (tensor-like), ``P >= 2``.

    Returns:
        ``(P,)`` float tensor.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``x`` not an array of real numbers.
        ValueError: if ``x`` is not 1-D with at least two entries, or holds NaN or inf
            (a NaN return would otherwise be ranked as the best one).

    Source: Salimans et al. (2017), section 2.1 ("fitness shaping ... rank
    transformation"); ``compute_centered_ranks`` in openai/evolution-strategies-starter.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise checks.ArgumentTypeError(f"x must be a tensor-like array of numbers, got {type(x).__name__}")
    try:
        x = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as e:
        raise checks.ArgumentTypeError(f"x must be a tensor-like array of numbers: {e}") from None
    if x.dtype == torch.bool or x.is_complex():
        raise checks.ArgumentTypeError(f"x must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 1 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (P,) with P >= 2, got {tuple(x.shape)}")
    checks.finite("x", x)  # NaN would be ranked as the best candidate
    ranks = torch.empty(x.shape[0], dtype=torch.float64)
    ranks[torch.argsort(x, stable=True)] = torch.arange(x.shape[0], dtype=torch.float64)
    return ranks / (x.shape[0] - 1) - 0.5


def es_gradient_estimate(
    fitness_pos: torch.Tensor, fitness_neg: torch.Tensor, eps: torch.Tensor, sigma: float
) -> torch.Tensor:
    """Mirrored ES estimate of ``grad E_eps[F(theta + sigma eps)]``.

    ``g = 1 / (2 n sigma) * sum_i (F(theta + sigma eps_i) - F(theta - sigma eps_i)) eps_i``

    Args:
        fitness_pos: ``(n,)`` (shaped) fitness of ``theta + sigma eps_i``.
        fitness_neg: ``(n,)`` fitness of ``theta - sigma eps_i``.
        eps: ``(n, D)`` standard normal perturbations.
        sigma: noise standard deviation (> 0).

    Returns:
        ``(D,)`` tensor.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): an argument that is not a
            ``torch.Tensor`` (a numpy array), a non-float ``eps``, or a non-number ``sigma``.
        ValueError: for mismatched shapes, or ``sigma`` not positive and finite.

    Source: Salimans et al. (2017), Algorithm 1 (gradient step), with mirrored
    sampling (section 2.1, "antithetic sampling ... also known as mirrored sampling").
    """
    sigma = checks.positive_float("sigma", sigma)
    eps = checks.tensor("eps", eps)
    fitness_pos = checks.tensor("fitness_pos", fitness_pos)
    fitness_neg = checks.tensor("fitness_neg", fitness_neg)
    if not eps.is_floating_point():
        raise checks.ArgumentTypeError(f"eps must be a floating-point tensor, got dtype {eps.dtype}")
    if eps.ndim != 2 or fitness_pos.shape != (eps.shape[0],) or fitness_neg.shape != (eps.shape[0],):
        raise ValueError(
            f"expected fitness_pos, fitness_neg of shape (n,) and eps of shape (n, D), got "
            f"{tuple(fitness_pos.shape)}, {tuple(fitness_neg.shape)}, {tuple(eps.shape)}"
        )
    diff = (fitness_pos - fitness_neg).to(eps.dtype)
    return diff @ eps / (2 * eps.shape[0] * sigma)


@dataclass(frozen=True)
class ESConfig(RunOptions):
    """Hyperparameters of :func:`train_es` (OpenAI-ES on a :class:`CategoricalPolicy`).

    Raises:
        ValueError: from ``__post_init__`` for any field outside its documented range,
            naming the field (``sigma=inf`` or NaN included).
    """

    env_id: str = "CartPole-v1"
    """gymnasium id with a Discrete action space."""
    num_pairs: int = 16
    """mirrored pairs per generation; population ``P = 2 * num_pairs``, one episode each,
    all played at once in a ``P``-env vector env."""
    sigma: float = 0.1
    """standard deviation of the parameter perturbations."""
    learning_rate: float = 0.03
    """Adam step size applied to the ES gradient estimate (as in OpenAI's code)."""
    weight_decay: float = 0.005
    """L2 coefficient added to the (negated) gradient, as ``l2coeff`` in OpenAI's code."""
    total_steps: int = 300_000
    """budget in environment steps (sum of the candidates' episode lengths)."""
    hidden_sizes: tuple[int, ...] = (32,)
    """widths of the policy MLP's hidden layers."""
    centered_ranks: bool = True
    """fitness shaping with :func:`centered_ranks` (else raw returns)."""
    greedy_actions: bool = True
    """candidates act with ``argmax`` (deterministic policies, as in the paper). The
    returned policy is then a *deterministic* one: evaluate it with ``greedy=True``
    (its softmax at temperature 1 is not what was optimised and does much worse).
    ``False`` samples actions, which makes the fitness noisy and ES slower."""
    seed: int = 0
    """seeds torch/numpy/python and the per-generation env seeds."""
    device: str = "cpu"
    """torch device of the policy."""
    checkpoint_fractions: tuple[float, ...] = ()
    """same meaning as in :class:`ReinforceConfig`."""
    checkpoint_every: int = 10
    """write the checkpoint file every this many generations (and at the end)."""
    # max_seconds, checkpoint_path, resume, progress: the shared run fields (RunOptions)

    def __post_init__(self):
        super().__post_init__()
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id must be a non-empty str, got {self.env_id!r}")
        checks.positive_int("num_pairs", self.num_pairs)
        checks.positive_float("sigma", self.sigma)  # finite: sigma=inf would perturb to inf
        checks.positive_float("learning_rate", self.learning_rate)
        checks.nonnegative_float("weight_decay", self.weight_decay)
        checks.positive_int("total_steps", self.total_steps)
        object.__setattr__(self, "hidden_sizes", checks.int_sizes("hidden_sizes", self.hidden_sizes))
        for name in ("centered_ranks", "greedy_actions"):
            if not isinstance(getattr(self, name), bool):
                raise checks.ArgumentTypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        checks.nonnegative_int("seed", self.seed)
        checks.device("device", self.device)
        object.__setattr__(
            self, "checkpoint_fractions", checks.fractions("checkpoint_fractions", self.checkpoint_fractions)
        )
        checks.positive_int("checkpoint_every", self.checkpoint_every)


@torch.no_grad()
def _population_returns(
    envs: gym.vector.VectorEnv,
    policy: CategoricalPolicy,
    thetas: torch.Tensor,
    seeds: list[int],
    greedy: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """One episode per parameter vector, all at once. ``thetas``: ``(P, D)``.

    Returns ``(returns (P,), lengths (P,))``, undiscounted.
    """
    names = [n for n, _ in policy.net.named_parameters()]
    shapes = [p.shape for _, p in policy.net.named_parameters()]
    chunks = torch.split(thetas, [math.prod(s) for s in shapes], dim=1)
    params = {n: c.reshape(thetas.shape[0], *s) for n, c, s in zip(names, chunks, shapes)}
    # logits of candidate i on observation i: a vmapped functional call of the MLP
    batched = torch.func.vmap(lambda p, o: torch.func.functional_call(policy.net, p, (o,)))

    P = thetas.shape[0]
    obs, _ = envs.reset(seed=seeds)
    alive = np.ones(P, dtype=bool)
    returns = np.zeros(P)
    lengths = np.zeros(P, dtype=np.int64)
    while alive.any():
        logits = batched(params, torch.as_tensor(obs, dtype=thetas.dtype, device=thetas.device))
        if greedy:
            actions = logits.argmax(-1)
        else:
            actions = torch.multinomial(torch.softmax(logits, -1), 1).squeeze(1)
        obs, reward, terminated, truncated, _ = envs.step(actions.cpu().numpy())
        returns += reward * alive
        lengths += alive
        alive &= ~(terminated | truncated)  # later steps of a finished candidate are ignored
    return returns, lengths


def train_es(
    config: ESConfig,
    *,
    callback: Callable[[CategoricalPolicy, dict], bool | None] | None = None,
    allow_changed: tuple[str, ...] = (),
) -> tuple[CategoricalPolicy, dict]:
    """Train a :class:`CategoricalPolicy` with OpenAI evolution strategies.

    Each generation (Salimans et al. 2017, Algorithm 1, with the refinements of
    section 2.1 and of the OpenAI implementation):

    1. draw ``eps_1..eps_n ~ N(0, I_D)`` and evaluate ``F`` (one episode's undiscounted
       return) at the mirrored pairs ``theta +/- sigma eps_i``; both members of a pair
       start from the same initial state (common random numbers);
    2. shape the ``2n`` returns with :func:`centered_ranks` (optional);
    3. ``g = es_gradient_estimate(F+, F-, eps, sigma)`` and an Adam step on
       ``-g + weight_decay * theta``; the guard stops on a non-finite ``g`` or ``theta``.

    Everything around the loop (guard, checkpoint/resume, Ctrl-C, progress) is
    :class:`course_lib.training.TrainingRun`; the checkpoint holds ``theta``, Adam's
    state, the global RNGs (``eps``) and the generator of the per-pair env seeds, so a
    resumed run ends bit-identical (on CPU) to one that never stopped.

    Args:
        config: an :class:`ESConfig`.
        callback: as in :func:`train_reinforce`.
        allow_changed: as in :func:`train_reinforce`.

    With the defaults on CartPole-v1, the population's mean return passes 475 after
    roughly 150,000-260,000 environment steps (REINFORCE solves in about 30,000),
    but each generation is one batched pass over ``P`` envs with no backward pass.

    Returns:
        ``(policy, history)`` with ``history`` in the format of
        :func:`train_reinforce`, one entry per generation; here ``"mean_return"`` is
        the mean return of the perturbed candidates (not of ``theta`` itself, which
        usually does somewhat better), ``"num_episodes"`` is ``2 * num_pairs``, and
        ``"env_steps"`` counts the steps of the candidates' episodes. The extra key
        ``"max_return"`` holds the best candidate's return.

    Raises:
        ValueError: if ``config`` is not an :class:`ESConfig`, or the environment's
            action space is not Discrete (naming it).
        TrainingDiverged: a non-finite ES gradient or parameter vector (naming the
            generation and the likely cause).
        CheckpointError: as in :func:`train_reinforce`.

    Source: Salimans, Ho, Chen, Sidor & Sutskever (2017), "Evolution Strategies as a
    Scalable Alternative to Reinforcement Learning", Algorithm 1 and section 2.1
    (mirrored sampling, rank-based fitness shaping, weight decay).
    """
    if not isinstance(config, ESConfig):
        raise checks.ArgumentTypeError(f"config must be an ESConfig, got {type(config).__name__}")
    device = checks.device("device", config.device)
    P = 2 * config.num_pairs
    envs = make_vec_env(config.env_id, P)
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)  # the per-pair env seeds
    policy = CategoricalPolicy(
        envs.single_observation_space.shape[0], int(envs.single_action_space.n), config.hidden_sizes
    ).to(device)
    theta = nn.Parameter(nn.utils.parameters_to_vector(policy.net.parameters()).detach().clone())
    optimizer = torch.optim.Adam([theta], lr=config.learning_rate)

    run = TrainingRun(
        config,
        model=policy,
        optimizer=optimizer,
        generators={"pair_seeds": rng},
        history_keys=("env_steps", "wall_time", "mean_return", "max_return", "num_episodes", "simulated_steps"),
        allow_changed=("checkpoint_every", *allow_changed),  # how often a file is written never changes the run
        total=config.total_steps,
        desc="ES",
    )
    run.history["checkpoints"] = []
    try:
        state = run.restore(default={"env_steps": 0, "simulated_steps": 0, "next_snapshot": 0})
        with torch.no_grad():  # theta <- the (possibly restored) policy: they agree at every boundary
            theta.copy_(nn.utils.parameters_to_vector(policy.net.parameters()))
        snapshots = run.history.setdefault("checkpoints", [])
        fractions = config.checkpoint_fractions
        state["next_snapshot"] = take_snapshots(
            snapshots, policy, fractions, state["next_snapshot"], state["env_steps"], config.total_steps
        )
        with run:
            while state["env_steps"] < config.total_steps:
                # 1. mirrored perturbations, evaluated with common start states per pair
                eps = torch.randn(config.num_pairs, theta.numel(), dtype=theta.dtype, device=device)
                thetas = torch.cat([theta.detach() + config.sigma * eps, theta.detach() - config.sigma * eps])
                pair_seeds = rng.integers(0, 2**31 - 1, size=config.num_pairs).tolist()
                returns, lengths = _population_returns(
                    envs, policy, thetas, pair_seeds + pair_seeds, config.greedy_actions
                )

                # 2. fitness shaping over the whole population
                fitness = torch.as_tensor(returns, dtype=theta.dtype, device=device)
                if config.centered_ranks:
                    fitness = centered_ranks(fitness).to(theta.dtype)

                # 3. ascent on the ES gradient (Adam minimizes, hence the minus sign), guarded
                g = es_gradient_estimate(fitness[: config.num_pairs], fitness[config.num_pairs :], eps, config.sigma)
                run.check_finite("ES gradient estimate", g)
                optimizer.zero_grad()
                theta.grad = -g + config.weight_decay * theta.detach()
                optimizer.step()
                run.mark_updated()
                run.check_finite("parameter vector theta", theta.detach())
                nn.utils.vector_to_parameters(theta.detach(), policy.net.parameters())  # policy <- theta

                state["env_steps"] += int(lengths.sum())
                state["simulated_steps"] += int(lengths.max()) * P
                run.log(
                    env_steps=state["env_steps"],
                    wall_time=run.seconds,
                    mean_return=float(returns.mean()),
                    max_return=float(returns.max()),
                    num_episodes=P,
                    simulated_steps=state["simulated_steps"],
                )
                if end_update(run, state, policy=policy, snapshots=snapshots, fractions=fractions,
                              total_steps=config.total_steps, checkpoint_every=config.checkpoint_every,
                              steps_this_update=int(lengths.sum()), callback=callback):
                    break  # time budget, Ctrl-C, the step budget or the callback
            run.save(state)
    finally:
        envs.close()
    take_snapshots(snapshots, policy, fractions, state["next_snapshot"], state["env_steps"], config.total_steps, force=True)
    return policy.eval(), run.finish()
