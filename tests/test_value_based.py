"""Properties of course_lib.rl.value_based (Chapter 6): exploration, bandits, TD targets, tabular TD control,
fitted Q-iteration, Baird's counterexample."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.rl import dynamic_programming as dp
from course_lib.rl import value_based as ql

torch.set_num_threads(1)

NAN = float("nan")
GOOD_DATA = {"obs": torch.zeros(4, 2), "actions": torch.tensor([0, 1, 1, 0]), "rewards": torch.ones(4),
             "next_obs": torch.zeros(4, 2), "terminated": torch.tensor([False, False, True, False])}
LINEAR = ql.FittedQConfig(regressor="linear", iterations=1, progress=False)


# --------------------------------------------------------------------------------------
# epsilon-greedy
# --------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(A=st.integers(1, 6), eps=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_epsilon_greedy_frequencies_match_probs(A, eps, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(A, generator=gen)
    probs = ql.epsilon_greedy_probs(q, eps)
    assert torch.allclose(probs.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert probs[q.argmax()] == pytest.approx(1 - eps + eps / A)
    n = 20_000
    actions = ql.epsilon_greedy(q.expand(n, A), eps, gen)
    assert actions.shape == (n,) and actions.dtype == torch.int64
    freq = torch.bincount(actions, minlength=A).double() / n
    assert torch.allclose(freq, probs, atol=0.02)


def test_epsilon_greedy_is_greedy_at_zero_and_scalar_shape():
    q = torch.tensor([[0.0, 3.0, 1.0], [5.0, -1.0, 0.0]])
    assert torch.equal(ql.epsilon_greedy(q, 0.0), torch.tensor([1, 0]))
    assert ql.epsilon_greedy(q[0], 0.0).shape == ()


# --------------------------------------------------------------------------------------
# bandits
# --------------------------------------------------------------------------------------


def test_bandit_sample_average_converges_and_shapes():
    out = ql.bandit_testbed(1.0, num_runs=200, num_arms=5, steps=400, seed=1)  # pure exploration: no selection bias
    assert out["average_reward"].shape == (400,) and out["Q"].shape == (200, 5)
    z2 = ((out["Q"] - out["q_star"]) ** 2 * out["counts"])[out["counts"] > 0]
    assert 0.85 < z2.mean().item() < 1.15  # the sample mean's error has variance 1/n
    assert torch.all(out["counts"].sum(-1) == 400)


def test_bandit_exploration_beats_greedy_late():
    greedy = ql.bandit_testbed(0.0, num_runs=500, steps=500, seed=0)
    eps = ql.bandit_testbed(0.1, num_runs=500, steps=500, seed=0)
    assert eps["optimal_action"][-100:].mean() > greedy["optimal_action"][-100:].mean() + 0.1


# --------------------------------------------------------------------------------------
# TD targets
# --------------------------------------------------------------------------------------


def test_td_targets_cut_bootstrap_only_on_terminated():
    r = torch.tensor([1.0, 1.0])
    next_q = torch.tensor([[0.0, 2.0], [3.0, -1.0]])
    term = torch.tensor([False, True])
    assert torch.allclose(ql.q_learning_td_target(r, next_q, term, 0.5), torch.tensor([2.0, 1.0]))
    assert torch.allclose(ql.sarsa_td_target(r, torch.tensor([0.0, 3.0]), term, 0.5), torch.tensor([1.0, 1.0]))


@pytest.mark.parametrize(
    "fn,args,exc,name",
    [
        (ql.epsilon_greedy, ([0.0, 1.0], 0.1), TypeError, "q_values"),
        (ql.epsilon_greedy, (torch.zeros(2, 2, 2), 0.1), ValueError, "q_values"),
        (ql.epsilon_greedy, (torch.zeros(3), 1.5), ValueError, "epsilon"),
        (ql.epsilon_greedy, (torch.zeros(3), 0.1, 3), TypeError, "generator"),
        (ql.epsilon_greedy_probs, (torch.zeros(3), -0.1), ValueError, "epsilon"),
        (ql.q_learning_td_target, (torch.zeros(2), torch.zeros(2, 3), torch.zeros(2), 0.9), ValueError, "terminated"),
        (ql.q_learning_td_target, (torch.zeros(3), torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool), 0.9), ValueError, "reward"),
        (ql.q_learning_td_target, (torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool), 1.5), ValueError, "gamma"),
        (ql.q_learning_td_target, (0.0, torch.zeros(3), torch.tensor(False), 0.9), TypeError, "reward"),
        (ql.sarsa_td_target, (torch.zeros(2), "q", torch.zeros(2, dtype=torch.bool), 0.9), TypeError, "next_q_value"),
        (ql.bandit_testbed, (0.1, 0), ValueError, "num_runs"),
        (ql.bandit_testbed, (2.0,), ValueError, "epsilon"),
        (ql.q_learning, (3, ql.TabularQConfig()), TypeError, "env_id"),
        (ql.q_learning, ("FrozenLake-v1", {"total_steps": 3}), TypeError, "config"),
        (ql.q_learning, ("CartPole-v1", ql.TabularQConfig(total_steps=10, progress=False)), ValueError, "Discrete"),
        (ql.q_learning, ("FrozenLake-v1", ql.TabularQConfig(total_steps=10, progress=False), torch.zeros(3, 3)), ValueError, "q_star"),
        (ql.fitted_q_iteration, ([1, 2], ql.FittedQConfig()), TypeError, "dataset"),
        (ql.fitted_q_iteration, ({"obs": torch.zeros(3, 2)}, ql.FittedQConfig()), ValueError, "dataset"),
        (ql.evaluate_q_function, (lambda o: o, "CartPole-v1", 0), ValueError, "episodes"),
        (ql.baird_counterexample, (0,), ValueError, "sweeps"),
        (ql.baird_counterexample, (10, 0.0), ValueError, "alpha"),
        (ql.collect_transitions, ("CartPole-v1", 0), ValueError, "num_steps"),
        # issue 18: NaN/inf, wrong shapes and kinds are refused, naming the argument
        (ql.epsilon_greedy, (torch.tensor([NAN, 1.0]), 0.0), ValueError, "q_values"),
        (ql.epsilon_greedy, (torch.tensor([[0.0, 1.0], [float("inf"), 0.0]]), 0.1), ValueError, "q_values"),
        (ql.epsilon_greedy_probs, (torch.tensor([1.0, NAN]), 0.1), ValueError, "q_values"),
        (ql.q_learning_td_target, (torch.tensor([NAN, 0.0]), torch.zeros(2, 3), torch.zeros(2, dtype=torch.bool), 0.9), ValueError, "reward"),
        (ql.q_learning_td_target, (torch.zeros(2), torch.full((2, 3), NAN), torch.zeros(2, dtype=torch.bool), 0.9), ValueError, "next_q_values"),
        (ql.sarsa_td_target, (torch.zeros(2), torch.tensor([0.0, float("-inf")]), torch.zeros(2, dtype=torch.bool), 0.9), ValueError, "next_q_value"),
        (ql.sarsa_td_target, (torch.tensor([True, False]), torch.zeros(2), torch.zeros(2, dtype=torch.bool), 0.9), TypeError, "reward"),
        (ql.QTable, (0, 2), ValueError, "num_states"),
        (ql.QTable, (True, 2), TypeError, "num_states"),
        (ql.QTable, (3, 2, NAN), ValueError, "initial_q"),
        (ql.q_learning, ("FrozenLake-v1", ql.TabularQConfig(total_steps=10, progress=False), torch.full((16, 4), NAN)), ValueError, "q_star"),
        (ql.sarsa, ("FrozenLake-v1", ql.TabularQConfig(total_steps=10, progress=False), [[0.0] * 4] * 16), TypeError, "q_star"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, rewards=torch.tensor([1.0, NAN, 0.0, 0.0])), LINEAR), ValueError, r"dataset\['rewards'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, obs=torch.full((4, 2), float("inf"))), LINEAR), ValueError, r"dataset\['obs'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, actions=torch.tensor([0, 1, 1, -1])), LINEAR), ValueError, r"dataset\['actions'\].*\[0, 2\)"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, num_actions=1), LINEAR), ValueError, r"dataset\['actions'\].*\[0, 1\)"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, actions=torch.tensor([0.0, 1.0, 1.0, 0.7])), LINEAR), TypeError, r"dataset\['actions'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, num_actions=True), LINEAR), TypeError, "num_actions"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, terminated=torch.tensor([0.0, 0.5, 0.0, 1.0])), LINEAR), ValueError, r"dataset\['terminated'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, weights=torch.tensor([1.0, -1.0, 1.0, 1.0])), LINEAR), ValueError, r"dataset\['weights'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, weights=torch.ones(3)), LINEAR), ValueError, r"dataset\['weights'\]"),
        (ql.fitted_q_iteration, (dict(GOOD_DATA, obs=torch.tensor(1.0), next_obs=torch.tensor(1.0)), LINEAR), ValueError, r"dataset\['obs'\]"),
        (ql.evaluate_q_function, (lambda o: torch.full((o.shape[0], 2), NAN), "CartPole-v1", 2, 0, 3), ValueError, "q_function"),
        (ql.evaluate_q_function, (lambda o: o, "CartPole-v1", 2, 0, 3), ValueError, "q_function"),
        (ql.evaluate_q_function, (3, "CartPole-v1", 2), TypeError, "q_function"),
        (ql.evaluate_q_function, (lambda o: o, 3, 2), TypeError, "env_id"),
        (ql.evaluate_q_function, (lambda o: o, "Pendulum-v1", 2), ValueError, "env_id"),
        (ql.collect_transitions, (3, 10), TypeError, "env_id"),
        (ql.collect_transitions, ("Pendulum-v1", 10), ValueError, "env_id"),
        (ql.collect_transitions, ("CartPole-v1", 10, 0, "greedy"), TypeError, "q_function"),
        (ql.collect_transitions, ("CartPole-v1", 10, 0, lambda o: torch.zeros(1, 3), 0.0), ValueError, "q_function"),
        (ql.FittedQFunction, ("svm", 2, 2), ValueError, "kind"),
        (lambda: ql.FittedQFunction("linear", 2, 2)(torch.zeros(3, 4)), (), ValueError, "obs"),
    ],
)
def test_bad_input_table(fn, args, exc, name):
    with pytest.raises(exc, match=name):
        fn(*args)


@pytest.mark.parametrize(
    "cls,kwargs,name",
    [
        (ql.TabularQConfig, {"total_steps": 0}, "total_steps"),
        (ql.TabularQConfig, {"alpha": 1.5}, "alpha"),
        (ql.TabularQConfig, {"alpha_power": 2.0}, "alpha_power"),
        (ql.TabularQConfig, {"epsilon": -0.1}, "epsilon"),
        (ql.TabularQConfig, {"gamma": "0.9"}, "gamma"),
        (ql.TabularQConfig, {"env_kwargs": [("a", 1)]}, "env_kwargs"),
        (ql.FittedQConfig, {"regressor": "svm"}, "regressor"),
        (ql.FittedQConfig, {"iterations": 0}, "iterations"),
        (ql.FittedQConfig, {"min_samples_split": 1}, "min_samples_split"),
        (ql.FittedQConfig, {"hidden_sizes": (0,)}, "hidden_sizes"),
        (ql.FittedQConfig, {"eval_env_id": 3}, "eval_env_id"),
        # issue 18
        (ql.TabularQConfig, {"initial_q": float("inf")}, "initial_q"),
        (ql.TabularQConfig, {"alpha_power": NAN}, "alpha_power"),
        (ql.FittedQConfig, {"eval_max_steps": True}, "eval_max_steps"),
        (ql.FittedQConfig, {"min_samples_split": np.float64(3.0)}, "min_samples_split"),
    ],
)
def test_config_validation(cls, kwargs, name):
    with pytest.raises(ValueError, match=name):  # ArgumentTypeError is a ValueError too
        cls(**kwargs)


# --------------------------------------------------------------------------------------
# Tabular Q-learning and SARSA
# --------------------------------------------------------------------------------------


def test_q_learning_approaches_q_star():
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.9)
    Q_star, _ = dp.q_iteration(mdp)
    cfg = ql.TabularQConfig(total_steps=40_000, epsilon=1.0, alpha=1.0, alpha_power=0.6, gamma=0.9,
                            max_episode_steps=100, eval_every=10_000, progress=False)
    Q, h = ql.q_learning("FrozenLake-v1", cfg, q_star=Q_star)
    assert Q.shape == (16, 4) and h["step"] == [10_000, 20_000, 30_000, 40_000]
    assert h["q_error"][-1] < 0.6 * h["q_error"][0] and h["q_error"][-1] < 0.15
    assert h["stop_reason"] == "completed"


def test_q_learning_and_sarsa_differ_on_the_cliff():
    cfg = ql.TabularQConfig(total_steps=8_000, epsilon=0.1, alpha=0.5, gamma=1.0, max_episode_steps=500, eval_every=8_000, progress=False)
    mdp = dp.FiniteMDP.from_gymnasium("CliffWalking-v1", gamma=0.99)
    lengths = {}
    for name, fn in (("q", ql.q_learning), ("sarsa", ql.sarsa)):
        Q, _ = fn("CliffWalking-v1", cfg)
        s, n = 36, 0
        while not bool(mdp.terminal[s]) and n < 100:
            s, n = int(mdp.transitions[s, int(Q[s].argmax())].argmax()), n + 1
        lengths[name] = n
    assert lengths["q"] == 13 and lengths["sarsa"] > 13


@pytest.mark.parametrize("fn", [ql.q_learning, ql.sarsa])
def test_resume_is_bit_identical(fn, tmp_path):
    cfg = ql.TabularQConfig(total_steps=3_000, epsilon=0.3, alpha=0.2, gamma=0.95, max_episode_steps=50, eval_every=250,
                            seed=3, progress=False)
    Q_full, h_full = fn("FrozenLake-v1", cfg)
    # (1) a crash inside a step (here in env.step, after the behaviour policy drew its action)
    import gymnasium.envs.toy_text.frozen_lake as fl

    path = str(tmp_path / "crash.pt")
    original_step, calls = fl.FrozenLakeEnv.step, {"n": 0}

    def flaky_step(self, a):
        calls["n"] += 1
        if calls["n"] == 1_234:
            raise RuntimeError("simulated crash")
        return original_step(self, a)

    fl.FrozenLakeEnv.step = flaky_step
    try:
        with pytest.raises(RuntimeError, match="simulated crash"):
            fn("FrozenLake-v1", dataclasses.replace(cfg, checkpoint_path=path))
    finally:
        fl.FrozenLakeEnv.step = original_step
    Q_resumed, h_resumed = fn("FrozenLake-v1", dataclasses.replace(cfg, checkpoint_path=path))
    assert torch.equal(Q_full, Q_resumed)
    for key in ("step", "episodes", "mean_return"):
        assert np.array_equal(np.array(h_full[key]), np.array(h_resumed[key]), equal_nan=True)
    # (2) a stop at a step boundary (the time budget), resumed with the budget lifted (an allowed change)
    path = str(tmp_path / "budget.pt")
    Q_part, h_part = fn("FrozenLake-v1", dataclasses.replace(cfg, checkpoint_path=path, max_seconds=0.02))
    assert h_part["stop_reason"] == "time_budget" and h_part["step"][-1] < cfg.total_steps
    Q_resumed, h_resumed = fn("FrozenLake-v1", dataclasses.replace(cfg, checkpoint_path=path))
    assert torch.equal(Q_full, Q_resumed)


def test_resume_refuses_a_changed_config(tmp_path):
    from course_lib.training import CheckpointError

    path = str(tmp_path / "q.pt")
    cfg = ql.TabularQConfig(total_steps=500, eval_every=100, progress=False, checkpoint_path=path)
    ql.q_learning("FrozenLake-v1", dataclasses.replace(cfg, max_seconds=0.01))
    with pytest.raises(CheckpointError, match="alpha"):
        ql.q_learning("FrozenLake-v1", dataclasses.replace(cfg, alpha=0.3))


# --------------------------------------------------------------------------------------
# Fitted Q-iteration
# --------------------------------------------------------------------------------------


def _tabular_dataset(mdp):
    s, a, t = (mdp.transitions > 0).nonzero(as_tuple=True)
    eye = torch.eye(mdp.num_states, dtype=torch.float64)
    return {"obs": eye[s], "actions": a, "rewards": mdp.next_state_rewards[s, a, t], "next_obs": eye[t],
            "terminated": mdp.terminal[t] & ~mdp.terminal[s], "weights": mdp.transitions[s, a, t], "num_actions": mdp.num_actions}


@pytest.mark.parametrize("k", [1, 2, 7])
def test_linear_fqi_equals_q_iteration_step_for_step(k):
    mdp = dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.95)
    Q = torch.zeros(16, 4, dtype=torch.float64)
    for _ in range(k):
        Q = dp.bellman_optimality_backup_q(mdp, Q)
    q_fn, h = ql.fitted_q_iteration(_tabular_dataset(mdp), ql.FittedQConfig(regressor="linear", iterations=k, gamma=0.95, progress=False))
    assert torch.allclose(q_fn(torch.eye(16, dtype=torch.float64)), Q, atol=1e-12)
    assert h["iteration"] == list(range(1, k + 1))


@pytest.mark.parametrize("regressor", ["extra_trees", "mlp"])
def test_fqi_runs_and_learns_something_on_cartpole(regressor):
    data = ql.collect_transitions("CartPole-v1", 600, seed=0)
    assert data["obs"].shape == (600, 4) and data["terminated"].dtype == torch.bool
    cfg = ql.FittedQConfig(regressor=regressor, iterations=3, n_estimators=5, epochs=20, progress=False)
    q_fn, h = ql.fitted_q_iteration(data, cfg)
    assert q_fn(data["obs"][:5]).shape == (5, 2)
    assert len(h["td_error"]) == 3 and all(np.isfinite(h["td_error"]))
    # Q grows towards the discounted sum of +1 rewards as iterations add horizon
    assert h["q_mean"][0] < h["q_mean"][-1]


def test_evaluate_q_function_returns_per_episode():
    ret = ql.evaluate_q_function(lambda o: torch.zeros(o.shape[0], 2), "CartPole-v1", episodes=3, seed=0, max_steps=5)
    assert ret.shape == (3,) and np.all(ret <= 5) and np.all(ret >= 1)


def test_baird_diverges_and_refit_converges():
    out = ql.baird_counterexample(sweeps=500)
    w = out["weights"].norm(dim=1)
    assert w[-1] > 5 * w[0]
    assert out["fitted_values"][-1].abs().max() < 0.01 * out["fitted_values"][0].abs().max()
    assert torch.all(out["tabular_values"].abs().amax(1).diff() <= 1e-12)


# --------------------------------------------------------------------------------------
# issue 18: NumPy scalars are accepted wherever a Python number is
# --------------------------------------------------------------------------------------


def test_configs_store_numpy_scalars_as_python_numbers():
    cfg = ql.TabularQConfig(total_steps=np.int64(500), alpha=np.float32(0.5), alpha_power=np.float64(0.0), gamma=np.float32(0.9),
                            epsilon=np.float32(0.25), initial_q=np.float32(1.0), max_episode_steps=np.int32(50),
                            eval_every=np.int64(100), seed=np.uint8(3))
    for name in ("total_steps", "max_episode_steps", "eval_every", "seed"):
        assert type(getattr(cfg, name)) is int
    for name in ("alpha", "alpha_power", "gamma", "epsilon", "initial_q"):
        assert type(getattr(cfg, name)) is float
    assert cfg.epsilon == float(np.float32(0.25)) and cfg.total_steps == 500
    fcfg = ql.FittedQConfig(iterations=np.int64(2), gamma=np.float32(0.5), lr=np.float32(0.01), eval_max_steps=np.int64(7),
                            hidden_sizes=(np.int64(8),), seed=np.int64(1))
    assert type(fcfg.iterations) is int and type(fcfg.gamma) is float and type(fcfg.lr) is float
    assert type(fcfg.eval_max_steps) is int and fcfg.hidden_sizes == (8,) and type(fcfg.seed) is int


def test_numpy_scalar_config_checkpoints_and_resumes(tmp_path):
    # a checkpoint holds the config: a NumPy scalar in it made the file unloadable (weights_only)
    cfg = ql.TabularQConfig(total_steps=2_000, epsilon=np.float32(0.3), gamma=np.float64(0.95), eval_every=100,
                            progress=False, checkpoint_path=str(tmp_path / "q.pt"), max_seconds=0.01)
    _, h_part = ql.q_learning("FrozenLake-v1", cfg)
    Q, h = ql.q_learning("FrozenLake-v1", dataclasses.replace(cfg, max_seconds=None))
    assert h["stop_reason"] == "completed" and h["step"][-1] == 2_000
    Q_plain, _ = ql.q_learning("FrozenLake-v1", dataclasses.replace(cfg, epsilon=float(np.float32(0.3)), gamma=0.95,
                                                                     checkpoint_path=None, max_seconds=None))
    assert torch.equal(Q, Q_plain)


def test_numpy_scalars_give_the_python_number_results():
    q = torch.tensor([[0.0, 2.0, 1.0]]).expand(500, 3)
    eps = np.float32(0.3)
    a = ql.epsilon_greedy(q, eps, torch.Generator().manual_seed(0))
    b = ql.epsilon_greedy(q, float(eps), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert torch.equal(ql.epsilon_greedy_probs(q, eps), ql.epsilon_greedy_probs(q, float(eps)))
    r, nq, term = torch.tensor([1.0, 2.0]), torch.tensor([[1.0, 3.0], [0.0, 1.0]]), torch.tensor([False, True])
    assert torch.equal(ql.q_learning_td_target(r, nq, term, np.float64(0.5)), ql.q_learning_td_target(r, nq, term, 0.5))
    out_np = ql.bandit_testbed(np.float32(0.5), np.int64(20), np.int32(4), np.int64(30), initial_value=np.float32(1.0),
                               step_size=np.float64(0.25), seed=np.int64(2))
    out_py = ql.bandit_testbed(float(np.float32(0.5)), 20, 4, 30, initial_value=1.0, step_size=0.25, seed=2)
    assert all(torch.equal(out_np[k], out_py[k]) for k in out_py)
    out = ql.baird_counterexample(np.int64(5), np.float32(0.01), np.float64(0.99))
    assert out["weights"].shape == (6, 8)


def test_fqi_dataset_checks_keep_valid_results():
    # integer num_actions given as a 0-d tensor, float 0/1 terminated flags: accepted, same fit as the plain forms
    data = dict(GOOD_DATA, obs=torch.eye(4)[:, :2].contiguous(), next_obs=torch.eye(4)[[1, 2, 3, 0], :2].contiguous())
    q1, _ = ql.fitted_q_iteration(data, LINEAR)
    q2, _ = ql.fitted_q_iteration(dict(data, num_actions=torch.tensor(2), terminated=data["terminated"].float()), LINEAR)
    assert torch.equal(q1.weight, q2.weight)


# --------------------------------------------------------------------------------------
# Boltzmann exploration, Double Q-learning, maximization bias, Baird with a target period
# (issue 23 section 3 and Chapter 6's Baird sweep)
# --------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(A=st.integers(1, 6), kappa=st.floats(0.05, 20.0), shift=st.floats(-50, 50), seed=st.integers(0, 100))
def test_boltzmann_probs_ratio_shift_invariance_and_normalisation(A, kappa, shift, seed):
    q = torch.randn(3, A, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    p = ql.boltzmann_probs(q, kappa)
    assert p.shape == q.shape and torch.allclose(p.sum(-1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(ql.boltzmann_probs(q + shift, kappa), p, atol=1e-12)
    # pi(a) / pi(b) = exp((Q(a) - Q(b)) / kappa), against a hand-written exponential
    expected = torch.exp((q - q[:, :1]) / kappa) / torch.exp((q - q[:, :1]) / kappa).sum(-1, keepdim=True)
    assert torch.allclose(p, expected, atol=1e-12)


def test_boltzmann_probs_limits_greedy_and_uniform():
    q = torch.tensor([0.0, 1.0, 1.0, -2.0], dtype=torch.float64)
    assert torch.allclose(ql.boltzmann_probs(q, 1e-4), torch.tensor([0.0, 0.5, 0.5, 0.0], dtype=torch.float64))
    assert torch.allclose(ql.boltzmann_probs(q, 1e6), torch.full((4,), 0.25, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("args,exc,name", [((torch.zeros(3), 0.0), ValueError, "temperature"),
                                           ((torch.zeros(3), float("inf")), ValueError, "temperature"),
                                           ((torch.zeros(3), "1"), TypeError, "temperature"),
                                           ((torch.tensor([0.0, NAN]), 1.0), ValueError, "q_values"),
                                           ((np.zeros(3), 1.0), TypeError, "q_values")])
def test_boltzmann_probs_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        ql.boltzmann_probs(*args)


def test_double_q_target_selects_with_one_table_and_evaluates_with_the_other():
    reward = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)
    select = torch.tensor([[0.0, 3.0], [5.0, 1.0], [2.0, 0.0]], dtype=torch.float64)
    evaluate = torch.tensor([[10.0, -4.0], [7.0, 9.0], [1.0, 1.0]], dtype=torch.float64)
    terminated = torch.tensor([False, False, True])
    y = ql.double_q_learning_td_target(reward, select, evaluate, terminated, 0.5)
    assert torch.allclose(y, torch.tensor([1.0 + 0.5 * -4.0, 1.0 + 0.5 * 7.0, 0.5], dtype=torch.float64))
    # with the same table on both sides it is the Q-learning target
    assert torch.allclose(ql.double_q_learning_td_target(reward, select, select, terminated, 0.5),
                          ql.q_learning_td_target(reward, select, terminated, 0.5))


@settings(max_examples=30, deadline=None)
@given(B=st.integers(1, 8), A=st.integers(1, 5), gamma=st.floats(0.0, 1.0), seed=st.integers(0, 100))
def test_double_q_target_never_exceeds_the_max_of_the_evaluating_table(B, A, gamma, seed):
    gen = torch.Generator().manual_seed(seed)
    reward, q1, q2 = torch.randn(B, generator=gen), torch.randn(B, A, generator=gen), torch.randn(B, A, generator=gen)
    terminated = torch.rand(B, generator=gen) < 0.3
    assert (ql.double_q_learning_td_target(reward, q1, q2, terminated, gamma)
            <= ql.q_learning_td_target(reward, q2, terminated, gamma) + 1e-6).all()


def test_double_q_target_is_unbiased_where_the_max_is_not():
    """Independent noisy tables of a zero-valued state: E[max] > 0, the double estimate has mean 0."""
    gen = torch.Generator().manual_seed(0)
    q1, q2 = torch.randn(100_000, 10, generator=gen, dtype=torch.float64), torch.randn(100_000, 10, generator=gen, dtype=torch.float64)
    zero, term = torch.zeros(100_000, dtype=torch.float64), torch.zeros(100_000, dtype=torch.bool)
    double = ql.double_q_learning_td_target(zero, q1, q2, term, 1.0)
    single = ql.q_learning_td_target(zero, q1, term, 1.0)
    assert abs(double.mean().item()) < 5 * double.std().item() / 100_000 ** 0.5
    assert single.mean().item() > 1.5       # E[max of 10 standard normals] = 1.54


@pytest.mark.parametrize("kwargs,exc,name", [({"next_q_evaluate": torch.zeros(2, 3)}, ValueError, "same shape"),
                                             ({"next_q_select": "x"}, TypeError, "next_q_select"),
                                             ({"next_q_evaluate": torch.tensor([[0.0, NAN]])}, ValueError, "next_q_evaluate"),
                                             ({"gamma": 1.5}, ValueError, "gamma"),
                                             ({"terminated": torch.zeros(1)}, ValueError, "terminated")])
def test_double_q_target_bad_input(kwargs, exc, name):
    args = {"reward": torch.zeros(1), "next_q_select": torch.zeros(1, 2), "next_q_evaluate": torch.zeros(1, 2),
            "terminated": torch.zeros(1, dtype=torch.bool), "gamma": 0.9, **kwargs}
    with pytest.raises(exc, match=name):
        ql.double_q_learning_td_target(**args)


def test_maximization_bias_q_learning_prefers_left_and_double_q_learning_does_not():
    q = ql.maximization_bias(False, num_runs=2000, episodes=100, seed=1)
    d = ql.maximization_bias(True, num_runs=2000, episodes=100, seed=1)
    assert q["left"].shape == (100,) and q["left_runs"].shape == (2000, 100) and q["q_a"].shape == (2000, 2)
    assert q["left"][0].item() == pytest.approx(0.5, abs=0.05)        # ties broken at random at the start
    assert q["left"][5:30].mean() > 0.6                               # biased towards left
    assert d["left"][5:30].mean() < 0.5 and d["left"][-30:].mean() < q["left"][-30:].mean()
    assert (q["q_a"][:, 0].mean() > d["q_a"][:, 0].mean())            # Q(A, left): overestimated by Q-learning


def test_maximization_bias_without_bias_both_find_left_when_it_pays():
    """b_mean = +0.5: left is truly better, so both go left most of the time (not a constant 'avoid left')."""
    for double in (False, True):
        out = ql.maximization_bias(double, num_runs=500, episodes=200, b_mean=0.5, seed=2)
        assert out["left"][-50:].mean() > 0.75                       # the optimal rate is 1 - epsilon/2 = 0.95


def test_maximization_bias_is_reproducible_and_checks_inputs():
    a = ql.maximization_bias(True, num_runs=50, episodes=20, seed=3)
    b = ql.maximization_bias(True, num_runs=50, episodes=20, seed=3)
    assert torch.equal(a["left_runs"], b["left_runs"])
    for kwargs, exc, name in [({"double": 1}, TypeError, "double"), ({"num_runs": 0}, ValueError, "num_runs"),
                              ({"epsilon": 2.0}, ValueError, "epsilon"), ({"alpha": 0.0}, ValueError, "alpha"),
                              ({"b_mean": NAN}, ValueError, "b_mean"), ({"seed": -1}, ValueError, "seed")]:
        with pytest.raises(exc, match=name):
            ql.maximization_bias(**{"double": True, "num_runs": 5, "episodes": 2, **kwargs})


def test_baird_target_period_one_is_the_plain_semi_gradient_sweep():
    plain = ql.baird_counterexample(sweeps=200)
    out = ql.baird_target_periods([1], sweeps=200)
    assert torch.allclose(out["weight_norms"][0], plain["weights"].norm(dim=1), rtol=1e-10)
    assert torch.allclose(out["max_values"][0], (plain["weights"] @ plain["features"].T).abs().amax(1), rtol=1e-10)


def test_baird_target_period_matches_a_loop_and_long_periods_stay_bounded():
    out = ql.baird_target_periods([10, 300], sweeps=3000)
    X = ql.baird_counterexample(sweeps=1)["features"]
    w = torch.tensor([1, 1, 1, 1, 1, 1, 10, 1], dtype=torch.float64)
    w_minus = w.clone()
    for k in range(1, 3001):                                      # a plain loop, period 10
        w = w + 0.01 / 7 * ((0.99 * (X[6] @ w_minus) - X @ w) @ X)
        if k % 10 == 0:
            w_minus = w.clone()
    assert torch.allclose(out["weight_norms"][0, -1], w.norm(), rtol=1e-9)
    assert out["weight_norms"][0, -1] > 1e3 * out["weight_norms"][0, 0]     # period 10 still diverges
    assert out["weight_norms"][1].max() < 2 * out["weight_norms"][1, 0]      # period 300 stays bounded


@pytest.mark.parametrize("kwargs,exc,name", [({"periods": []}, TypeError, "periods"), ({"periods": [0]}, ValueError, "periods"),
                                             ({"periods": [1.5]}, TypeError, "periods"), ({"sweeps": 0}, ValueError, "sweeps"),
                                             ({"alpha": -1.0}, ValueError, "alpha"), ({"gamma": 2.0}, ValueError, "gamma")])
def test_baird_target_periods_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        ql.baird_target_periods(**{"periods": [1], "sweeps": 5, **kwargs})
