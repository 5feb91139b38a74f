"""Chapter 5: exact means and variances of policy-gradient estimators on a tabular MDP.

On :func:`course_lib.rl.tiny_mdp` every one of the ``K = (S*A)^T`` trajectories is
enumerated with its probability, so the mean and the covariance of a
single-trajectory estimator are sums, not estimates. The estimator studied is
the reward-to-go form of Chapter 4 with a baseline ``b_t``:

.. math::

    g(\\tau) = \\sum_{t=0}^{T-1} \\gamma^t \\nabla_\\theta \\log \\pi(a_t|s_t)\\,(G_t - b_t),

unbiased for the discounted objective whenever ``b_t`` does not depend on ``a_t``
(or later events). ``theta`` are the ``D = S*A`` tabular logits, flattened
row-major (``d = s*A + a``). In a finite-horizon MDP the Markov state is the pair
``(t, s)``, so "state-dependent" baselines and the value ``V_t(s)`` are indexed by
time as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from course_lib import checks
from course_lib.rl.policy_gradient import reward_to_go
from course_lib.rl.tabular import TabularMDP, _check_logits, enumerate_trajectories

__all__ = [
    "ExactTrajectories",
    "exact_trajectories",
    "exact_values",
    "baseline_gradients",
    "exact_moments",
    "optimal_constant_baseline",
    "optimal_state_baseline",
    "exact_target_moments",
    "softmax_bandit_gradient",
]


@dataclass(frozen=True, eq=False)
class ExactTrajectories:
    """All trajectories of a tabular MDP under a softmax policy, with what the estimators need.

    ``K`` trajectories, horizon ``T``, ``D = S*A`` parameters.
    """

    probs: torch.Tensor
    """``(K,)`` float64, ``p_theta(tau)`` (sums to 1)."""
    states: torch.Tensor
    """``(K, T)`` int64."""
    actions: torch.Tensor
    """``(K, T)`` int64."""
    rewards: torch.Tensor
    """``(K, T)`` float64, the rewards ``r_t = r(s_t, a_t)``."""
    reward_to_go: torch.Tensor
    """``(K, T)`` float64, discounted ``G_t = sum_{k>=t} gamma^(k-t) r_k``."""
    scores: torch.Tensor
    """``(K, T, D)`` float64, ``grad_theta log pi(a_t|s_t)`` (``onehot(a) - pi(.|s)`` in row ``s``)."""
    gamma: float
    """the MDP's discount."""


def exact_trajectories(logits: torch.Tensor, mdp: TabularMDP) -> ExactTrajectories:
    """Enumerate every trajectory of ``mdp`` under ``softmax(logits)`` (see :class:`ExactTrajectories`).

    Args:
        logits: ``(S, A)`` tabular logits.
        mdp: a :class:`TabularMDP`.

    Raises:
        ValueError: if ``logits`` is not an ``(S, A)`` tensor or ``mdp`` not a TabularMDP.

    References:
        Williams (1992), eq. 9 (the score function ``grad log pi``); Sutton & Barto
        (2018), eq. 13.9 (its softmax form).
    """
    logits = _check_logits(logits, mdp)
    states, actions = enumerate_trajectories(mdp)
    K, T = states.shape
    S, A = mdp.num_states, mdp.num_actions
    pi = torch.softmax(logits.detach().to(torch.float64), dim=-1)
    prob = mdp.p0[states[:, 0]] * pi[states, actions].prod(-1)
    prob = prob * mdp.P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(-1)
    rewards = mdp.R[states, actions]
    scores = torch.zeros(K, T, S, A, dtype=torch.float64)
    row = torch.nn.functional.one_hot(actions, A).double() - pi[states]  # (K, T, A)
    scores[torch.arange(K)[:, None], torch.arange(T)[None, :], states] = row
    return ExactTrajectories(
        probs=prob, states=states, actions=actions, rewards=rewards,
        reward_to_go=reward_to_go(rewards, mdp.gamma), scores=scores.reshape(K, T, S * A), gamma=mdp.gamma,
    )


def exact_values(logits: torch.Tensor, mdp: TabularMDP) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact time-indexed ``V_t(s) = E[G_t | s_t = s]`` and ``Q_t(s, a)`` by backward induction.

    Returns:
        ``(V, Q)``: ``(T + 1, S)`` (``V_T = 0``) and ``(T, S, A)``, float64.

    Raises:
        ValueError: for bad ``logits`` or ``mdp``.

    References:
        Sutton & Barto (2018), eq. 3.14 (the Bellman equation for ``v_pi``), finite-horizon form.
    """
    logits = _check_logits(logits, mdp)
    pi = torch.softmax(logits.detach().to(torch.float64), dim=-1)
    T, S, A = mdp.horizon, mdp.num_states, mdp.num_actions
    V = torch.zeros(T + 1, S, dtype=torch.float64)
    Q = torch.zeros(T, S, A, dtype=torch.float64)
    for t in range(T - 1, -1, -1):
        Q[t] = mdp.R + mdp.gamma * (mdp.P @ V[t + 1])
        V[t] = (pi * Q[t]).sum(-1)
    return V, Q


def baseline_gradients(traj: ExactTrajectories, baseline=0.0) -> torch.Tensor:
    """Per-trajectory gradient estimates ``g(tau) = sum_t gamma^t score_t (G_t - b_t)``.

    Args:
        traj: from :func:`exact_trajectories`.
        baseline: a number or ``()`` tensor (a constant ``b``); a ``(K, T)`` tensor
            (``b_t`` of each trajectory's step ``t``: may depend on ``t, s_t`` and,
            to show the bias, on ``a_t``); or a ``(D,)`` tensor (a constant per
            parameter, ``g_d = sum_t gamma^t score_td (G_t - b_d)``).

    Returns:
        ``(K, D)`` float64.

    Raises:
        ValueError: for a ``baseline`` of another shape.

    References:
        Williams (1992), eq. 9 (the reinforcement baseline); Greensmith, Bartlett &
        Baxter (2004), section 3.
    """
    if not isinstance(traj, ExactTrajectories):
        raise checks.ArgumentTypeError(f"traj must be an ExactTrajectories, got {type(traj).__name__}")
    b = torch.as_tensor(baseline, dtype=torch.float64)
    K, T, D = traj.scores.shape
    disc = traj.gamma ** torch.arange(T, dtype=torch.float64)
    G = traj.reward_to_go
    if b.ndim == 0 or b.shape == (K, T):
        w = disc * (G - b)  # (K, T)
        return (traj.scores * w[..., None]).sum(1)
    if b.shape == (D,):
        return (traj.scores * disc[None, :, None] * (G[..., None] - b)).sum(1)
    raise ValueError(f"baseline must be a number, a (K, T) = ({K}, {T}) or a (D,) = ({D},) tensor, got {tuple(b.shape)}")


def exact_moments(samples: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact mean and trace-variance of a discrete random vector.

    Args:
        samples: ``(K, D)``, the value on each outcome.
        probs: ``(K,)``, the outcome probabilities (non-negative, summing to 1).

    Returns:
        ``(mean, trace_var)``: ``(D,)`` and ``()``, with
        ``trace_var = sum_k p_k ||x_k - mean||^2`` (the sum of the per-parameter
        variances of a single-trajectory estimate).

    Raises:
        ValueError: for shapes that do not match, or ``probs`` not a distribution.
    """
    x = checks.tensor("samples", samples).to(torch.float64)
    p = checks.tensor("probs", probs).to(torch.float64)
    if x.ndim != 2 or p.shape != (x.shape[0],):
        raise ValueError(f"samples must be (K, D) and probs (K,), got {tuple(x.shape)} and {tuple(p.shape)}")
    if bool((p < 0).any()) or abs(float(p.sum()) - 1.0) > 1e-9:
        raise ValueError("probs must be non-negative and sum to 1")
    mean = (p[:, None] * x).sum(0)
    return mean, (p * ((x - mean) ** 2).sum(1)).sum()


def _least_squares_baseline(traj: ExactTrajectories, directions: torch.Tensor) -> torch.Tensor:
    """Minimise E||g0 - sum_j b_j u_j||^2 over b, with ``directions`` u of shape (J, K, D)."""
    g0 = baseline_gradients(traj, 0.0)  # (K, D)
    p = traj.probs
    M = torch.einsum("k,jkd,lkd->jl", p, directions, directions)
    c = torch.einsum("k,jkd,kd->j", p, directions, g0)
    return torch.linalg.pinv(M) @ c


def optimal_constant_baseline(traj: ExactTrajectories, per_parameter: bool = False) -> torch.Tensor:
    """The exact variance-minimising constant baseline (one number, or one per parameter).

    The directions ``u = sum_t gamma^t score_t`` have mean 0, so subtracting ``b u``
    keeps the mean and the trace-variance is a quadratic in ``b``:
    ``b* = E[u . g0] / E[||u||^2]`` (per parameter: ``E[u_d g0_d] / E[u_d^2]``).

    Returns:
        ``()`` or ``(D,)`` float64.

    References:
        Greensmith, Bartlett & Baxter (2004) (optimal constant baseline);
        CS182 notes section 7.3.4.2.
    """
    disc = traj.gamma ** torch.arange(traj.scores.shape[1], dtype=torch.float64)
    u = (traj.scores * disc[None, :, None]).sum(1)  # (K, D)
    if not per_parameter:
        return _least_squares_baseline(traj, u[None])[0]
    g0 = baseline_gradients(traj, 0.0)
    num = (traj.probs[:, None] * u * g0).sum(0)
    den = (traj.probs[:, None] * u * u).sum(0)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den))


def optimal_state_baseline(traj: ExactTrajectories, num_states: int) -> torch.Tensor:
    """The exact variance-minimising baseline ``b_t(s)`` among all functions of ``(t, s)``.

    Each ``(t, s)`` contributes a zero-mean direction ``u_ts = gamma^t 1[s_t = s] score_t``;
    the optimum solves the normal equations ``M b = c`` with ``M = E[u_i . u_j]``,
    ``c = E[u_i . g0]`` (a pseudo-inverse for unreachable pairs). In general it is
    *not* ``V_t(s)``: it weights the returns by ``||score||^2``, and beyond one step
    the cross-time covariances of the reward-to-go terms enter too, so it differs from
    ``V_t(s)`` even where ``||score||`` is the same for every action (the uniform
    policy of :func:`tiny_mdp`; Chapter 5, section 5.3).

    Returns:
        ``(T, S)`` float64. Use ``b[t, states]`` as the ``(K, T)`` baseline.

    References:
        Greensmith, Bartlett & Baxter (2004) (the optimal state-dependent
        baseline, ``E[||score||^2 G | s] / E[||score||^2 | s]``, for one step).
    """
    checks.positive_int("num_states", num_states)
    K, T, D = traj.scores.shape
    disc = traj.gamma ** torch.arange(T, dtype=torch.float64)
    dirs = []
    for t in range(T):
        for s in range(num_states):
            mask = (traj.states[:, t] == s).double()[:, None]
            dirs.append(disc[t] * mask * traj.scores[:, t])
    return _least_squares_baseline(traj, torch.stack(dirs)).reshape(T, num_states)


def exact_target_moments(
    traj: ExactTrajectories, values_hat: torch.Tensor, values_true: torch.Tensor, n: int
) -> dict[str, torch.Tensor]:
    """Bias and variance of the n-step critic target ``G_t^(n)`` for ``V_t(s)``, exactly.

    ``G_t^(n) = sum_{k=t}^{t+m-1} gamma^(k-t) r_k + gamma^m Vhat_{t+m}(s_{t+m})`` with
    ``m = min(n, T - t)`` (``Vhat_T = 0``). ``n >= T`` is the Monte Carlo target, ``n = 1``
    the TD(0) target.

    Args:
        traj: from :func:`exact_trajectories`.
        values_hat: ``(T + 1, S)`` the critic used for bootstrapping.
        values_true: ``(T + 1, S)`` the exact values (from :func:`exact_values`).
        n: bootstrap after ``n`` steps (>= 1).

    Returns:
        dict of ``(T, S)`` float64 tensors: ``"bias"`` (``E[G^(n) | s_t = s] - V_t(s)``),
        ``"variance"`` (``Var[G^(n) | s_t = s]``), ``"visit"`` (``P(s_t = s)``).

    References:
        Sutton & Barto (2018), section 7.1 (n-step TD) and section 6.2 (TD versus
        Monte Carlo); CS182 notes section 7.4.
    """
    n = checks.positive_int("n", n)
    K, T = traj.states.shape
    Vh = torch.as_tensor(values_hat, dtype=torch.float64)
    Vt = torch.as_tensor(values_true, dtype=torch.float64)
    S = Vt.shape[1]
    if Vh.shape != (T + 1, S) or Vt.shape != (T + 1, S):
        raise ValueError(f"values_hat and values_true must have shape (T + 1, S), got {tuple(Vh.shape)}, {tuple(Vt.shape)}")
    out = {k: torch.zeros(T, S, dtype=torch.float64) for k in ("bias", "variance", "visit")}
    p = traj.probs
    for t in range(T):
        m = min(n, T - t)
        disc = traj.gamma ** torch.arange(m, dtype=torch.float64)
        target = (traj.rewards[:, t:t + m] * disc).sum(1)
        if t + m < T:
            target = target + traj.gamma**m * Vh[t + m, traj.states[:, t + m]]
        for s in range(S):
            w = p * (traj.states[:, t] == s).double()
            visit = w.sum()
            out["visit"][t, s] = visit
            if visit > 0:
                mean = (w * target).sum() / visit
                out["bias"][t, s] = mean - Vt[t, s]
                out["variance"][t, s] = (w * (target - mean) ** 2).sum() / visit
    return out


def softmax_bandit_gradient(logits: torch.Tensor, rewards: torch.Tensor, baseline: float = 0.0) -> torch.Tensor:
    """Exact expected score-function gradient of a softmax bandit, with a constant baseline.

    ``E_{a ~ pi}[grad_z log pi_a (r_a - b)]`` for ``pi = softmax(z)``, computed as the
    sum over the ``A`` actions of ``pi_a (e_a - pi) (r_a - b)``. By the baseline
    identity it equals ``grad_z sum_a pi_a r_a`` for every ``b``.

    Args:
        logits: ``(A,)`` float tensor ``z``.
        rewards: ``(A,)`` float tensor ``r``.
        baseline: the constant ``b``.

    Returns:
        ``(A,)``, dtype of ``logits``.

    Raises:
        ValueError: for shapes other than two matching ``(A,)`` vectors.

    References:
        Williams (1992), eq. 9; Sutton & Barto (2018), section 2.8 (the gradient
        bandit algorithm, whose baseline leaves the expected update unchanged).
    """
    z = checks.tensor("logits", logits)
    r = checks.tensor("rewards", rewards)
    if z.ndim != 1 or r.shape != z.shape:
        raise ValueError(f"logits and rewards must both have shape (A,), got {tuple(z.shape)} and {tuple(r.shape)}")
    b = checks._real("baseline", baseline, "a real number")
    pi = torch.softmax(z, dim=-1)
    scores = torch.eye(z.shape[0], dtype=pi.dtype, device=pi.device) - pi  # row a: e_a - pi
    return (pi[:, None] * scores * (r.to(pi.dtype) - b)[:, None]).sum(0)
