"""Exact dynamic programming on finite MDPs (Chapter 6): Bellman backups, policy evaluation,
value iteration, policy iteration and Q-iteration.

Everything here is a pure function of a :class:`FiniteMDP` (tensors in, tensors out).
A backup over all states is one batched matrix product ``P (S*A, S) @ V (S, N)``, so
the same code runs on the GPU when the MDP's tensors live there (``mdp.to("cuda")``):
the device always follows the MDP. The MDP itself (:class:`FiniteMDP`, its checks,
:func:`random_mdp`) is in :mod:`course_lib.rl.mdp`, imported here.

Shapes: ``S`` states, ``A`` actions, ``N`` value functions backed up at once.
Values are expected *discounted* returns (``sum_t gamma^t r_t``), in reward units.

References:
    R. Bellman, *Dynamic Programming*, 1957.
    R. S. Sutton and A. G. Barto, *Reinforcement Learning: An Introduction*, 2nd ed.,
    2018, chapter 4 (eq. 4.1-4.10; policy iteration, section 4.3; value iteration,
    eq. 4.10 and section 4.4).
    Berkeley CS182 notes, section 7.5, Algorithms 13-15.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from course_lib import checks
from course_lib.rl.mdp import FiniteMDP, _check_mdp, _check_values, _require_finite, random_mdp

__all__ = [
    "ConvergenceWarning",
    "ConvergenceHistory",
    "FiniteMDP",
    "random_mdp",
    "q_from_v",
    "bellman_optimality_backup",
    "bellman_optimality_backup_q",
    "bellman_expectation_backup",
    "bellman_residual",
    "policy_matrices",
    "policy_evaluation",
    "iterative_policy_evaluation",
    "greedy_policy",
    "value_iteration",
    "value_iteration_bound",
    "policy_iteration",
    "q_iteration",
    "sample_episode",
]


# --------------------------------------------------------------------------------------
# Backups (pure functions)
# --------------------------------------------------------------------------------------


def q_from_v(mdp: FiniteMDP, V: torch.Tensor) -> torch.Tensor:
    """``Q(s, a) = r(s, a) + gamma * sum_s' p(s'|s, a) V(s')`` for one or ``N`` value functions.

    Args:
        V: ``(S,)`` or ``(N, S)``.

    Returns:
        ``(S, A)`` or ``(N, S, A)``: one batched matrix product ``(S*A, S) @ (S, N)``.

    Raises:
        ArgumentTypeError: ``mdp`` is not a FiniteMDP or ``V`` not a real tensor.
        ValueError: ``V`` has the wrong shape or a NaN/inf entry.

    References:
        Sutton and Barto 2018, eq. 4.6; CS182 notes Algorithm 15, line 2.
    """
    _check_mdp(mdp)
    return _q_from_v(mdp, _check_values("V", mdp, V, (mdp.num_states,)))


def _q_from_v(mdp: FiniteMDP, V: torch.Tensor) -> torch.Tensor:
    """:func:`q_from_v` on a checked float64 ``V`` (the solvers' loops: no per-backup validation)."""
    S, A = mdp.num_states, mdp.num_actions
    P = mdp.transitions
    if not P.is_contiguous() and P.transpose(0, 1).is_contiguous():
        # Stored as (A, S, S) (pymdptoolbox's layout, seen through a transpose): the same
        # product on that storage, because reshaping the (S, A, S) view would copy the whole
        # table on every backup.
        expected_next = P.transpose(0, 1).reshape(A * S, S) @ V.reshape(-1, S).T  # (A*S, N)
        Q = mdp.rewards.T.reshape(A * S, 1) + mdp.gamma * expected_next
        Q = Q.reshape(A, S, -1).permute(2, 1, 0)  # (A*S, N) -> (N, S, A)
    else:
        expected_next = P.reshape(S * A, S) @ V.reshape(-1, S).T  # (S*A, N)
        Q = mdp.rewards.reshape(S * A, 1) + mdp.gamma * expected_next
        Q = Q.T.reshape(-1, S, A)
    return Q[0] if V.ndim == 1 else Q


def bellman_optimality_backup(mdp: FiniteMDP, V: torch.Tensor) -> torch.Tensor:
    """The Bellman optimality operator ``(T V)(s) = max_a [r(s, a) + gamma E_{s'} V(s')]``.

    Args:
        mdp: the MDP.
        V: ``(S,)`` (or ``(N, S)`` to back up ``N`` value functions in one product).

    Returns:
        ``(S,)`` (or ``(N, S)``), float64, on ``mdp.device``.

    Raises:
        ArgumentTypeError: ``mdp`` is not a FiniteMDP or ``V`` not a real tensor.
        ValueError: ``V`` has the wrong shape or a NaN/inf entry.

    References:
        Bellman 1957; Sutton and Barto 2018, eq. 4.10 (value iteration).
    """
    return q_from_v(mdp, V).amax(-1)


def bellman_optimality_backup_q(mdp: FiniteMDP, Q: torch.Tensor) -> torch.Tensor:
    """Q-iteration's backup ``(T Q)(s, a) = r(s, a) + gamma E_{s'} max_a' Q(s', a')``: ``(S, A)`` or ``(N, S, A)``.

    The max is over the action at the **next** state; the action ``a`` being scored is fixed.

    Raises:
        ArgumentTypeError: ``mdp`` is not a FiniteMDP or ``Q`` not a real tensor.
        ValueError: ``Q`` is not ``(S, A)`` / ``(N, S, A)`` or has a NaN/inf entry.

    References:
        Sutton and Barto 2018, eq. 3.20; CS182 notes Algorithm 18, line 3.
    """
    _check_mdp(mdp)
    Q = _check_values("Q", mdp, Q, (mdp.num_states, mdp.num_actions))
    return _q_from_v(mdp, Q.amax(-1))


def policy_matrices(mdp: FiniteMDP, policy) -> tuple[torch.Tensor, torch.Tensor]:
    """``P^pi (S, S)`` and ``r^pi (S,)`` of a deterministic or stochastic policy.

    Args:
        policy: ``(S,)`` integer actions, or ``(S, A)`` float probabilities (rows sum to 1).

    Returns:
        ``(P_pi, r_pi)``: ``(S, S)`` and ``(S,)`` float64 on ``mdp.device``.

    Raises:
        ArgumentTypeError: ``policy`` is not a tensor, or is a bool tensor.
        ValueError: naming ``policy``, for a wrong shape, an action out of range, or
            probabilities that are NaN/inf, negative or do not sum to 1 (within 1e-9).

    References:
        Sutton and Barto 2018, eq. 4.4 in matrix form.
    """
    pi = _policy_probs(mdp, policy)
    if not policy.is_floating_point():  # deterministic: pick the rows, no (S, A, S) product
        return _deterministic_matrices(mdp, policy)
    P_pi = torch.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = (pi * mdp.rewards).sum(-1)
    return P_pi, r_pi


def _policy_probs(mdp: FiniteMDP, policy) -> torch.Tensor:
    _check_mdp(mdp)
    S, A = mdp.num_states, mdp.num_actions
    if not isinstance(policy, torch.Tensor):
        raise checks.ArgumentTypeError(f"policy must be a torch.Tensor, (S,) int64 actions or (S, A) probabilities, got {type(policy).__name__}")
    if policy.dtype == torch.bool or policy.is_complex():
        raise checks.ArgumentTypeError(f"policy must hold integer actions or float probabilities, got dtype {policy.dtype}")
    policy = policy.to(mdp.device)
    if policy.shape == (S,) and not policy.is_floating_point():
        if bool(((policy < 0) | (policy >= A)).any()):
            raise ValueError(f"policy: actions must be in [0, {A}), got min {policy.min().item()} max {policy.max().item()}")
        return torch.nn.functional.one_hot(policy.long(), A).to(torch.float64)
    if policy.shape == (S, A) and policy.is_floating_point():
        pi = policy.to(torch.float64)
        _require_finite("policy", pi)
        if bool((pi < 0).any()):
            raise ValueError(f"policy: (S, A) probabilities must be non-negative, got min {pi.min().item():.3g}")
        row_error = (pi.sum(-1) - 1).abs()
        if row_error.max().item() > 1e-9:
            s = int(row_error.argmax())
            raise ValueError(f"policy: every row of the (S, A) probabilities must sum to 1, row {s} sums to {pi[s].sum().item():.6g}")
        return pi
    raise ValueError(f"policy must be (S,) = ({S},) integer actions or (S, A) = ({S}, {A}) float probabilities, "
                     f"got shape {tuple(policy.shape)} dtype {policy.dtype}")


def bellman_expectation_backup(mdp: FiniteMDP, V: torch.Tensor, policy) -> torch.Tensor:
    """``(T^pi V)(s) = sum_a pi(a|s) [r(s, a) + gamma E_{s'} V(s')]``: ``(S,)`` or ``(N, S)``.

    References:
        Sutton and Barto 2018, eq. 4.5 (iterative policy evaluation).
    """
    pi = _policy_probs(mdp, policy)
    return (q_from_v(mdp, V) * pi).sum(-1)


def bellman_residual(mdp: FiniteMDP, V: torch.Tensor) -> float:
    """``||T V - V||_inf``: 0 exactly at the fixed point ``V*`` (reward units).

    Args:
        V: ``(S,)`` (or ``(N, S)``: the largest residual of the ``N``).

    Raises:
        As :func:`bellman_optimality_backup` (naming ``mdp`` or ``V``).
    """
    return (bellman_optimality_backup(mdp, V) - V.to(mdp.device, torch.float64)).abs().max().item()


def greedy_policy(Q: torch.Tensor) -> torch.Tensor:
    """``argmax_a Q(s, a)`` per state, ``(S,)`` int64 (ties go to the lowest action index).

    Raises:
        ArgumentTypeError: ``Q`` is not a real tensor.
        ValueError: ``Q`` is not ``(S, A)`` with ``A >= 1``, or has a NaN/inf entry (an
            argmax would pick the NaN action).
    """
    if not isinstance(Q, torch.Tensor):
        raise checks.ArgumentTypeError(f"Q must be a torch.Tensor of shape (S, A), got {type(Q).__name__}")
    if Q.dtype == torch.bool or Q.is_complex():
        raise checks.ArgumentTypeError(f"Q must be a real-valued tensor, got dtype {Q.dtype}")
    if Q.ndim != 2 or Q.shape[1] < 1:
        raise ValueError(f"Q must have shape (S, A) with A >= 1, got {tuple(Q.shape)}")
    if Q.is_floating_point():
        _require_finite("Q", Q)
    return Q.argmax(-1)


# --------------------------------------------------------------------------------------
# Convergence reports of the iterative solvers
# --------------------------------------------------------------------------------------


class ConvergenceWarning(RuntimeWarning):
    """An iterative solver hit its ``max_iterations`` cap before its stopping test was met.

    Its values are then only an approximation: :func:`value_iteration` and
    :func:`q_iteration` are within ``gamma / (1 - gamma) * last_change`` of the fixed
    point (sup-norm), which is huge for ``gamma`` near 1. Turn it into an error with
    ``warnings.simplefilter("error", ConvergenceWarning)``.
    """


class ConvergenceHistory(list):
    """The per-iteration sup-norm changes of a solver (a plain ``list`` of floats) and how the run ended.

    It is the ``history`` the solvers returned before: ``len(history)`` is the number of
    iterations, ``history[-1]`` the last change, and it compares equal to a list.

    Attributes:
        converged: ``True`` when the stopping test was met (change ``< tol``; for
            :func:`policy_iteration`, a stable policy) before ``max_iterations``.
            ``False`` when the cap was hit (a :class:`ConvergenceWarning` is issued then,
            except for ``tol=0``, which asks for exactly ``max_iterations`` iterations).
        tol: the tolerance of the stopping test (``None`` for policy iteration).
        max_iterations: the cap.
        last_change: the last quantity compared with ``tol`` (reward units): the
            sup-norm change, or the span with ``value_iteration(stopping="span")``.
    """

    def __init__(self, changes=(), *, converged: bool = False, tol: float | None = None,
                 max_iterations: int | None = None, last_change: float = math.nan):
        super().__init__(changes)
        self.converged = bool(converged)
        self.tol = tol
        self.max_iterations = max_iterations
        self.last_change = float(last_change)


def _finish(solver: str, changes: list, converged: bool, tol: float | None, max_iterations: int,
            last_change: float, gamma: float, span: bool = False) -> ConvergenceHistory:
    """Wrap ``changes`` in a :class:`ConvergenceHistory`; warn when the cap stopped a run that had a target."""
    history = ConvergenceHistory(changes, converged=converged, tol=tol, max_iterations=max_iterations,
                                 last_change=last_change)
    if converged or tol == 0:
        return history
    if tol is None:  # policy iteration
        message = (f"{solver} stopped at max_iterations={max_iterations} before the policy was stable "
                   f"(last change of V {last_change:.3g}); the returned policy may not be optimal: raise max_iterations")
    else:
        sup = changes[-1] if changes else math.nan
        message = (f"{solver} did not converge: it stopped at max_iterations={max_iterations} with last change "
                   f"{last_change:.3g} >= tol={tol:g}; the values may be off by up to gamma/(1-gamma) * {sup:.3g} "
                   f"= {gamma / (1 - gamma) * sup:.3g}")
        reach = (2 if span else 1) * sup  # span <= 2 * sup-norm change, which shrinks by gamma per iteration
        if 0 < gamma and reach > tol:
            message += f"; at most {math.ceil(math.log(tol / reach) / math.log(gamma))} more iterations bring the change below tol"
        message += ": raise max_iterations or tol"
    warnings.warn(message, ConvergenceWarning, stacklevel=3)
    return history


# --------------------------------------------------------------------------------------
# Policy evaluation
# --------------------------------------------------------------------------------------


def _deterministic_matrices(mdp: FiniteMDP, policy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows = torch.arange(mdp.num_states, device=mdp.device)
    actions = policy.to(mdp.device).long()
    return mdp.transitions[rows, actions], mdp.rewards[rows, actions]


def _solve(mdp: FiniteMDP, P_pi: torch.Tensor, r_pi: torch.Tensor) -> torch.Tensor:
    system = P_pi * -mdp.gamma  # (S, S): I - gamma P^pi built in place, without an S x S identity
    system.diagonal().add_(1.0)
    # Solve x^T system^T = r^T: LAPACK is column-major, so the transposed view of a row-major
    # matrix is its native layout and the factorization skips a copy (one measurement at S = 2,000,
    # one thread: 135 ms against 163 ms for torch.linalg.solve(system, r_pi); within a whole
    # policy iteration the difference was inside the run-to-run noise).
    return torch.linalg.solve(system.mT, r_pi[None, :], left=False)[0]


def policy_evaluation(mdp: FiniteMDP, policy) -> torch.Tensor:
    """Exact ``V^pi`` by one linear solve of ``(I - gamma P^pi) V = r^pi``.

    The matrix is invertible for ``gamma < 1`` (the row sums of ``gamma P^pi`` are ``gamma``).

    Args:
        mdp: the MDP.
        policy: ``(S,)`` int64 actions or ``(S, A)`` probabilities.

    Returns:
        ``V^pi``, ``(S,)`` float64: expected discounted return from each state.

    Raises:
        ArgumentTypeError / ValueError: naming ``mdp`` or ``policy`` (see :func:`policy_matrices`).

    References:
        Sutton and Barto 2018, eq. 4.4 (the linear system of section 4.1).
    """
    return _solve(mdp, *policy_matrices(mdp, policy))


def iterative_policy_evaluation(mdp: FiniteMDP, policy, tol: float = 1e-12, max_iterations: int = 100_000):
    """``V <- T^pi V`` from ``V = 0`` until the sup-norm change is below ``tol``.

    Each sweep shrinks the change by ``gamma``, and the first change is at most
    ``r_max = max |r|``, so about ``log(tol / r_max) / log(gamma)`` sweeps are needed.

    Args:
        mdp: the MDP.
        policy: ``(S,)`` int64 actions or ``(S, A)`` probabilities (see :func:`policy_matrices`).
        tol: stop when the change is ``< tol`` (reward units, ``> 0``).
        max_iterations: at most this many sweeps.

    Returns:
        ``(V, history)``: ``V`` ``(S,)`` float64, ``history`` a :class:`ConvergenceHistory`
        (the list of per-iteration sup-norm changes ``||V_{k+1} - V_k||_inf``, with
        ``history.converged``).

    Raises:
        ArgumentTypeError / ValueError: naming ``mdp``, ``policy``, ``tol`` or ``max_iterations``.

    Warns:
        ConvergenceWarning: ``max_iterations`` sweeps ran and the change is still ``>= tol``
        (``history.converged`` is then ``False``).

    References:
        Sutton and Barto 2018, section 4.1, "Iterative policy evaluation".
    """
    tol = checks.positive_float("tol", tol)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    pi = _policy_probs(mdp, policy)
    V = torch.zeros(mdp.num_states, dtype=torch.float64, device=mdp.device)
    history, converged = [], False
    for _ in range(max_iterations):
        V_new = (_q_from_v(mdp, V) * pi).sum(-1)
        history.append((V_new - V).abs().max().item())
        V = V_new
        if history[-1] < tol:
            converged = True
            break
    return V, _finish("iterative_policy_evaluation", history, converged, tol, max_iterations, history[-1], mdp.gamma)


# --------------------------------------------------------------------------------------
# Value iteration, policy iteration, Q-iteration
# --------------------------------------------------------------------------------------


def value_iteration(mdp: FiniteMDP, tol: float = 1e-10, max_iterations: int = 100_000, *,
                    stopping: str = "sup", V0: torch.Tensor | None = None):
    """``V_{k+1} = T V_k`` from ``V_0 = 0`` until the change is below ``tol``.

    How many backups: the sup-norm change shrinks by ``gamma`` per backup and the first
    one (from ``V_0 = 0``) is at most ``r_max = max |r(s, a)|``, so the ``"sup"`` test
    fires after at most ``value_iteration_bound(gamma, r_max * (1 - gamma), tol)``
    backups, about ``log(tol / r_max) / log(gamma)``: 2,300 for ``gamma = 0.99``,
    ``r_max = 1`` and the default ``tol``, but 23 million for ``gamma = 0.999999``, far
    beyond the default cap (then a :class:`ConvergenceWarning`). An accuracy ``eps``
    (``||V_k - V*||_inf <= eps``) is guaranteed after ``value_iteration_bound(gamma,
    r_max, eps)`` backups; run exactly that many with ``tol=0``.

    Args:
        mdp: the MDP.
        tol: stop when the change is ``< tol`` (reward units). ``tol=0`` turns the test
            off: exactly ``max_iterations`` backups, ``converged`` is ``False`` and no
            warning is issued.
        max_iterations: at most this many backups.
        stopping: ``"sup"``: the change is ``||V_{k+1} - V_k||_inf``, which bounds the
            error ``||V_{k+1} - V*||_inf <= gamma/(1-gamma) * change``;
            ``"span"``: the change is ``max(V_{k+1}-V_k) - min(V_{k+1}-V_k)`` (pymdptoolbox's rule).
        V0: ``(S,)`` finite start values (default 0).

    Returns:
        ``(V, policy, history)``: ``V`` ``(S,)`` float64; ``policy`` ``(S,)`` int64, greedy
        with respect to ``V``; ``history`` a :class:`ConvergenceHistory`: the list of
        per-iteration sup-norm changes (``len(history)`` is the number of backups), with
        ``history.converged`` (the stopping test was met) and ``history.last_change``.

    Raises:
        ValueError / ArgumentTypeError: naming the argument (``mdp``, ``tol``,
            ``max_iterations``, ``stopping``, or ``V0`` that is not an ``(S,)`` tensor of
            finite numbers).

    Warns:
        ConvergenceWarning: naming ``max_iterations`` and ``tol``, with the last change,
        when the cap stopped the run before the change fell below ``tol > 0``.

    References:
        Sutton and Barto 2018, eq. 4.10 and the box "Value Iteration" (section 4.4);
        CS182 notes Algorithm 15.
    """
    _check_mdp(mdp)
    tol = checks.nonnegative_float("tol", tol)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    checks.one_of("stopping", stopping, ("sup", "span"))
    if V0 is None:
        V = torch.zeros(mdp.num_states, dtype=torch.float64, device=mdp.device)
    else:
        V = _check_values("V0", mdp, V0, (mdp.num_states,), batched=False).clone()
    history, converged = [], False
    for _ in range(max_iterations):
        V_new = _q_from_v(mdp, V).amax(-1)
        diff = V_new - V
        sup = diff.abs().max()
        change = sup if stopping == "sup" else diff.max() - diff.min()
        sup, change = torch.stack([sup, change]).tolist()  # one device sync per iteration
        history.append(sup)
        V = V_new
        if change < tol:
            converged = True
            break
    history = _finish("value_iteration", history, converged, tol, max_iterations, change, mdp.gamma, span=stopping == "span")
    return V, _q_from_v(mdp, V).argmax(-1), history


def value_iteration_bound(gamma: float, r_max: float, tol: float | None = None, *, delta: float | None = None) -> int:
    """The number of backups after which value iteration from ``V_0 = 0`` is guaranteed ``tol``-accurate (sup-norm error at most ``tol``).

    With rewards in ``[0, r_max]``, ``||V_0 - V*||_inf <= r_max / (1 - gamma)`` and each backup
    shrinks the error by ``gamma``, so ``k`` backups suffice when
    ``gamma**k * r_max / (1 - gamma) <= tol``. Returns the smallest such ``k >= 0``.

    ``delta=`` is the argument's earlier name (the book writes the TD error as delta, so
    the tolerance became ``tol``); it still works, with a ``DeprecationWarning``.

    Raises:
        ValueError / ArgumentTypeError: naming the argument, for ``gamma`` outside ``(0, 1)``
            or a non-positive ``r_max`` or ``tol``, or when both ``tol`` and ``delta`` are given.

    References:
        Sutton and Barto 2018, section 4.4; Banach's fixed-point theorem (a priori bound).
    """
    if delta is not None:
        if tol is not None:
            raise ValueError("tol and delta are the same argument (delta is its old name): give tol only")
        import warnings

        warnings.warn("value_iteration_bound(delta=...) is now tol=...", DeprecationWarning, stacklevel=2)
        tol = delta
    if tol is None:
        raise checks.ArgumentTypeError("tol must be a positive number, got None")
    gamma = checks.unit_interval("gamma", gamma, closed_right=False)
    if gamma == 0:
        raise ValueError("gamma must be in (0, 1) for the bound, got 0.0")
    r_max = checks.positive_float("r_max", r_max)
    tol = checks.positive_float("tol", tol)
    bound0 = r_max / (1 - gamma)
    if bound0 <= tol:
        return 0
    k = max(0, int(np.ceil(np.log(tol / bound0) / np.log(gamma))))
    while gamma**k * bound0 > tol:  # round-off in the logarithms
        k += 1
    while k > 0 and gamma ** (k - 1) * bound0 <= tol:
        k -= 1
    return k


def policy_iteration(mdp: FiniteMDP, max_iterations: int = 1_000, policy0: torch.Tensor | None = None):
    """Exact evaluation (one linear solve) then greedy improvement, until the policy is stable.

    Policy iteration stops after finitely many rounds (at most ``A**S`` policies, in
    practice a handful: 11 on FrozenLake 8x8), so the cap is rarely reached.

    Args:
        mdp: the MDP.
        max_iterations: at most this many evaluate-improve rounds.
        policy0: ``(S,)`` start policy (default: action 0 everywhere); ``(S, A)``
            probabilities start from their argmax.

    Returns:
        ``(V, policy, history)``: ``V = V^pi`` ``(S,)`` of the final ``policy`` ``(S,)``
        int64; ``history`` a :class:`ConvergenceHistory`: the list of per-iteration
        sup-norm changes ``||V^{pi_{k+1}} - V^{pi_k}||_inf`` (the first against ``V = 0``),
        one per evaluation, with ``history.converged`` (the policy is stable, hence optimal).

    Raises:
        ValueError / ArgumentTypeError: naming ``mdp``, ``max_iterations`` or ``policy0``.

    Warns:
        ConvergenceWarning: naming ``max_iterations``, when the cap stopped the rounds before
        the policy was stable; ``V`` and ``policy`` are then the last evaluated pair.

    Ties in the improvement step keep the current action when it is among the best,
    so the loop cannot cycle between equally good policies.

    References:
        Sutton and Barto 2018, section 4.3, the box "Policy Iteration"; CS182 notes
        Algorithms 13-14; Howard, *Dynamic Programming and Markov Processes*, 1960.
    """
    _check_mdp(mdp)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    S = mdp.num_states
    policy = torch.zeros(S, dtype=torch.long, device=mdp.device) if policy0 is None else _policy_probs(mdp, policy0).argmax(-1)
    V_prev = torch.zeros(S, dtype=torch.float64, device=mdp.device)
    history = []
    for _ in range(max_iterations):
        V = _solve(mdp, *_deterministic_matrices(mdp, policy))
        history.append((V - V_prev).abs().max().item())
        Q = _q_from_v(mdp, V)
        current = Q.gather(1, policy[:, None])[:, 0]
        best = Q.amax(-1)
        # improve only where another action is better by more than round-off
        improve = best > current + 1e-12 * (1 + best.abs())
        if not bool(improve.any()):
            return V, policy, _finish("policy_iteration", history, True, None, max_iterations, history[-1], mdp.gamma)
        if len(history) == max_iterations:  # the cap: return the last evaluated pair, V = V^policy
            break
        policy = torch.where(improve, Q.argmax(-1), policy)
        V_prev = V
    return V, policy, _finish("policy_iteration", history, False, None, max_iterations, history[-1], mdp.gamma)


def q_iteration(mdp: FiniteMDP, tol: float = 1e-10, max_iterations: int = 100_000):
    """``Q_{k+1} = r + gamma P max_a' Q_k(., a')`` from ``Q_0 = 0`` until the sup-norm change is below ``tol``.

    The change shrinks by ``gamma`` per iteration, as in :func:`value_iteration` (the
    same iteration bound applies).

    Args:
        mdp: the MDP.
        tol: stop when the change is ``< tol`` (reward units); ``tol=0``: exactly
            ``max_iterations`` iterations, no warning.
        max_iterations: at most this many backups.

    Returns:
        ``(Q, history)``: ``Q`` ``(S, A)`` float64, ``history`` a :class:`ConvergenceHistory`
        (the list of per-iteration sup-norm changes ``||Q_{k+1} - Q_k||_inf``, with
        ``history.converged``). ``greedy_policy(Q)`` is the argmax policy.

    Raises:
        ValueError / ArgumentTypeError: naming ``mdp``, ``tol`` or ``max_iterations``.

    Warns:
        ConvergenceWarning: naming ``max_iterations`` and ``tol``, with the last change,
        when the cap stopped the run before the change fell below ``tol > 0``.

    References:
        Sutton and Barto 2018, eq. 3.20 (Bellman optimality for ``q*``); CS182 notes
        section 7.5.5-7.5.6 (Algorithm 18 with the tabular "fit").
    """
    _check_mdp(mdp)
    tol = checks.nonnegative_float("tol", tol)
    max_iterations = checks.positive_int("max_iterations", max_iterations)
    Q = torch.zeros(mdp.num_states, mdp.num_actions, dtype=torch.float64, device=mdp.device)
    history, converged = [], False
    for _ in range(max_iterations):
        Q_new = _q_from_v(mdp, Q.amax(-1))
        history.append((Q_new - Q).abs().max().item())
        Q = Q_new
        if history[-1] < tol:
            converged = True
            break
    return Q, _finish("q_iteration", history, converged, tol, max_iterations, history[-1], mdp.gamma)


# --------------------------------------------------------------------------------------
# Sampling from the tables (the widget's episodes)
# --------------------------------------------------------------------------------------


def sample_episode(mdp: FiniteMDP, policy: torch.Tensor, epsilon: float = 0.0, seed: int = 0, max_steps: int = 100) -> dict:
    """One episode from the MDP's tables under the epsilon-greedy version of a deterministic policy.

    Starts from ``s_0 ~ initial_distribution``; stops on entering a terminal state or
    after ``max_steps`` actions.

    Returns:
        dict with ``states`` (list of ``T + 1`` ints), ``actions`` and ``rewards`` (``T``
        each), ``return`` (undiscounted), ``discounted_return`` and ``terminated`` (bool).

    Raises:
        ValueError / ArgumentTypeError: naming the argument.
    """
    _check_mdp(mdp)
    actions_of = _policy_probs(mdp, policy).argmax(-1).cpu().numpy()
    epsilon = checks.unit_interval("epsilon", epsilon)
    max_steps = checks.positive_int("max_steps", max_steps)
    rng = np.random.default_rng(checks.nonnegative_int("seed", seed))
    P = mdp.transitions.cpu().numpy()
    R = mdp.rewards.cpu().numpy()
    R3 = None if mdp.next_state_rewards is None else mdp.next_state_rewards.cpu().numpy()
    terminal = mdp.terminal.cpu().numpy()
    s = int(rng.choice(mdp.num_states, p=mdp.initial_distribution.cpu().numpy()))
    states, actions, rewards = [s], [], []
    for _ in range(max_steps):
        a = int(rng.integers(mdp.num_actions)) if rng.random() < epsilon else int(actions_of[s])
        s_next = int(rng.choice(mdp.num_states, p=P[s, a]))
        rewards.append(float(R[s, a] if R3 is None else R3[s, a, s_next]))
        s = s_next
        actions.append(a)
        states.append(s)
        if terminal[s]:
            break
    disc = float(sum(r * mdp.gamma**t for t, r in enumerate(rewards)))
    return {"states": states, "actions": actions, "rewards": rewards, "return": float(sum(rewards)),
            "discounted_return": disc, "terminated": bool(terminal[states[-1]])}
