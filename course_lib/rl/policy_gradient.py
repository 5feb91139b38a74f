"""Chapter 4: the policy and the math of REINFORCE (reward-to-go, the surrogate loss).

Williams 1992; Sutton & Barto 2018, §13.3 (the REINFORCE box); CS182 notes section 7.2-7.3.
The training loop that uses them is :mod:`course_lib.rl.reinforce`.

Symbols and shapes: see :mod:`course_lib.rl`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

from course_lib import checks
from course_lib.nets import mlp

__all__ = ["CategoricalPolicy", "GaussianPolicy", "gaussian_score", "ValueNetwork", "reward_to_go", "reinforce_loss"]


class CategoricalPolicy(nn.Module):
    """A softmax policy ``pi_theta(a | s) = softmax(f_theta(s) / temperature)_a``.

    ``f_theta`` is an MLP (:func:`mlp`) from observations to ``A`` logits. The module
    holds parameters only; episode state lives in the rollout code.

    Args:
        obs_dim: length of a (flat) observation vector.
        num_actions: number of discrete actions ``A`` (>= 2).
        hidden_sizes: widths of the hidden layers, e.g. ``(32,)`` or ``(64, 64)``.
        activation: hidden activation class (default ``nn.Tanh``).

    Shapes:
        ``obs``: ``(B, obs_dim)`` or ``(obs_dim,)``; ``logits``: ``(B, A)`` or ``(A,)``.

    Raises:
        ValueError: for a non-positive ``obs_dim``, ``num_actions < 2``, bad
            ``hidden_sizes``; and from the methods, for an observation of the wrong
            shape, a non-positive temperature, or one so small that ``logits /
            temperature`` overflows.

    Source: Sutton & Barto (2018), eq. 13.2 (soft-max in action preferences); the
    temperature is the Boltzmann temperature of that softmax.
    """

    def __init__(
        self,
        obs_dim: int,
        num_actions: int,
        hidden_sizes: Sequence[int] = (32,),
        activation: type[nn.Module] = nn.Tanh,
    ):
        super().__init__()
        checks.positive_int("obs_dim", obs_dim)
        checks.positive_int("num_actions", num_actions, minimum=2)
        hidden_sizes = checks.int_sizes("hidden_sizes", hidden_sizes)
        self.obs_dim = int(obs_dim)
        self.num_actions = int(num_actions)
        self.hidden_sizes = hidden_sizes
        self.net = mlp((self.obs_dim, *hidden_sizes, self.num_actions), activation)

    def _as_obs(self, obs) -> torch.Tensor:
        param = self.net[0].weight  # dtype and device of the parameters (cheaper than next(self.parameters()))
        obs = torch.as_tensor(obs, dtype=param.dtype, device=param.device)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs must have shape (B, {self.obs_dim}) or ({self.obs_dim},), "
                f"got {tuple(obs.shape)}"
            )
        return obs

    def logits(self, obs) -> torch.Tensor:
        """Unnormalised action preferences ``f_theta(obs)``: ``(B, A)`` or ``(A,)``."""
        return self.net(self._as_obs(obs))

    def _scaled_logits(self, obs, temperature) -> torch.Tensor:
        """``logits / temperature``, refusing a temperature so small that they overflow.

        Raises:
            ValueError: naming ``temperature`` when ``logits / temperature`` is not
                finite (the softmax would be NaN); ``greedy=True`` is the limit 0.
        """
        temperature = checks.temperature(temperature)
        logits = self.logits(obs)
        if temperature == 1.0:  # the common case: nothing to scale, nothing can overflow
            return logits
        scaled = logits / temperature
        if bool(torch.isfinite(logits).all()) and not bool(torch.isfinite(scaled).all()):
            raise ValueError(
                f"temperature={temperature!r} is so small that logits / temperature overflow to inf "
                f"and the action probabilities would be NaN; use greedy=True for the temperature -> 0 limit"
            )
        return scaled

    def forward(self, obs, temperature: float = 1.0) -> Categorical:
        """Return the action distribution ``Categorical(logits = f_theta(obs) / temperature)``.

        ``temperature`` > 1 flattens the distribution towards uniform; as it goes to 0
        the distribution concentrates on ``argmax`` of the logits (use
        :meth:`act` with ``greedy=True`` for that limit). Batch shape: ``(B,)`` or ``()``.
        """
        return Categorical(logits=self._scaled_logits(obs, temperature), validate_args=False)

    @torch.no_grad()
    def act(
        self,
        obs,
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Pick actions without building a graph: ``(B,)`` or ``()`` int64.

        Args:
            obs: ``(B, obs_dim)`` or ``(obs_dim,)``.
            temperature: sampling temperature (> 0); ignored when ``greedy``.
            greedy: take ``argmax`` of the logits instead of sampling.
            generator: optional ``torch.Generator`` (on the policy's device) for
                reproducible sampling that leaves the global RNG untouched.
        """
        if greedy:
            return self.logits(obs).argmax(dim=-1)
        probs = torch.softmax(self._scaled_logits(obs, temperature), dim=-1)
        flat = probs.reshape(-1, self.num_actions)
        return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


class GaussianPolicy(nn.Module):
    """A Gaussian policy for continuous actions: ``a ~ N(mu_theta(s), diag(exp(log_std))^2)``.

    The mean is an MLP of the observation; ``log_std`` is a learnt vector that
    does not depend on the state (the common choice in policy-gradient code).
    Holds parameters only.

    Args:
        obs_dim: length of a flat observation.
        action_dim: number of action components ``A_d``.
        hidden_sizes: widths of the mean network's hidden layers.
        init_log_std: initial value of every entry of ``log_std``.

    Shapes:
        ``obs``: ``(B, obs_dim)`` or ``(obs_dim,)``; the distribution has batch shape
        ``(B,)`` or ``()`` and event shape ``(A_d,)``, so ``log_prob`` sums over action
        components and returns ``(B,)`` or ``()`` (nats).

    Raises:
        ValueError: non-positive sizes, a non-finite ``init_log_std``; an observation of the wrong shape.

    References:
        Williams 1992, §6 (Gaussian units); Sutton & Barto (2018), §13.7, eq. 13.19.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden_sizes: Sequence[int] = (32,), init_log_std: float = 0.0):
        super().__init__()
        self.obs_dim = checks.positive_int("obs_dim", obs_dim)
        self.action_dim = checks.positive_int("action_dim", action_dim)
        hidden_sizes = checks.int_sizes("hidden_sizes", hidden_sizes)
        if isinstance(init_log_std, bool) or not isinstance(init_log_std, (int, float)) or not np.isfinite(init_log_std):
            raise ValueError(f"init_log_std must be a finite number, got {init_log_std!r}")
        self.mean_net = mlp((self.obs_dim, *hidden_sizes, self.action_dim), nn.Tanh)
        self.log_std = nn.Parameter(torch.full((self.action_dim,), float(init_log_std)))

    def forward(self, obs) -> Independent:
        """``Independent(Normal(mu_theta(obs), exp(log_std)), 1)``."""
        param = self.log_std
        obs = torch.as_tensor(obs, dtype=param.dtype, device=param.device)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape (B, {self.obs_dim}) or ({self.obs_dim},), got {tuple(obs.shape)}")
        mean = self.mean_net(obs)
        return Independent(Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False), 1)


def gaussian_score(actions: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The score of ``log N(a; mu, sigma^2)`` with ``sigma = exp(log_std)``, per component.

    ``d/d mu = (a - mu) / sigma^2`` and ``d/d log_std = (a - mu)^2 / sigma^2 - 1``.

    Args:
        actions, mean: float tensors of one shape, e.g. ``(B, A_d)``.
        log_std: float tensor broadcastable to that shape.

    Returns:
        ``(d_mean, d_log_std)``, both of the broadcast shape.

    Raises:
        ValueError: non-float tensors or shapes that do not broadcast.
        ArgumentTypeError: arguments that are not tensors.

    References:
        Williams 1992, §6; Sutton & Barto (2018), Exercise 13.4.
    """
    for name, value in (("actions", actions), ("mean", mean), ("log_std", log_std)):
        checks.tensor(name, value)
        if not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    try:
        diff = actions - mean
        inv_var = torch.exp(-2 * log_std)
        return diff * inv_var, diff**2 * inv_var - 1
    except RuntimeError as err:
        raise ValueError(f"actions {tuple(actions.shape)}, mean {tuple(mean.shape)} and log_std {tuple(log_std.shape)} do not broadcast") from err


class ValueNetwork(nn.Module):
    """A state-value critic ``V_w(s)``: an MLP from observations to one number.

    Used as the learned baseline of REINFORCE with baseline (``ReinforceConfig(baseline="value")``)
    and by the actor-critic methods of a later chapter. Parameters only, no state.

    Args:
        obs_dim: length of a (flat) observation vector.
        hidden_sizes: widths of the hidden layers, e.g. ``(64,)``.
        activation: hidden activation class (default ``nn.Tanh``).

    Shapes:
        ``obs``: ``(B, obs_dim)`` -> ``(B,)``; ``(obs_dim,)`` -> ``()``.

    Raises:
        ValueError: for a non-positive ``obs_dim`` or bad ``hidden_sizes``; from
            ``forward``, for an observation of the wrong shape.

    Source: Sutton & Barto (2018), section 13.4 (the state-value weights ``w`` of
    its "REINFORCE with Baseline" box; the book numbers no algorithms).
    """

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int] = (64,), activation: type[nn.Module] = nn.Tanh):
        super().__init__()
        checks.positive_int("obs_dim", obs_dim)
        hidden_sizes = checks.int_sizes("hidden_sizes", hidden_sizes)
        self.obs_dim = int(obs_dim)
        self.hidden_sizes = hidden_sizes
        self.net = mlp((self.obs_dim, *hidden_sizes, 1), activation)

    def forward(self, obs) -> torch.Tensor:
        """``V_w(obs)``: ``(B,)`` for ``(B, obs_dim)`` input, ``()`` for ``(obs_dim,)``."""
        param = self.net[0].weight  # dtype and device of the parameters
        obs = torch.as_tensor(obs, dtype=param.dtype, device=param.device)
        if obs.ndim not in (1, 2) or obs.shape[-1] != self.obs_dim:
            raise ValueError(
                f"obs must have shape (B, {self.obs_dim}) or ({self.obs_dim},), got {tuple(obs.shape)}"
            )
        return self.net(obs).squeeze(-1)


# --------------------------------------------------------------------------------------
# Pure math: returns and the loss
# --------------------------------------------------------------------------------------


def reward_to_go(rewards, gamma: float, dones=None) -> torch.Tensor:
    """Discounted reward-to-go ``G_t = sum_{k >= t} gamma^(k - t) r_k``.

    Computed by the backward recursion ``G_t = r_t + gamma * G_{t+1}`` (with
    ``G_T = 0``), in float64 internally.

    Args:
        rewards: ``(T,)`` (one episode) or ``(N, T)`` (``N`` episodes, or ``N``
            environments laid out in time). Tensors, NumPy arrays and lists are
            accepted.
        gamma: discount in ``[0, 1]``. ``gamma=1`` gives the undiscounted
            reward-to-go; ``gamma=0`` gives ``G_t = r_t``.
        dones: optional boolean array of the same shape. ``dones[..., t]`` True means
            an episode ended at step ``t`` (terminated *or* truncated); the sum then
            stops there, so returns never leak across episodes in a block that holds
            several back-to-back episodes. Without it the whole row is one episode.

    Returns:
        a float tensor of the same shape as ``rewards`` (dtype of ``rewards`` if it is
        floating point, else float32), on the same device.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``rewards`` or ``dones``
            not an array of numbers (a str, bool or complex rewards).
        ValueError: if ``rewards`` is not 1-D or 2-D (or has no time steps), if
            ``gamma`` is outside ``[0, 1]``, or if ``dones`` has another shape or
            entries other than 0 and 1.

    Source: Sutton & Barto (2018), eq. 3.8 (return) and the REINFORCE box of §13.3
    (the ``G`` used by REINFORCE); "reward-to-go" in Spinning Up, Part 3.
    """
    gamma = checks.unit_interval("gamma", gamma)
    if isinstance(rewards, (str, bytes)) or rewards is None:
        raise checks.ArgumentTypeError(f"rewards must be a tensor-like array of numbers, got {type(rewards).__name__}")
    try:
        r = torch.as_tensor(rewards)
    except (TypeError, ValueError, RuntimeError) as e:
        raise checks.ArgumentTypeError(f"rewards must be a tensor-like array of numbers: {e}") from None
    if r.dtype == torch.bool or r.is_complex():
        raise checks.ArgumentTypeError(f"rewards must be real numbers, got dtype {r.dtype}")
    if r.ndim not in (1, 2):
        raise ValueError(f"rewards must have shape (T,) or (N, T), got {tuple(r.shape)}")
    if r.shape[-1] == 0:
        raise ValueError(f"rewards must have at least one time step, got shape {tuple(r.shape)}")
    out_dtype = r.dtype if r.is_floating_point() else torch.get_default_dtype()
    r64 = r.to(torch.float64)
    if dones is None:
        not_done = torch.ones_like(r64)
    else:
        try:
            d = torch.as_tensor(dones, device=r.device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise checks.ArgumentTypeError(f"dones must be a tensor-like array of 0/1 flags: {e}") from None
        if d.shape != r.shape:
            raise ValueError(
                f"dones must have the same shape as rewards {tuple(r.shape)}, got {tuple(d.shape)}"
            )
        checks.binary("dones", d)
        not_done = 1.0 - d.to(torch.float64)
    g = torch.empty_like(r64)
    running = torch.zeros_like(r64[..., 0])
    for t in range(r64.shape[-1] - 1, -1, -1):
        # an episode that ends at t contributes nothing from t+1 on (reset the sum)
        running = r64[..., t] + gamma * not_done[..., t] * running
        g[..., t] = running
    return g.to(out_dtype)




def reinforce_loss(log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Surrogate loss ``L(theta) = -mean(log pi_theta(a_t | s_t) * w_t)``.

    The weights (returns, reward-to-go, or advantages) are detached: they are
    constants of the estimator, not functions of ``theta``. Hence
    ``-grad L = mean_t w_t grad log pi_theta(a_t | s_t)``, the REINFORCE estimate of
    ``grad J`` up to a positive constant: with ``log_probs`` of shape ``(N, T)`` for
    ``N`` trajectories of ``T`` steps, ``-T * grad L`` is exactly the Monte-Carlo
    estimate ``(1/N) sum_i sum_t w_it grad log pi(a_it | s_it)``. The constant is
    absorbed by the learning rate (Spinning Up averages over steps the same way).
    ``L`` itself is not the objective: its value says little about progress.

    Args:
        log_probs: ``log pi_theta(a_t | s_t)`` of the actions taken, any shape,
            differentiable.
        weights: same shape as ``log_probs``.

    Returns:
        a scalar tensor.

    Raises:
        ArgumentTypeError (a TypeError and a ValueError): ``log_probs`` not a
            floating-point ``torch.Tensor`` (a numpy array, a list).
        ValueError: if the shapes differ or the tensors are empty.

    Source: Williams (1992), eq. 9 (REINFORCE); Sutton & Barto (2018), eq. 13.8 and
    the REINFORCE box of §13.3; CS182 notes section 7.2.
    """
    log_probs = checks.tensor("log_probs", log_probs)
    if not log_probs.is_floating_point():
        raise checks.ArgumentTypeError(f"log_probs must be a floating-point tensor, got dtype {log_probs.dtype}")
    if isinstance(weights, (str, bytes)) or weights is None:
        raise checks.ArgumentTypeError(f"weights must be a tensor-like array of numbers, got {type(weights).__name__}")
    weights = torch.as_tensor(weights, dtype=log_probs.dtype, device=log_probs.device)
    if weights.shape != log_probs.shape:
        raise ValueError(
            f"weights must have the same shape as log_probs {tuple(log_probs.shape)}, "
            f"got {tuple(weights.shape)}"
        )
    if log_probs.numel() == 0:
        raise ValueError("log_probs and weights must not be empty")
    return -(log_probs * weights.detach()).mean()


