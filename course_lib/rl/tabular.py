"""Tabular MDPs with exact enumeration of trajectories: exact policy gradients (Chapters 4 and 5).

With ``S`` states, ``A`` actions and horizon ``T`` there are ``(S*A)^T`` trajectories,
so every expectation can be computed exactly and compared with a sampled estimate.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from course_lib import checks
from course_lib.rl.policy_gradient import reward_to_go as _reward_to_go

__all__ = [
    "MAX_TRAJECTORIES",
    "TabularMDP",
    "tiny_mdp",
    "enumerate_trajectories",
    "exact_objective",
    "sample_trajectories",
    "reinforce_gradient_estimate",
]


def _as_float64(name: str, value) -> torch.Tensor:
    if isinstance(value, (str, bytes)) or value is None:
        raise checks.ArgumentTypeError(f"{name} must be a tensor-like array of numbers, got {type(value).__name__}")
    try:
        return torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError) as e:
        raise checks.ArgumentTypeError(f"{name} must be a tensor-like array of numbers: {e}") from None


#: The most trajectories a :class:`TabularMDP` may have: ``(S*A)^T <= 2**20``. Enumerating
#: them takes ``(S*A)^T * T`` memory and time (``2**20 * T * 16`` bytes for the index
#: tensors), so ``TabularMDP(horizon=30)`` on 2 states and 2 actions (``4^30 = 1.2e18``)
#: is refused instead of hanging.
MAX_TRAJECTORIES = 2**20


def _max_horizon(pairs: int) -> int:
    h = 0
    while pairs ** (h + 1) <= MAX_TRAJECTORIES:
        h += 1
    return h


# --------------------------------------------------------------------------------------
# A tiny tabular MDP with an exact policy gradient (the chapter's Check 1)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # eq=False: fields are tensors (no elementwise ==)
class TabularMDP:
    """A finite-horizon tabular MDP; the tabular policy is ``pi(a|s) = softmax(logits[s])_a``.

    The objective is the expected discounted return over exactly ``horizon`` steps,
    ``J = E[sum_{t=0}^{T-1} gamma^t r(s_t, a_t)]``, with ``s_0 ~ p0``,
    ``a_t ~ pi(.|s_t)``, ``s_{t+1} ~ P(.|s_t, a_t)``.

    Raises:
        ValueError: from ``__post_init__`` if shapes disagree, a distribution is
            negative, NaN or does not sum to 1, ``R`` is not finite, ``horizon < 1``,
            ``(S*A)^horizon`` exceeds :data:`MAX_TRAJECTORIES` (``2**20``; e.g.
            ``horizon=30``), or ``gamma`` is outside ``[0, 1]``.
        ArgumentTypeError (a TypeError and a ValueError): ``horizon`` not an int
            (``2.5``), a non-numeric array.
    """

    p0: torch.Tensor
    """``(S,)`` initial state distribution."""
    P: torch.Tensor
    """``(S, A, S)`` transition probabilities ``P[s, a, s']``."""
    R: torch.Tensor
    """``(S, A)`` expected reward for taking ``a`` in ``s``."""
    horizon: int
    """``T``, the number of decisions in every trajectory."""
    gamma: float = 1.0
    """discount of the objective."""

    def __post_init__(self):
        p0, P, R = (_as_float64(name, getattr(self, name)) for name in ("p0", "P", "R"))
        if p0.ndim != 1:
            raise ValueError(f"p0 must have shape (S,), got {tuple(p0.shape)}")
        S = p0.shape[0]
        if P.ndim != 3 or P.shape[0] != S or P.shape[2] != S:
            raise ValueError(f"P must have shape (S, A, S) = ({S}, A, {S}), got {tuple(P.shape)}")
        A = P.shape[1]
        if R.shape != (S, A):
            raise ValueError(f"R must have shape (S, A) = ({S}, {A}), got {tuple(R.shape)}")
        checks.finite("R", R)
        for name, dist in (("p0", p0), ("P", P)):
            checks.finite(name, dist)
            if (dist < 0).any() or not torch.allclose(dist.sum(-1), torch.ones(()).double(), atol=1e-6):
                raise ValueError(f"{name} must be non-negative and sum to 1 over its last axis")
        checks.positive_int("horizon", self.horizon)
        count = (S * A) ** self.horizon
        if count > MAX_TRAJECTORIES:
            raise ValueError(
                f"horizon={self.horizon} with S*A = {S * A} state-action pairs gives (S*A)^T = "
                f"{float(count):.3g} trajectories to enumerate; exact enumeration is limited to "
                f"MAX_TRAJECTORIES = 2**20 = {MAX_TRAJECTORIES:,} (horizon <= "
                f"{_max_horizon(S * A)} here). Shorten the horizon, or sample trajectories instead"
            )
        object.__setattr__(self, "gamma", checks.unit_interval("gamma", self.gamma))
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)

    @property
    def num_states(self) -> int:
        """``S``."""
        return int(self.p0.shape[0])

    @property
    def num_actions(self) -> int:
        """``A``."""
        return int(self.P.shape[1])


def tiny_mdp() -> TabularMDP:
    """The chapter's 2-state, 2-action, horizon-3 MDP (``gamma = 0.9``).

    State 0 is "safe" (action 0 pays 1 and mostly stays), state 1 is "risky"
    (action 1 pays 2 and tends to stay). Action 1 in state 0 pays 0 but leads to
    state 1; the rewards are all non-negative, so whole-trajectory returns carry a
    large common offset that reward-to-go removes (lower variance).
    """
    # float64, so that probabilities sum to 1 exactly enough for 1e-12 checks
    p0 = torch.tensor([0.7, 0.3], dtype=torch.float64)
    P = torch.tensor(
        [
            [[0.9, 0.1], [0.2, 0.8]],  # from state 0: action 0, action 1
            [[0.6, 0.4], [0.1, 0.9]],  # from state 1: action 0, action 1
        ],
        dtype=torch.float64,
    )
    R = torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64)
    return TabularMDP(p0=p0, P=P, R=R, horizon=3, gamma=0.9)


def _check_logits(logits, mdp: TabularMDP) -> torch.Tensor:
    if not isinstance(mdp, TabularMDP):
        raise checks.ArgumentTypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    logits = checks.tensor("logits", logits)
    if logits.dtype == torch.bool or logits.is_complex():
        raise checks.ArgumentTypeError(f"logits must be a real tensor, got dtype {logits.dtype}")
    if not logits.is_floating_point():
        logits = logits.to(torch.float64)  # integer logits: the obvious intent
    if logits.shape != (mdp.num_states, mdp.num_actions):
        raise ValueError(
            f"logits must have shape (S, A) = ({mdp.num_states}, {mdp.num_actions}), "
            f"got {tuple(logits.shape)}"
        )
    return logits  # no data-dependent checks here: exact_objective must work under torch.func.vmap


def enumerate_trajectories(mdp: TabularMDP) -> tuple[torch.Tensor, torch.Tensor]:
    """Every state-action sequence of length ``T``: ``(S*A)^T`` of them.

    Returns:
        ``(states, actions)``, each ``(K, T)`` int64 with ``K = (S*A)^T`` (64 for
        :func:`tiny_mdp`). Sequences impossible under ``P`` are included; they get
        probability 0 in :func:`exact_objective`.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``mdp`` not a :class:`TabularMDP`.
    """
    if not isinstance(mdp, TabularMDP):
        raise checks.ArgumentTypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    S, A, T = mdp.num_states, mdp.num_actions, mdp.horizon
    pairs = list(itertools.product(range(S), range(A)))
    seqs = torch.tensor(list(itertools.product(pairs, repeat=T)), dtype=torch.int64)  # (K, T, 2)
    return seqs[..., 0], seqs[..., 1]


def _trajectory_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(N, T)`` rewards -> ``(N,)`` discounted returns ``sum_t gamma^t r_t``."""
    disc = gamma ** torch.arange(rewards.shape[-1], dtype=rewards.dtype)
    return (rewards * disc).sum(-1)


def exact_objective(logits: torch.Tensor, mdp: TabularMDP) -> torch.Tensor:
    """Exact ``J(theta) = sum_tau p_theta(tau) r_gamma(tau)`` by enumerating all trajectories.

    ``p_theta(tau) = p0(s_0) prod_t pi(a_t|s_t) prod_{t<T-1} P(s_{t+1}|s_t,a_t)`` and
    ``r_gamma(tau) = sum_t gamma^t r(s_t, a_t)``. Differentiable in ``logits``, so
    ``torch.autograd.grad(exact_objective(logits, mdp), logits)`` is the exact
    policy gradient to test estimators against.

    Args:
        logits: ``(S, A)`` tabular logits (float64 recommended).
        mdp: a :class:`TabularMDP`.

    Returns:
        scalar tensor (dtype of ``logits``).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``logits`` not a torch
            tensor (a numpy array), ``mdp`` not a :class:`TabularMDP`.
        ValueError: if ``logits`` is not ``(S, A)``. (NaN logits give a NaN ``J``; no
            data-dependent check here, so that ``torch.func.vmap`` works.)

    Source: the trajectory form of the objective, Williams (1992) / CS182 notes
    section 7.2, eq. ``J = E_{tau ~ p_theta}[r(tau)]``.
    """
    logits = _check_logits(logits, mdp)
    dt = logits.dtype if logits.is_floating_point() else torch.float64
    states, actions = enumerate_trajectories(mdp)
    pi = torch.softmax(logits.to(dt), dim=-1)  # (S, A)
    P, p0, R = mdp.P.to(dt), mdp.p0.to(dt), mdp.R.to(dt)
    prob = p0[states[:, 0]] * pi[states, actions].prod(-1)
    prob = prob * P[states[:, :-1], actions[:, :-1], states[:, 1:]].prod(-1)
    returns = _trajectory_returns(R[states, actions], mdp.gamma)
    return (prob * returns).sum()


def sample_trajectories(
    logits: torch.Tensor, mdp: TabularMDP, n: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample ``n`` trajectories of the tabular softmax policy.

    Args:
        logits: ``(S, A)``.
        mdp: a :class:`TabularMDP`.
        n: number of trajectories (>= 1).
        generator: optional ``torch.Generator`` for reproducibility.

    Returns:
        ``(states, actions, rewards)``: ``(n, T)`` int64, ``(n, T)`` int64 and
        ``(n, T)`` float64 (``rewards[:, t] = R(s_t, a_t)``, undiscounted).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``logits`` not a tensor (a
            numpy array), ``mdp`` not a :class:`TabularMDP`, ``n`` not an int
            (``2.5``), ``generator`` not a ``torch.Generator``.
        ValueError: ``logits`` of the wrong shape or not finite, ``n < 1``.
    """
    logits = _check_logits(logits, mdp)
    checks.finite("logits", logits.detach())
    checks.positive_int("n", n)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise checks.ArgumentTypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    pi = torch.softmax(logits.detach().to(torch.float64), dim=-1)
    states = torch.empty(n, mdp.horizon, dtype=torch.int64)
    actions = torch.empty(n, mdp.horizon, dtype=torch.int64)
    s = torch.multinomial(mdp.p0.expand(n, -1), 1, replacement=True, generator=generator).squeeze(1)
    for t in range(mdp.horizon):
        a = torch.multinomial(pi[s], 1, generator=generator).squeeze(1)
        states[:, t], actions[:, t] = s, a
        if t + 1 < mdp.horizon:
            s = torch.multinomial(mdp.P[s, a], 1, generator=generator).squeeze(1)  # s = s_next
    return states, actions, mdp.R[states, actions]


def reinforce_gradient_estimate(
    logits: torch.Tensor,
    mdp: TabularMDP,
    n: int,
    generator: torch.Generator | None = None,
    reward_to_go: bool = True,
    return_samples: bool = False,
):
    """Monte-Carlo REINFORCE estimate of ``grad_logits J`` from ``n`` sampled trajectories.

    Per trajectory ``i``: ``g_i = sum_t w_it grad log pi(a_it | s_it)`` with

    - ``reward_to_go=False``: ``w_it = r_gamma(tau_i) = sum_k gamma^k r_ik`` (Williams 1992);
    - ``reward_to_go=True``: ``w_it = gamma^t G_it = sum_{k>=t} gamma^k r_ik``
      (causality: an action cannot affect earlier rewards).

    Both are unbiased for the *discounted* objective; note the ``gamma^t`` factor that
    the deep-RL version (:func:`train_reinforce`) drops. For a tabular softmax,
    ``grad_{logits[s]} log pi(a|s) = onehot(a) - pi(.|s)`` (and 0 for other rows),
    so no autograd is needed; the mean equals ``-T * grad`` of
    :func:`reinforce_loss` applied to the ``(n, T)`` log-probs and weights.

    Args:
        logits: ``(S, A)``.
        mdp: a :class:`TabularMDP`.
        n: number of trajectories (>= 1).
        generator: optional ``torch.Generator``.
        reward_to_go: weights as above.
        return_samples: also return the per-trajectory gradients.

    Returns:
        ``(S, A)`` float64 estimate ``(1/n) sum_i g_i``; with ``return_samples``, the
        tuple ``(estimate, samples)`` with ``samples`` of shape ``(n, S, A)`` (for
        standard errors and variance comparisons).

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): as :func:`sample_trajectories`,
            or a non-bool ``reward_to_go``/``return_samples``.
        ValueError: as :func:`sample_trajectories`.

    Source: Williams (1992), eq. 9; Sutton & Barto (2018), eq. 13.8 and the REINFORCE box of section 13.3
    (which has the ``gamma^t``); CS182 notes section 7.3 (reward-to-go / causality).
    """
    logits = _check_logits(logits, mdp)
    for name, flag in (("reward_to_go", reward_to_go), ("return_samples", return_samples)):
        if not isinstance(flag, bool):
            raise checks.ArgumentTypeError(f"{name} must be a bool, got {flag!r}")
    states, actions, rewards = sample_trajectories(logits, mdp, n, generator)
    T = mdp.horizon
    disc = mdp.gamma ** torch.arange(T, dtype=torch.float64)  # gamma^t
    if reward_to_go:
        # gamma^t * G_t = sum_{k>=t} gamma^k r_k   (NOT plain G_t: that would be biased here)
        weights = disc * _reward_to_go(rewards, mdp.gamma)
    else:
        weights = _trajectory_returns(rewards, mdp.gamma)[:, None].expand(n, T)
    pi = torch.softmax(logits.detach().to(torch.float64), dim=-1)
    S, A = mdp.num_states, mdp.num_actions
    score = torch.nn.functional.one_hot(actions, A).double() - pi[states]  # (n, T, A)
    samples = torch.zeros(n, S, A, dtype=torch.float64)
    # g_i[s, :] = sum over steps t with s_it = s of w_it * (onehot(a_it) - pi(.|s))
    samples.index_put_(
        (torch.arange(n)[:, None].expand(n, T), states), weights[..., None] * score, accumulate=True
    )
    estimate = samples.mean(0)
    return (estimate, samples) if return_samples else estimate


