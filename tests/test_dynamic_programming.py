"""Properties of course_lib.rl.dynamic_programming (Chapter 6): tables, backups, evaluation, VI, PI, Q-iteration."""

import pickle
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks
from course_lib.rl import dynamic_programming as dp

torch.set_num_threads(1)

INF = float("inf")
NAN = float("nan")
# state 1 is absorbing (p(1 | 1, a) = 1 for both actions); state 0 moves uniformly
ABSORBING_1 = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[0.0, 1.0], [0.0, 1.0]]], dtype=torch.float64)


@pytest.fixture(scope="module")
def frozenlake():
    return dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99)


def _taxi_id():
    import gymnasium as gym

    return "Taxi-v4" if "Taxi-v4" in gym.registry else "Taxi-v3"


# --------------------------------------------------------------------------------------
# FiniteMDP
# --------------------------------------------------------------------------------------


def test_frozenlake_start_value_is_0_5420(frozenlake):
    V, policy, history = dp.value_iteration(frozenlake)
    assert round((frozenlake.initial_distribution @ V).item(), 4) == 0.5420
    assert V[0].item() == pytest.approx(0.5420, abs=5e-5)
    assert policy.dtype == torch.int64 and policy.shape == (16,)
    assert history[-1] < 1e-10 and len(history) > 10


@pytest.mark.parametrize("env_id,kwargs", [("FrozenLake-v1", {}), ("FrozenLake-v1", {"map_name": "8x8"}),
                                            ("CliffWalking-v1", {}), (None, {})])
def test_from_gymnasium_tables(env_id, kwargs):
    env_id = env_id or _taxi_id()
    mdp = dp.FiniteMDP.from_gymnasium(env_id, gamma=0.9, **kwargs)
    S, A = mdp.num_states, mdp.num_actions
    assert mdp.transitions.shape == (S, A, S) and mdp.transitions.dtype == torch.float64
    assert torch.allclose(mdp.transitions.sum(-1), torch.ones(S, A, dtype=torch.float64))
    assert mdp.terminal.any()
    term = mdp.terminal.nonzero()[:, 0]
    # terminal states are absorbing with reward 0
    for s in term.tolist():
        assert torch.all(mdp.transitions[s, :, s] == 1.0) and torch.all(mdp.rewards[s] == 0)
    # the expected reward is the probability-weighted transition reward
    assert torch.allclose((mdp.transitions * mdp.next_state_rewards).sum(-1), mdp.rewards)


def test_cliffwalking_values_are_minus_path_length():
    mdp = dp.FiniteMDP.from_gymnasium("CliffWalking-v1", gamma=0.999999)
    V, _, _ = dp.value_iteration(mdp)
    start = int(mdp.initial_distribution.argmax())
    assert V[start].item() == pytest.approx(-13, abs=1e-3)  # 13 steps of -1 along the cliff


@pytest.mark.parametrize(
    "kwargs,exc,name",
    [
        (dict(transitions=torch.ones(2, 2, 2), rewards=torch.zeros(2, 2), gamma=0.9), ValueError, "transitions"),
        (dict(transitions=torch.ones(2, 2), rewards=torch.zeros(2, 2), gamma=0.9), ValueError, "transitions"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(3, 2), gamma=0.9), ValueError, "rewards"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=1.0), ValueError, "gamma"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=-0.1), ValueError, "gamma"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma="0.9"), TypeError, "gamma"),
        (dict(transitions="x", rewards=torch.zeros(2, 2), gamma=0.9), TypeError, "transitions"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.full((2, 2), float("nan")), gamma=0.9), ValueError, "rewards"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9,
              initial_distribution=torch.tensor([0.2, 0.2])), ValueError, "initial_distribution"),
        # issue 18
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9,
              initial_distribution=torch.tensor([NAN, 1.0])), ValueError, "initial_distribution must be finite"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9,
              initial_distribution=torch.tensor([1.5, -0.5])), ValueError, "initial_distribution must be non-negative"),
        (dict(transitions=torch.tensor([[[NAN, 1.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]]]), rewards=torch.zeros(2, 2),
              gamma=0.9), ValueError, "transitions must be finite"),
        (dict(transitions=torch.full((2, 2, 2), 0.4), rewards=torch.zeros(2, 2), gamma=0.9), ValueError, "transitions.*sum to 1"),
        # the constructor checks finiteness through the row sums and the sign through the minimum:
        # an infinity, a -inf/+inf pair (a NaN row sum) and a negative entry in a row summing to 1
        (dict(transitions=torch.tensor([[[0.5, 0.5], [INF, 0.0]], [[0.5, 0.5], [0.5, 0.5]]]), rewards=torch.zeros(2, 2),
              gamma=0.9), ValueError, "transitions must be finite"),
        (dict(transitions=torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[INF, -INF], [0.5, 0.5]]]), rewards=torch.zeros(2, 2),
              gamma=0.9), ValueError, "transitions must be finite"),
        (dict(transitions=torch.tensor([[[0.5, 0.5], [1.5, -0.5]], [[0.5, 0.5], [0.5, 0.5]]]), rewards=torch.zeros(2, 2),
              gamma=0.9), ValueError, "transitions must be non-negative"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.tensor([[0.0, float("inf")], [0.0, 0.0]]), gamma=0.9),
         ValueError, "rewards must be finite"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9,
              next_state_rewards=torch.full((2, 2, 2), NAN)), ValueError, "next_state_rewards must be finite"),
        (dict(transitions=ABSORBING_1, rewards=torch.tensor([[0.0, 0.0], [1.0, 0.0]]), gamma=0.9, terminal=torch.tensor([False, True])),
         ValueError, r"rewards\[1, 0\].*terminal state 1.*action 0"),
        (dict(transitions=ABSORBING_1, rewards=torch.zeros(2, 2), gamma=0.9, terminal=torch.tensor([False, True]),
              next_state_rewards=torch.zeros(2, 2, 2).index_put_((torch.tensor(1), torch.tensor(1), torch.tensor(1)), torch.tensor(2.0))),
         ValueError, r"next_state_rewards\[1, 1, 1\].*terminal state 1.*action 1"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9, terminal=torch.tensor([False, True])),
         ValueError, "terminal state 1 must be absorbing"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9, terminal=torch.tensor([0, 1])),
         ValueError, "terminal must be a bool"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9, grid_shape=2), ValueError, "grid_shape"),
        (dict(transitions=torch.full((2, 2, 2), 0.5), rewards=torch.zeros(2, 2), gamma=0.9, name=3), TypeError, "name"),
    ],
)
def test_finite_mdp_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        dp.FiniteMDP(**kwargs)


def test_from_gymnasium_bad_env():
    with pytest.raises(ValueError, match="env"):
        dp.FiniteMDP.from_gymnasium("CartPole-v1")


# --------------------------------------------------------------------------------------
# Backups and evaluation
# --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(S=st.integers(1, 12), A=st.integers(1, 4), gamma=st.floats(0.0, 0.99), seed=st.integers(0, 1000))
def test_contraction_and_monotonicity(S, A, gamma, seed):
    mdp = dp.random_mdp(S, A, gamma=gamma, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    V = torch.randn(64, S, generator=gen, dtype=torch.float64) * 5
    U = V + torch.randn(64, S, generator=gen, dtype=torch.float64)
    TV, TU = dp.bellman_optimality_backup(mdp, V), dp.bellman_optimality_backup(mdp, U)
    assert torch.all((TV - TU).abs().amax(-1) <= gamma * (V - U).abs().amax(-1) + 1e-12)
    # monotone: V >= U pointwise implies TV >= TU
    W = V + torch.rand(64, S, generator=gen, dtype=torch.float64)
    assert torch.all(dp.bellman_optimality_backup(mdp, W) >= TV - 1e-12)
    # batched backup equals one-at-a-time backups
    assert torch.allclose(TV[3], dp.bellman_optimality_backup(mdp, V[3]))


def test_backup_matches_loop_definition():
    mdp = dp.random_mdp(6, 3, gamma=0.8, seed=4)
    V = torch.randn(6, dtype=torch.float64)
    expected = torch.tensor([max(mdp.rewards[s, a] + mdp.gamma * sum(mdp.transitions[s, a, t] * V[t] for t in range(6))
                                 for a in range(3)) for s in range(6)], dtype=torch.float64)
    assert torch.allclose(dp.bellman_optimality_backup(mdp, V), expected, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(S=st.integers(1, 15), A=st.integers(1, 4), gamma=st.floats(0.0, 0.95), seed=st.integers(0, 1000), stochastic=st.booleans())
def test_exact_policy_evaluation_is_the_fixed_point(S, A, gamma, seed, stochastic):
    mdp = dp.random_mdp(S, A, gamma=gamma, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    policy = (torch.softmax(torch.randn(S, A, generator=gen, dtype=torch.float64), -1) if stochastic
              else torch.randint(A, (S,), generator=gen))
    V = dp.policy_evaluation(mdp, policy)
    assert torch.allclose(dp.bellman_expectation_backup(mdp, V, policy), V, atol=1e-10)
    V_iter, _ = dp.iterative_policy_evaluation(mdp, policy, tol=1e-13)
    assert torch.allclose(V_iter, V, atol=1e-10)


def test_deterministic_and_one_hot_policy_agree():
    mdp = dp.random_mdp(10, 3, gamma=0.9, seed=2)
    policy = torch.randint(3, (10,), generator=torch.Generator().manual_seed(0))
    one_hot = torch.nn.functional.one_hot(policy, 3).double()
    assert torch.allclose(dp.policy_evaluation(mdp, policy), dp.policy_evaluation(mdp, one_hot), atol=1e-12)


@pytest.mark.parametrize(
    "fn,args,exc,name",
    [
        (dp.bellman_optimality_backup, ("mdp", torch.zeros(3)), TypeError, "mdp"),
        (dp.bellman_optimality_backup, (None, [0.0, 0.0, 0.0]), TypeError, "V"),
        (dp.bellman_optimality_backup, (None, torch.zeros(4)), ValueError, "V"),
        (dp.bellman_optimality_backup_q, (None, torch.zeros(3)), ValueError, "Q"),
        (dp.policy_evaluation, (None, torch.tensor([0, 1, 5])), ValueError, "policy"),
        (dp.policy_evaluation, (None, torch.full((3, 2), 0.3, dtype=torch.float64)), ValueError, "policy"),
        (dp.policy_evaluation, (None, [0, 1, 0]), TypeError, "policy"),
        (dp.policy_evaluation, (None, torch.zeros(4, dtype=torch.long)), ValueError, "policy"),
        (dp.value_iteration, (None, -1.0), ValueError, "tol"),
        (dp.value_iteration, (None, 1e-8, 0), ValueError, "max_iterations"),
        (dp.q_iteration, (None, "tight"), TypeError, "tol"),
        (dp.policy_iteration, (None, 0), ValueError, "max_iterations"),
        (dp.iterative_policy_evaluation, (None, torch.zeros(3, dtype=torch.long), 0.0), ValueError, "tol"),
        (dp.greedy_policy, (torch.zeros(3),), ValueError, "Q"),
        (dp.greedy_policy, ([[0.0]],), TypeError, "Q"),
        (dp.random_mdp, (0, 2), ValueError, "num_states"),
        (dp.random_mdp, (3, 2, 1.0), ValueError, "gamma"),
        (dp.sample_episode, (None, torch.zeros(3, dtype=torch.long), 1.5), ValueError, "epsilon"),
        # issue 18: NaN/inf tables and malformed policies are refused at the public entry
        (dp.greedy_policy, (torch.tensor([[NAN, 1.0], [0.0, 1.0]]),), ValueError, "Q must be finite"),
        (dp.greedy_policy, (torch.tensor([[float("-inf"), 1.0]]),), ValueError, "Q must be finite"),
        (dp.greedy_policy, (torch.ones(3, 2, dtype=torch.bool),), TypeError, "Q"),
        (dp.greedy_policy, (torch.zeros(3, 0),), ValueError, "Q"),
        (dp.q_from_v, (None, torch.tensor([0.0, NAN, 0.0])), ValueError, "V must be finite"),
        (dp.bellman_optimality_backup, (None, torch.tensor([0.0, float("inf"), 0.0])), ValueError, "V must be finite"),
        (dp.bellman_optimality_backup_q, (None, torch.full((3, 2), NAN)), ValueError, "Q must be finite"),
        (dp.bellman_residual, (None, torch.full((3,), NAN)), ValueError, "V must be finite"),
        (dp.bellman_expectation_backup, (None, torch.zeros(3), torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (dp.policy_evaluation, (None, torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (dp.policy_evaluation, (None, torch.tensor([[1.5, -0.5], [0.5, 0.5], [1.0, 0.0]], dtype=torch.float64)), ValueError, "policy.*non-negative"),
        (dp.policy_evaluation, (None, torch.tensor([[0.5, 0.5], [0.2, 0.2], [1.0, 0.0]], dtype=torch.float64)), ValueError, "policy.*row 1 sums to 0.4"),
        (dp.policy_evaluation, (None, torch.tensor([True, False, True])), TypeError, "policy"),
        (dp.policy_matrices, (None, torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (dp.iterative_policy_evaluation, (None, torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (dp.policy_iteration, (None, 10, torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (dp.sample_episode, (None, torch.full((3, 2), NAN, dtype=torch.float64)), ValueError, "policy must be finite"),
        (lambda mdp: dp.value_iteration(mdp, V0=torch.full((3,), NAN)), (None,), ValueError, "V0 must be finite"),
        (lambda mdp: dp.value_iteration(mdp, V0=torch.zeros(2, 3)), (None,), ValueError, r"V0 must have shape \(3,\)"),
        (lambda mdp: dp.value_iteration(mdp, V0=[0.0, 0.0, 0.0]), (None,), TypeError, "V0"),
    ],
)
def test_bad_input_table(fn, args, exc, name):
    mdp = dp.random_mdp(3, 2, gamma=0.9, seed=0)
    args = tuple(mdp if a is None else a for a in args)
    with pytest.raises(exc, match=name):
        fn(*args)


def test_type_errors_are_argument_type_errors():
    mdp = dp.random_mdp(3, 2, gamma=0.9, seed=0)
    with pytest.raises(checks.ArgumentTypeError):
        dp.bellman_optimality_backup("mdp", torch.zeros(3))
    with pytest.raises(checks.ArgumentTypeError):
        dp.policy_evaluation(mdp, [0, 1, 0])


# --------------------------------------------------------------------------------------
# Value iteration, policy iteration, Q-iteration
# --------------------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(S=st.integers(1, 20), A=st.integers(1, 5), gamma=st.floats(0.0, 0.95), seed=st.integers(0, 1000))
def test_vi_pi_qi_reach_the_same_fixed_point(S, A, gamma, seed):
    mdp = dp.random_mdp(S, A, gamma=gamma, seed=seed)
    V_vi, pi_vi, h_vi = dp.value_iteration(mdp)
    V_pi, pi_pi, h_pi = dp.policy_iteration(mdp)
    Q, h_q = dp.q_iteration(mdp)
    assert dp.bellman_residual(mdp, V_pi) < 1e-10
    assert dp.bellman_residual(mdp, V_vi) < 1e-9
    assert torch.allclose(V_vi, V_pi, atol=1e-8)
    assert torch.allclose(Q.amax(-1), V_pi, atol=1e-8)
    # the greedy policies are optimal (their exact values equal V*)
    for pi in (pi_vi, pi_pi, dp.greedy_policy(Q)):
        assert torch.allclose(dp.policy_evaluation(mdp, pi), V_pi, atol=1e-7)
    assert all(h >= 0 for h in h_vi) and h_vi[-1] < 1e-10 and h_q[-1] < 1e-10


def test_vi_error_below_gamma_power_bound(frozenlake):
    V_star, _, _ = dp.policy_iteration(frozenlake)
    V = torch.zeros(16, dtype=torch.float64)
    e0 = (V - V_star).abs().max().item()
    for k in range(1, 200):
        V = dp.bellman_optimality_backup(frozenlake, V)
        assert (V - V_star).abs().max().item() <= frozenlake.gamma**k * e0 + 1e-12


def test_policy_iteration_improves_monotonically():
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")
    policy = torch.zeros(64, dtype=torch.long)
    V_prev = dp.policy_evaluation(mdp, policy)
    for _ in range(50):
        Q = dp.q_from_v(mdp, V_prev)
        new = torch.where(Q.amax(-1) > Q.gather(1, policy[:, None])[:, 0] + 1e-12, Q.argmax(-1), policy)
        if torch.equal(new, policy):
            break
        policy = new
        V = dp.policy_evaluation(mdp, policy)
        assert torch.all(V >= V_prev - 1e-12)
        V_prev = V
    V_star, _, _ = dp.policy_iteration(mdp)
    assert torch.allclose(V_prev, V_star, atol=1e-10)


def test_span_stopping_and_iteration_cap():
    mdp = dp.random_mdp(30, 3, gamma=0.9, seed=0)
    _, _, h_span = dp.value_iteration(mdp, tol=1e-6, stopping="span")
    _, _, h_sup = dp.value_iteration(mdp, tol=1e-6, stopping="sup")
    assert len(h_span) < len(h_sup)  # dense random rows: the span collapses long before the sup-norm change
    _, _, h = dp.value_iteration(mdp, tol=0.0, max_iterations=7)
    assert len(h) == 7


def test_sample_episode_frozenlake(frozenlake):
    _, policy, _ = dp.value_iteration(frozenlake)
    ep = dp.sample_episode(frozenlake, policy, epsilon=0.0, seed=3, max_steps=200)
    assert len(ep["states"]) == len(ep["actions"]) + 1 == len(ep["rewards"]) + 1
    assert ep["return"] in (0.0, 1.0)  # FrozenLake pays 1 only on reaching the goal
    if ep["terminated"]:
        assert bool(frozenlake.terminal[ep["states"][-1]])


def test_runs_on_the_device_of_the_mdp():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    mdp = dp.random_mdp(50, 4, gamma=0.9, seed=0)
    V_cpu, _, _ = dp.value_iteration(mdp)
    V_gpu, _, _ = dp.value_iteration(mdp.to("cuda"))
    assert V_gpu.device.type == "cuda" and torch.allclose(V_gpu.cpu(), V_cpu, atol=1e-10)


@settings(max_examples=50, deadline=None)
@given(gamma=st.floats(0.01, 0.999), r_max=st.floats(0.01, 100.0), delta=st.floats(1e-9, 10.0))
def test_value_iteration_bound_is_the_smallest_k(gamma, r_max, delta):
    k = dp.value_iteration_bound(gamma, r_max, delta)
    bound0 = r_max / (1 - gamma)
    assert isinstance(k, int) and k >= 0
    assert gamma**k * bound0 <= delta
    assert k == 0 or gamma ** (k - 1) * bound0 > delta


def test_value_iteration_bound_holds_on_frozenlake(frozenlake):
    k = dp.value_iteration_bound(frozenlake.gamma, 1.0, 1e-4)
    V_star, _, _ = dp.policy_iteration(frozenlake)
    V, _, _ = dp.value_iteration(frozenlake, tol=0.0, max_iterations=k)
    assert (V - V_star).abs().max().item() <= 1e-4


@pytest.mark.parametrize("args,exc,name", [((1.0, 1.0, 0.1), ValueError, "gamma"), ((0.0, 1.0, 0.1), ValueError, "gamma"),
                                           ((0.9, 0.0, 0.1), ValueError, "r_max"), ((0.9, 1.0, -1.0), ValueError, "tol"),
                                           ((0.9, "1", 0.1), TypeError, "r_max")])
def test_value_iteration_bound_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        dp.value_iteration_bound(*args)


# --------------------------------------------------------------------------------------
# issue 18: convergence reports, terminal states, finite start values
# --------------------------------------------------------------------------------------


def test_solvers_report_convergence_on_a_normal_gamma():
    mdp = dp.random_mdp(20, 3, gamma=0.9, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dp.ConvergenceWarning)
        _, _, h_vi = dp.value_iteration(mdp)
        _, _, h_span = dp.value_iteration(mdp, stopping="span")
        _, _, h_pi = dp.policy_iteration(mdp)
        _, h_q = dp.q_iteration(mdp)
        _, h_ipe = dp.iterative_policy_evaluation(mdp, torch.zeros(20, dtype=torch.long))
    for h in (h_vi, h_span, h_pi, h_q, h_ipe):
        assert isinstance(h, dp.ConvergenceHistory) and isinstance(h, list) and h.converged is True
    assert h_vi.last_change == h_vi[-1] < 1e-10 and h_vi.tol == 1e-10 and h_vi.max_iterations == 100_000
    assert h_pi.tol is None


@pytest.mark.parametrize("solver", ["value_iteration", "q_iteration"])
def test_unconverged_run_warns_and_flags_on_gamma_near_one(solver):
    mdp = dp.random_mdp(8, 3, gamma=0.999999, seed=0)
    with pytest.warns(dp.ConvergenceWarning, match=r"max_iterations=200.*tol=1e-10") as record:
        if solver == "value_iteration":
            V, policy, h = dp.value_iteration(mdp, max_iterations=200)
        else:
            Q, h = dp.q_iteration(mdp, max_iterations=200)
            V = Q.amax(-1)
    assert h.converged is False and len(h) == 200 and h.last_change >= 1e-10
    assert f"{h.last_change:.3g}" in str(record[0].message)  # the last change is in the message
    V_star, _, _ = dp.policy_iteration(mdp)
    error = (V - V_star).abs().max().item()
    assert error > 1.0  # the flag is not a false alarm: the values are far from V*
    assert error <= mdp.gamma / (1 - mdp.gamma) * h[-1] * (1 + 1e-9)  # the bound the message quotes


def test_unconverged_iterative_policy_evaluation_warns():
    mdp = dp.random_mdp(8, 3, gamma=0.999999, seed=0)
    with pytest.warns(dp.ConvergenceWarning, match=r"iterative_policy_evaluation.*max_iterations=30.*tol=1e-12"):
        _, h = dp.iterative_policy_evaluation(mdp, torch.zeros(8, dtype=torch.long), max_iterations=30)
    assert h.converged is False and len(h) == 30


def test_capped_policy_iteration_warns_and_returns_a_consistent_pair():
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")  # 11 rounds to converge
    with pytest.warns(dp.ConvergenceWarning, match="policy_iteration.*max_iterations=3"):
        V, policy, h = dp.policy_iteration(mdp, max_iterations=3)
    assert h.converged is False and len(h) == 3
    assert torch.allclose(V, dp.policy_evaluation(mdp, policy), atol=1e-12)  # V = V^policy, as documented


def test_tol_zero_runs_exactly_max_iterations_without_a_warning():
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99)
    with warnings.catch_warnings():
        warnings.simplefilter("error", dp.ConvergenceWarning)
        _, _, h = dp.value_iteration(mdp, tol=0.0, max_iterations=10)  # the chapter's widget: V_k for fixed k
        _, hq = dp.q_iteration(mdp, tol=0.0, max_iterations=10)
    assert len(h) == len(hq) == 10 and h.converged is False and hq.converged is False


def test_history_still_behaves_as_the_list_it_was():
    mdp = dp.random_mdp(5, 2, gamma=0.5, seed=0)
    V, policy, h = dp.value_iteration(mdp)
    assert h == list(h) and len(h) == len(list(h)) and h[-1] == list(h)[-1]
    h2 = pickle.loads(pickle.dumps(h))
    assert h2 == h and h2.converged is True and h2.tol == h.tol and h2.last_change == h.last_change


@settings(max_examples=15, deadline=None)
@given(S=st.integers(1, 10), A=st.integers(1, 4), gamma=st.floats(0.05, 0.999), seed=st.integers(0, 100),
       cap=st.integers(1, 60))
def test_converged_flag_is_the_stopping_test(S, A, gamma, seed, cap):
    mdp = dp.random_mdp(S, A, gamma=gamma, seed=seed)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", dp.ConvergenceWarning)
        V, _, h = dp.value_iteration(mdp, tol=1e-6, max_iterations=cap)
    assert h.converged == (h[-1] < 1e-6)
    assert len(record) == (0 if h.converged else 1)
    if not h.converged:
        assert len(h) == cap
    V_star = dp.policy_evaluation(mdp, dp.policy_iteration(mdp)[1])
    assert (V - V_star).abs().max().item() <= gamma / (1 - gamma) * h[-1] + 1e-9


def test_terminal_state_with_a_reward_is_refused():
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.9)
    s = int(mdp.terminal.nonzero()[0, 0])
    R = mdp.rewards.clone()
    R[s, 2] = 1.0  # a reward for leaving the (absorbing) terminal state: V(s) would be 1 / (1 - gamma)
    with pytest.raises(ValueError, match=rf"rewards\[{s}, 2\].*terminal state {s}.*action 2"):
        dp.FiniteMDP(mdp.transitions, R, mdp.gamma, terminal=mdp.terminal)
    P = mdp.transitions.clone()
    P[s, 1] = 1.0 / 16  # not absorbing
    with pytest.raises(ValueError, match=rf"terminal state {s} must be absorbing.*action 1"):
        dp.FiniteMDP(P, mdp.rewards, mdp.gamma, terminal=mdp.terminal)
    # the valid tables still build, and their terminal values are 0
    V, _, _ = dp.value_iteration(dp.FiniteMDP(mdp.transitions, mdp.rewards, mdp.gamma, terminal=mdp.terminal))
    assert torch.all(V[mdp.terminal] == 0)


def test_nan_start_values_are_refused_and_finite_ones_reach_v_star():
    mdp = dp.random_mdp(6, 2, gamma=0.8, seed=3)
    for bad in (torch.full((6,), NAN), torch.tensor([0.0, 1.0, float("inf"), 0.0, 0.0, 0.0])):
        with pytest.raises(ValueError, match="V0 must be finite"):
            dp.value_iteration(mdp, V0=bad)
    V_a, pi_a, _ = dp.value_iteration(mdp, V0=torch.randn(6, dtype=torch.float64) * 10)
    V_b, pi_b, _ = dp.value_iteration(mdp)
    assert torch.allclose(V_a, V_b, atol=1e-8) and torch.equal(pi_a, pi_b)


def test_value_iteration_bound_keeps_its_old_keyword_delta():
    """The tolerance was called delta before (the TD error's symbol): the old keyword still gives the same k."""
    from course_lib.rl import dynamic_programming as dp

    with pytest.warns(DeprecationWarning, match="tol"):
        assert dp.value_iteration_bound(0.9, 1.0, delta=1e-3) == dp.value_iteration_bound(0.9, 1.0, tol=1e-3)
    with pytest.raises(ValueError, match="tol"):
        dp.value_iteration_bound(0.9, 1.0, tol=1e-3, delta=1e-3)
    with pytest.raises(TypeError, match="tol"):
        dp.value_iteration_bound(0.9, 1.0)


def test_a_table_stored_as_pymdptoolbox_layout_gives_the_same_answers():
    """A (A, S, S) array seen through a transpose takes the backups' no-copy path; every solver must agree with the contiguous table."""
    mdp = dp.random_mdp(30, 4, gamma=0.9, seed=3)
    P_ass = mdp.transitions.permute(1, 0, 2).contiguous()  # pymdptoolbox's layout
    viewed = dp.FiniteMDP(P_ass.transpose(0, 1), mdp.rewards, mdp.gamma)
    assert not viewed.transitions.is_contiguous() and viewed.transitions.transpose(0, 1).is_contiguous()
    V = torch.linspace(-1.0, 2.0, 30, dtype=torch.float64)
    torch.testing.assert_close(dp.q_from_v(viewed, V), dp.q_from_v(mdp, V), rtol=0, atol=1e-12)
    torch.testing.assert_close(dp.q_from_v(viewed, torch.stack([V, -V])), dp.q_from_v(mdp, torch.stack([V, -V])), rtol=0, atol=1e-12)
    for solver in (dp.value_iteration, dp.policy_iteration):
        ours, ref = solver(viewed), solver(mdp)
        torch.testing.assert_close(ours[0], ref[0], rtol=0, atol=1e-9)
        assert torch.equal(ours[1], ref[1])
    torch.testing.assert_close(dp.q_iteration(viewed)[0], dp.q_iteration(mdp)[0], rtol=0, atol=1e-9)
    torch.testing.assert_close(dp.policy_evaluation(viewed, ref[1]), dp.policy_evaluation(mdp, ref[1]), rtol=0, atol=1e-10)
