"""Chapter 5: the math of baselines and advantages (pure functions, tensors in, tensors out).

Everything here is a formula of the chapter; the training loop that uses them is
:mod:`course_lib.rl.actor_critic`, the exact-enumeration variance tools are in
:mod:`course_lib.rl.variance`.

==============================  =====================================================
function                        formula
==============================  =====================================================
:func:`td_target`               ``y_t = r_t + gamma (1 - terminated_t) V(s_{t+1})``
:func:`n_step_return`           ``r_t + ... + gamma^(n-1) r_{t+n-1} + gamma^n V(s_{t+n})``
:func:`gae`                     ``A_t = delta_t + gamma lam (1 - episode_ends_t) A_{t+1}``
:func:`optimal_baseline`        ``b*_d = sum g_d^2 R / sum g_d^2``
:func:`importance_weights`      ``w_t = prod_{k<=t} pi_new(a_k|s_k) / pi_old(a_k|s_k)``
:func:`effective_sample_size`   ``(sum w)^2 / sum w^2``
==============================  =====================================================

Episode ends (the convention of the whole module). Shapes are ``(T,)`` or
``(N, T)``, time on the last axis, ``N`` parallel environments laid out in time
(several episodes may follow each other in a row):

- ``next_values[t] = V(s_{t+1})``: for a step that ends an episode this is the
  value of the *final* observation of that episode (``info["final_obs"]`` with
  SAME_STEP autoreset), not of the next episode's first observation;
- ``terminated[t] = 1`` when ``s_{t+1}`` is terminal: its value is 0 by
  definition, so nothing is bootstrapped;
- ``episode_ends[t] = 1`` when the episode ends after step ``t`` for either
  reason (terminated, or truncated by a time limit). A truncated episode is
  *not* over for the MDP: its target bootstraps from ``V(s_{t+1})``, and only the
  recursion across the episode boundary is cut.
"""

from __future__ import annotations

import torch

from course_lib import checks

__all__ = [
    "td_target",
    "n_step_return",
    "gae",
    "optimal_baseline",
    "importance_weights",
    "effective_sample_size",
]


def _as_float(name: str, value, like: torch.Tensor | None = None) -> torch.Tensor:
    if isinstance(value, (str, bytes)) or value is None:
        raise checks.ArgumentTypeError(f"{name} must be a tensor-like array of numbers, got {type(value).__name__}")
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise checks.ArgumentTypeError(f"{name} must be a tensor-like array of numbers: {err}") from None
    if t.ndim not in (1, 2) or t.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (T,) or (N, T) with T >= 1, got {tuple(t.shape)}")
    if like is not None and t.shape != like.shape:
        raise ValueError(f"{name} must have the same shape as rewards {tuple(like.shape)}, got {tuple(t.shape)}")
    return t.to(torch.float64)


def _as_flags(name: str, value, like: torch.Tensor) -> torch.Tensor:
    t = _as_float(name, value, like)
    checks.binary(name, t)
    return t


def _out_dtype(*tensors) -> torch.dtype:
    for t in tensors:
        t = torch.as_tensor(t)
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def td_target(rewards, next_values, terminated, gamma: float) -> torch.Tensor:
    """The bootstrapped one-step target ``y_t = r_t + gamma (1 - terminated_t) V(s_{t+1})``.

    A truncated step (time limit) bootstraps: ``next_values`` there is the value of
    the final observation. Only ``terminated`` zeroes the bootstrap.

    Args:
        rewards: ``(T,)`` or ``(N, T)``.
        next_values: same shape, ``V(s_{t+1})``.
        terminated: same shape, 0/1 (bool accepted).
        gamma: discount in ``[0, 1]``.

    Returns:
        the targets, same shape, dtype of ``rewards`` (float).

    Raises:
        ValueError: for shapes that differ, ``terminated`` not 0/1, ``gamma`` outside
            ``[0, 1]`` (a non-number gives :class:`checks.ArgumentTypeError`, also a
            ValueError).

    References:
        Sutton & Barto (2018), eq. 6.2 (the TD(0) target) and section 13.5 (the
        one-step actor-critic); CS182 notes section 7.4 (bootstrapped estimate
        ``r + gamma V(s')``).
    """
    gamma = checks.unit_interval("gamma", gamma)
    r = _as_float("rewards", rewards)
    v = _as_float("next_values", next_values, r)
    term = _as_flags("terminated", terminated, r)
    return (r + gamma * (1.0 - term) * v).to(_out_dtype(rewards, next_values))


def n_step_return(rewards, values, next_values, terminated, episode_ends, gamma: float, n: int) -> torch.Tensor:
    """n-step bootstrapped returns ``r_t + gamma r_{t+1} + ... + gamma^(m-1) r_{t+m-1} + gamma^m V(s_{t+m})``.

    ``m = min(n, steps left in the episode, steps left in the row)``. The sum stops
    at an episode end; it bootstraps from ``next_values`` there unless the step
    ``terminated``; at the end of a row (the rollout) it bootstraps from the last
    ``next_values``. ``n = 1`` gives :func:`td_target`; ``n >= T`` gives the
    Monte Carlo return bootstrapped only where the data stops.

    Args:
        rewards, values, next_values, terminated, episode_ends: ``(T,)`` or
            ``(N, T)`` (``values`` is unused by the formula but checked, so the
            call matches :func:`gae`'s).
        gamma: discount in ``[0, 1]``.
        n: steps before bootstrapping (>= 1).

    Returns:
        same shape as ``rewards``.

    Raises:
        ValueError: as :func:`gae`, and for ``n < 1``.

    References:
        Sutton & Barto (2018), eq. 7.1 (the n-step return); CS182 notes section 7.4.
    """
    n = checks.positive_int("n", n)
    r, _, nv, term, ends = _check_gae_inputs(rewards, values, next_values, terminated, episode_ends, gamma, 1.0)
    T = r.shape[-1]
    out = torch.empty_like(r)
    for t in range(T):
        total = torch.zeros_like(r[..., 0])
        disc = torch.ones_like(total)
        alive = torch.ones_like(total)  # 1 until the sum has stopped
        for k in range(t, min(t + n, T)):
            total = total + alive * disc * r[..., k]
            disc = disc * gamma
            last = (k == min(t + n, T) - 1)
            stop = ends[..., k] if not last else torch.ones_like(total)
            # bootstrap where the sum stops now (an episode end or the n-th step)
            total = total + alive * stop * disc * (1.0 - term[..., k]) * nv[..., k]
            alive = alive * (1.0 - stop)
        out[..., t] = total
    return out.to(_out_dtype(rewards, values))


def _check_gae_inputs(rewards, values, next_values, terminated, episode_ends, gamma, lam):
    gamma = checks.unit_interval("gamma", gamma)
    lam = checks.unit_interval("lam", lam)
    r = _as_float("rewards", rewards)
    v = _as_float("values", values, r)
    nv = _as_float("next_values", next_values, r)
    term = _as_flags("terminated", terminated, r)
    ends = _as_flags("episode_ends", episode_ends, r)
    if bool((term > ends).any()):
        raise ValueError(
            "terminated marks a step where episode_ends does not: a terminated episode also ends "
            "(set episode_ends = terminated | truncated)"
        )
    return r, v, nv, term, ends


def gae(rewards, values, next_values, terminated, episode_ends, gamma: float, lam: float) -> torch.Tensor:
    """Generalized advantage estimation, with terminated and truncated episode ends.

    .. math::

        \\delta_t = r_t + \\gamma (1 - \\text{terminated}_t) V(s_{t+1}) - V(s_t), \\qquad
        \\hat A_t = \\delta_t + \\gamma \\lambda (1 - \\text{episode\\_ends}_t) \\hat A_{t+1},

    computed backwards from ``A_T = 0`` (the end of the row), in float64. ``lam = 1``
    gives the Monte Carlo advantage (discounted reward-to-go, bootstrapped where
    the data stops, minus ``V``); ``lam = 0`` gives the TD error ``delta_t``.

    Args:
        rewards: ``(T,)`` or ``(N, T)``, time on the last axis.
        values: same shape, ``V(s_t)``.
        next_values: same shape, ``V(s_{t+1})`` (the final observation's value where
            an episode was truncated).
        terminated: same shape, 0/1: ``s_{t+1}`` is terminal.
        episode_ends: same shape, 0/1: the episode ends after step ``t`` (terminated
            or truncated).
        gamma: discount in ``[0, 1]``.
        lam: the GAE ``lambda`` in ``[0, 1]``.

    Returns:
        the advantages ``A_t``, same shape, dtype of ``values`` (float). Add
        ``values`` to get the critic's ``TD(lambda)`` regression targets.

    Raises:
        ValueError: for mismatched shapes, flags that are not 0/1, ``terminated``
            set where ``episode_ends`` is not, ``gamma`` or ``lam`` outside ``[0, 1]``.

    References:
        Schulman et al. (2016), eq. 16 (GAE) and eq. 11-14 (lambda = 0 and 1);
        Mnih et al. (2016), Algorithm S3 (the n-step advantage of A3C).
    """
    r, v, nv, term, ends = _check_gae_inputs(rewards, values, next_values, terminated, episode_ends, gamma, lam)
    delta = r + gamma * (1.0 - term) * nv - v
    adv = torch.empty_like(delta)
    running = torch.zeros_like(delta[..., 0])
    for t in range(delta.shape[-1] - 1, -1, -1):
        running = delta[..., t] + gamma * lam * (1.0 - ends[..., t]) * running
        adv[..., t] = running
    return adv.to(_out_dtype(values, rewards))


def optimal_baseline(grad_log_probs, returns) -> torch.Tensor:
    """The variance-minimising constant baseline, one value per parameter.

    For the estimator ``g = (sum_t grad log pi(a_t|s_t)) (R(tau) - b)``, the trace of
    its covariance is a quadratic in each ``b_d`` with minimiser
    ``b*_d = E[g_d^2 R] / E[g_d^2]``, estimated here from ``N`` trajectories as
    ``sum_i g_id^2 R_i / sum_i g_id^2``. A parameter whose score is 0 in every
    trajectory gets ``b*_d = 0`` (any value is optimal there).

    Exact expectations: pass rows scaled by ``sqrt(p(tau))`` (only ``g^2`` enters).

    Args:
        grad_log_probs: ``(N, D)``, row ``i`` is ``sum_t grad log pi(a_it|s_it)``.
        returns: ``(N,)``, ``R(tau_i)``.

    Returns:
        ``(D,)``, dtype of ``grad_log_probs``.

    Raises:
        ValueError: for shapes other than ``(N, D)`` and ``(N,)``, or ``N = 0``.

    References:
        Greensmith, Bartlett & Baxter (2004) (optimal baselines, the
        returns weighted by the squared score); Peters & Schaal (2008), "Reinforcement
        learning of motor skills with policy gradients" (the per-parameter form); CS182
        notes section 7.3.4.2 ("the average reward is not the best baseline").
    """
    if isinstance(grad_log_probs, (str, bytes)) or grad_log_probs is None:
        raise checks.ArgumentTypeError(f"grad_log_probs must be an (N, D) tensor, got {type(grad_log_probs).__name__}")
    g = torch.as_tensor(grad_log_probs)
    if g.ndim != 2 or g.shape[0] == 0:
        raise ValueError(f"grad_log_probs must have shape (N, D) with N >= 1, got {tuple(g.shape)}")
    if isinstance(returns, (str, bytes)) or returns is None:
        raise checks.ArgumentTypeError(f"returns must be an (N,) tensor, got {type(returns).__name__}")
    R = torch.as_tensor(returns)
    if R.shape != (g.shape[0],):
        raise ValueError(f"returns must have shape (N,) = ({g.shape[0]},), got {tuple(R.shape)}")
    g2 = g.to(torch.float64) ** 2
    num = (g2 * R.to(torch.float64)[:, None]).sum(0)
    den = g2.sum(0)
    b = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return b.to(g.dtype if g.is_floating_point() else torch.get_default_dtype())


def importance_weights(log_probs_new, log_probs_old, dones=None) -> torch.Tensor:
    """Per-step products of likelihood ratios ``w_t = prod_{k <= t} pi_new(a_k|s_k) / pi_old(a_k|s_k)``.

    The weight that makes a trajectory prefix sampled by ``pi_old`` count as one
    sampled by ``pi_new`` (the dynamics cancel). Its variance grows geometrically
    with ``t``: the "degenerate product of weights".

    Args:
        log_probs_new: ``(T,)`` or ``(N, T)``, ``log pi_new(a_t|s_t)``.
        log_probs_old: same shape, ``log pi_old(a_t|s_t)`` of the behaviour policy.
        dones: optional 0/1, same shape: the product restarts after an episode end.

    Returns:
        same shape, float64.

    Raises:
        ValueError: for mismatched shapes or ``dones`` not 0/1.

    References:
        CS182 notes section 7.3.5 (off-policy policy gradient); Precup, Sutton &
        Singh (2000), eq. 2 (per-decision importance sampling).
    """
    new = _as_float("log_probs_new", log_probs_new)
    old = _as_float("log_probs_old", log_probs_old, new)
    d = torch.zeros_like(new) if dones is None else _as_flags("dones", dones, new)
    logw = torch.empty_like(new)
    running = torch.zeros_like(new[..., 0])
    for t in range(new.shape[-1]):
        running = running + new[..., t] - old[..., t]
        logw[..., t] = running
        running = running * (1.0 - d[..., t])
    return logw.exp()


def effective_sample_size(weights, dim: int = 0) -> torch.Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights.

    Between 1 (one sample carries all the weight) and ``N`` (equal weights).

    Args:
        weights: non-negative, any shape with ``N >= 1`` entries along ``dim``.
        dim: the sample axis.

    Returns:
        the ESS, with ``dim`` reduced, float64.

    Raises:
        ValueError: for negative or non-finite weights, or an empty sample axis.

    References:
        Kong (1992); Owen (2013), *Monte Carlo theory, methods and examples*, eq. 9.13.
    """
    w = checks.tensor("weights", weights).to(torch.float64)
    if w.ndim == 0 or w.shape[dim] == 0:
        raise ValueError(f"weights must have at least one entry along dim={dim}, got shape {tuple(w.shape)}")
    checks.finite("weights", w)
    if bool((w < 0).any()):
        raise ValueError("weights must be non-negative")
    return w.sum(dim) ** 2 / (w**2).sum(dim).clamp_min(1e-300)
