"""Finite MDPs given by their tables (Chapter 6): :class:`FiniteMDP`, its checks, and :func:`random_mdp`.

Part of :mod:`course_lib.rl.dynamic_programming`, which imports every name here
(``rl.dynamic_programming.FiniteMDP`` and ``rl.FiniteMDP`` are these) and whose backups
and solvers take a :class:`FiniteMDP`. The toy-text environments of gymnasium
(FrozenLake, CliffWalking, Taxi) become one with :meth:`FiniteMDP.from_gymnasium`.

Shapes: ``S`` states, ``A`` actions, ``N`` value functions at once. Tables are float64
and live on one device (``mdp.to("cuda")``).

References:
    R. S. Sutton and A. G. Barto, *Reinforcement Learning: An Introduction*, 2nd ed.,
    2018, section 3.1 (the MDP), eq. 3.2-3.5 (``p`` and ``r(s, a)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from course_lib import checks

__all__ = ["FiniteMDP", "random_mdp"]



@dataclass(frozen=True, eq=False)  # eq=False: fields are tensors (no elementwise ==)
class FiniteMDP:
    """A finite, discounted MDP given by its tables.

    Args:
        transitions: ``(S, A, S)`` float64, ``transitions[s, a, s'] = p(s' | s, a)``;
            every ``(s, a)`` row sums to 1. Any strides: pymdptoolbox's ``(A, S, S)`` array
            seen through ``.transpose(0, 1)`` is kept as that view, and the backups multiply
            on its storage without a copy.
        rewards: ``(S, A)`` expected reward ``r(s, a) = E[r | s, a]`` (reward units).
        gamma: discount factor in ``[0, 1)``.
        initial_distribution: ``(S,)`` distribution of ``s_0``; ``None`` means uniform.
        terminal: ``(S,)`` bool mask of terminal states (absorbing with reward 0);
            ``None`` means none are marked.
        grid_shape: ``(rows, cols)`` for grid worlds (drawing only), else ``None``.
        name: a label for printing.
        next_state_rewards: optional ``(S, A, S)`` reward of each transition, used only to
            sample episodes with their actual rewards; ``None``: the reward of a sampled
            step is ``r(s, a)``.

    Raises:
        ValueError: naming the field, for a wrong shape; non-finite or negative
            probabilities; rows of ``transitions`` (or ``initial_distribution``) that do
            not sum to 1; non-finite ``rewards`` or ``next_state_rewards``; a terminal
            state that is not absorbing or has a non-zero reward (the message names the
            state and the action); ``gamma`` outside ``[0, 1)``; a ``grid_shape`` that is
            not ``(rows, cols)`` with ``rows * cols = S``.
        ArgumentTypeError: (a TypeError and a ValueError) for a non-numeric ``gamma`` or
            table, a ``terminal`` that is not bool, a ``name`` that is not a str.

    References:
        Sutton and Barto 2018, section 3.1 (the MDP), eq. 3.2-3.5 (``p`` and ``r(s, a)``).
    """

    transitions: torch.Tensor
    rewards: torch.Tensor
    gamma: float
    initial_distribution: torch.Tensor | None = None
    terminal: torch.Tensor | None = None
    grid_shape: tuple | None = None
    name: str = "mdp"
    next_state_rewards: torch.Tensor | None = None

    def __post_init__(self):
        P = _as_float64("transitions", self.transitions)
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
            raise ValueError(f"transitions must have shape (S, A, S), got {tuple(P.shape)}")
        S, A = P.shape[0], P.shape[1]
        R = _as_float64("rewards", self.rewards, device=P.device)
        if R.shape != (S, A):
            raise ValueError(f"rewards must have shape (S, A) = ({S}, {A}), got {tuple(R.shape)}")
        _require_finite("rewards", R)
        # Two passes over the (S, A, S) table instead of four (it is 320 MB at S = 2,000, A = 10):
        # the row sums are finite only when every entry is (a NaN or an infinity reaches its
        # row's sum, and non-negative entries cannot cancel one), and the minimum checks the sign.
        row_sums = P.sum(-1)  # (S, A)
        if not bool(torch.isfinite(row_sums).all()):
            _require_finite("transitions", P)
        if P.amin().item() < 0:  # P is not empty: S, A >= 1 was checked above
            raise ValueError("transitions must be non-negative, got a negative probability")
        row_error = (row_sums - 1).abs().max().item()
        if row_error > 1e-9:
            raise ValueError(f"transitions: every (s, a) row must sum to 1 (worst row is off by {row_error:.3g})")
        gamma = checks.unit_interval("gamma", self.gamma, closed_right=False)
        p0 = self.initial_distribution
        if p0 is None:
            p0 = torch.full((S,), 1.0 / S, dtype=torch.float64, device=P.device)
        p0 = _as_float64("initial_distribution", p0, device=P.device)
        if p0.shape != (S,):
            raise ValueError(f"initial_distribution must be a distribution of shape ({S},), got shape {tuple(p0.shape)}")
        _require_finite("initial_distribution", p0)
        if bool((p0 < 0).any()) or abs(p0.sum().item() - 1) > 1e-9:
            raise ValueError(f"initial_distribution must be non-negative and sum to 1, got min {p0.min().item():.3g} "
                             f"and sum {p0.sum().item():.6g}")
        terminal = self.terminal
        terminal = torch.zeros(S, dtype=torch.bool, device=P.device) if terminal is None else torch.as_tensor(terminal, device=P.device)
        if terminal.shape != (S,) or terminal.dtype != torch.bool:
            raise ValueError(f"terminal must be a bool tensor of shape ({S},), got {terminal.dtype} of shape {tuple(terminal.shape)}")
        if self.grid_shape is not None:
            grid = self.grid_shape
            if (isinstance(grid, (str, bytes)) or not hasattr(grid, "__len__") or len(grid) != 2
                    or not all(isinstance(g, (int, np.integer)) and not isinstance(g, (bool, np.bool_)) for g in grid)
                    or grid[0] * grid[1] != S):
                raise ValueError(f"grid_shape must be (rows, cols) with rows * cols = S = {S}, got {grid!r}")
        if not isinstance(self.name, str):
            raise checks.ArgumentTypeError(f"name must be a str, got {type(self.name).__name__}")
        R3 = self.next_state_rewards
        if R3 is not None:
            R3 = _as_float64("next_state_rewards", R3, device=P.device)
            if R3.shape != P.shape:
                raise ValueError(f"next_state_rewards must have shape (S, A, S) = {tuple(P.shape)}, got {tuple(R3.shape)}")
            _require_finite("next_state_rewards", R3)
        _check_terminal_states(P, R, R3, terminal)
        for field, value in (("next_state_rewards", R3), ("transitions", P), ("rewards", R), ("gamma", gamma), ("initial_distribution", p0), ("terminal", terminal)):
            object.__setattr__(self, field, value)

    @property
    def num_states(self) -> int:
        """``S``."""
        return int(self.transitions.shape[0])

    @property
    def num_actions(self) -> int:
        """``A``."""
        return int(self.transitions.shape[1])

    @property
    def device(self) -> torch.device:
        """Where the tables live; every function computes there."""
        return self.transitions.device

    def to(self, device) -> "FiniteMDP":
        """A copy with every table on ``device`` (``"cuda"`` runs the backups on the GPU)."""
        device = checks.device("device", device)
        return FiniteMDP(self.transitions.to(device), self.rewards.to(device), self.gamma,
                         self.initial_distribution.to(device), self.terminal.to(device), self.grid_shape, self.name,
                         None if self.next_state_rewards is None else self.next_state_rewards.to(device))

    @classmethod
    def from_gymnasium(cls, env, gamma: float = 0.99, **make_kwargs) -> "FiniteMDP":
        """Build the tables from a toy-text environment's own model ``env.unwrapped.P``.

        ``P[s][a]`` is a list of ``(prob, next_state, reward, terminated)``. The expected
        reward is ``r(s, a) = sum prob * reward``. A state entered by a transition with
        ``terminated=True`` (a hole or the goal of FrozenLake, the goal of CliffWalking, a
        delivered passenger in Taxi) is made absorbing with reward 0, so that values are
        the expected discounted return of the episode.

        Args:
            env: a gymnasium env (``FrozenLake-v1``, ``CliffWalking-v1``, ``Taxi-v4``) or an
                env id, made with ``make_kwargs`` (e.g. ``map_name="8x8"``).
            gamma: discount factor in ``[0, 1)``.

        Raises:
            ValueError: if the env has no transition table ``P`` or no Discrete spaces.
        """
        import gymnasium as gym

        if isinstance(env, str):
            env = gym.make(env, **make_kwargs)
        u = env.unwrapped
        if not hasattr(u, "P") or not isinstance(u.observation_space, gym.spaces.Discrete) or not isinstance(u.action_space, gym.spaces.Discrete):
            raise ValueError(f"env must be a toy-text env with a transition table env.unwrapped.P and Discrete spaces, got {u!r}")
        S, A = int(u.observation_space.n), int(u.action_space.n)
        P = np.zeros((S, A, S))
        R = np.zeros((S, A))
        R3 = np.zeros((S, A, S))  # the reward of each (s, a, s') transition, for sampling episodes
        terminal = np.zeros(S, dtype=bool)
        for s in range(S):
            for a in range(A):
                for prob, s_next, reward, terminated in u.P[s][a]:
                    P[s, a, int(s_next)] += prob
                    R[s, a] += prob * reward
                    R3[s, a, int(s_next)] = reward
                    if terminated and prob > 0:
                        terminal[int(s_next)] = True
        P[terminal] = 0.0
        for s in terminal.nonzero()[0]:
            P[s, :, s] = 1.0
        R[terminal] = 0.0
        R3[terminal] = 0.0
        p0 = getattr(u, "initial_state_distrib", None)
        p0 = None if p0 is None else np.asarray(p0, dtype=np.float64) / np.sum(p0)
        desc = getattr(u, "desc", None)
        grid = tuple(desc.shape) if desc is not None and np.prod(desc.shape) == S else getattr(u, "shape", None)
        if grid is not None and int(np.prod(grid)) != S:
            grid = None
        name = env.spec.id if env.spec is not None else type(u).__name__
        return cls(torch.from_numpy(P), torch.from_numpy(R), gamma, None if p0 is None else torch.from_numpy(p0),
                   torch.from_numpy(terminal), None if grid is None else tuple(int(g) for g in grid), name,
                   torch.from_numpy(R3))


def _as_float64(name: str, value, device=None) -> torch.Tensor:
    if isinstance(value, (str, bytes)) or value is None:
        raise checks.ArgumentTypeError(f"{name} must be a tensor or array of numbers, got {type(value).__name__}")
    try:
        return torch.as_tensor(value, dtype=torch.float64, device=device)
    except (TypeError, ValueError, RuntimeError):
        raise checks.ArgumentTypeError(f"{name} must be a tensor or array of numbers, got {type(value).__name__}") from None


def _require_finite(name: str, value: torch.Tensor) -> None:
    """ValueError naming ``name`` and the first non-finite entry (a float64 table or value function)."""
    # Fast path: a NaN or an infinity makes the sum non-finite, and a finite sum proves every
    # entry finite (an overflowing sum of finite entries falls through to the full check).
    # One reduction instead of a boolean mask of the whole (S, A, S) table.
    if bool(torch.isfinite(value.sum())):
        return
    bad = ~torch.isfinite(value)
    if bool(bad.any()):
        index = tuple(int(i) for i in bad.nonzero()[0].tolist())
        raise ValueError(f"{name} must be finite, got {value[index].item()} at index {index} "
                         f"({int(bad.sum())} non-finite entries of {value.numel()})")


def _check_terminal_states(P: torch.Tensor, R: torch.Tensor, R3: torch.Tensor | None, terminal: torch.Tensor) -> None:
    """Terminal states must be absorbing with reward 0, so that ``V(terminal) = 0``."""
    if not bool(terminal.any()):
        return
    term = terminal.nonzero()[:, 0]
    stay = P[term, :, term]  # (T, A): p(s | s, a) for each terminal s
    leaks = stay < 1 - 1e-9
    if bool(leaks.any()):
        i, a = (int(x) for x in leaks.nonzero()[0])
        raise ValueError(f"terminal state {int(term[i])} must be absorbing (transitions[{int(term[i])}, a, {int(term[i])}] = 1), "
                         f"got {stay[i, a].item():.6g} for action {a}")
    for name, table in (("rewards", R[term]), ("next_state_rewards", None if R3 is None else R3[term])):
        if table is None:
            continue
        paid = table != 0
        if bool(paid.any()):
            where = [int(x) for x in paid.nonzero()[0]]
            index = ", ".join(str(x) for x in [int(term[where[0]]), *where[1:]])
            raise ValueError(f"{name}[{index}] = {table[tuple(where)].item():.6g}: terminal state {int(term[where[0]])} "
                             f"must have reward 0 for every action (a terminal state is absorbing with reward 0), "
                             f"but action {where[1]} is paid")


def _check_mdp(mdp) -> FiniteMDP:
    if not isinstance(mdp, FiniteMDP):
        raise checks.ArgumentTypeError(f"mdp must be a FiniteMDP, got {type(mdp).__name__}")
    return mdp


def _check_values(name: str, mdp: FiniteMDP, V, last: tuple[int, ...], batched: bool = True) -> torch.Tensor:
    """``V`` as float64 on ``mdp.device``: a tensor of shape ``last`` (or ``(N, *last)`` when ``batched``), finite."""
    if not isinstance(V, torch.Tensor):
        raise checks.ArgumentTypeError(f"{name} must be a torch.Tensor, got {type(V).__name__}")
    if V.dtype == torch.bool or V.is_complex():
        raise checks.ArgumentTypeError(f"{name} must be a real-valued tensor, got dtype {V.dtype}")
    ndims = (len(last), len(last) + 1) if batched else (len(last),)
    if tuple(V.shape[-len(last):]) != last or V.ndim not in ndims:
        shapes = f"{last} or (N, *{last})" if batched else f"{last}"
        raise ValueError(f"{name} must have shape {shapes}, got {tuple(V.shape)}")
    V = V.to(device=mdp.device, dtype=torch.float64)
    _require_finite(name, V)
    return V


def random_mdp(num_states: int, num_actions: int, gamma: float = 0.9, seed: int = 0, device="cpu") -> FiniteMDP:
    """A random MDP with dense transitions (Dirichlet(1) rows) and uniform rewards in ``[0, 1)``.

    Raises:
        ValueError / ArgumentTypeError: naming the argument, for sizes < 1, ``gamma``
            outside ``[0, 1)`` or a negative seed.
    """
    S = checks.positive_int("num_states", num_states)
    A = checks.positive_int("num_actions", num_actions)
    checks.unit_interval("gamma", gamma, closed_right=False)
    gen = torch.Generator().manual_seed(checks.nonnegative_int("seed", seed))
    P = -torch.rand(S, A, S, generator=gen, dtype=torch.float64).log()  # Exp(1) -> normalised = Dirichlet(1)
    P = P / P.sum(-1, keepdim=True)
    R = torch.rand(S, A, generator=gen, dtype=torch.float64)
    return FiniteMDP(P, R, gamma, name=f"random S={S} A={A}").to(device)
