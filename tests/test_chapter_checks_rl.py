"""The numeric checks of Chapters 5-7 catch the wrong formulas their sentences name.

CHAPTER_STANDARD: a check is *proven falsifiable* by a test that feeds it the wrong
formula its sentence names and asserts that it fails. Each check cell of a master
notebook starts with a marker line ``# CHECK: <label>`` and defines the check as a
function of the implementation under test. These tests read that cell from the
notebook, execute only its ``def`` statements (nothing that trains or plots), and
call the check with the right implementation (it must pass) and with each wrong
one (it must raise ``AssertionError``).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import course_lib
from course_lib import rl

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def check_cell(notebook: str, label: str) -> str:
    """The source of the code cell of ``notebook`` that carries the line ``# CHECK: label``."""
    nb = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))
    marker = f"# CHECK: {label}"
    hits = [
        "".join(cell["source"])
        for cell in nb["cells"]
        if cell["cell_type"] == "code" and marker in [line.strip() for line in "".join(cell["source"]).splitlines()]
    ]
    assert len(hits) == 1, f"{notebook}: {len(hits)} code cells carry {marker!r}"
    return hits[0]


def load_check(notebook: str, label: str, **extra_globals) -> dict:
    """Execute only the imports and ``def`` statements of the check cell; return its namespace."""
    tree = ast.parse(check_cell(notebook, label))
    kept = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    assert any(isinstance(node, ast.FunctionDef) for node in kept), f"{label}: the cell defines no function"
    namespace = {"torch": torch, "np": np, "math": math, "rl": rl, "course_lib": course_lib, **extra_globals}
    exec(compile(ast.Module(body=kept, type_ignores=[]), f"{notebook}:{label}", "exec"), namespace)
    return namespace


def fails(check, *args, **kwargs) -> bool:
    """True when the check raises AssertionError (a wrong formula caught)."""
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


# --------------------------------------------------------------------------------------
# Chapter 5
# --------------------------------------------------------------------------------------

CH5 = "05_baselines.ipynb"
THETA0 = torch.tensor([[0.3, -0.2], [-0.5, 0.4]], dtype=torch.float64)  # Chapter 4's logits
THETA1 = THETA0 + torch.tensor([[0.4, -0.3], [0.2, 0.5]], dtype=torch.float64)


@pytest.fixture(scope="module")
def tiny():
    mdp = rl.tiny_mdp()
    return mdp, rl.exact_trajectories(THETA0, mdp)


@pytest.fixture(scope="module")
def untrained_return():
    """The mean return of the untrained policy of Chapter 5's section 5.1 (its config cell seeds 0)."""
    import torch._dynamo  # noqa: F401  (the optimizers import it on first use: 3 s, paid here once, not in a test)

    course_lib.seed_everything(0)
    policy0 = rl.CategoricalPolicy(4, 2, (32,))
    envs = rl.make_vec_env("CartPole-v1", 8)
    try:
        batch = rl.collect_batch(envs, policy0, 1000, 0.99, seed=0)
    finally:
        envs.close()
    return float(batch.episode_returns.mean())


def test_eq5_rtg_episodes_catches_a_reward_to_go_across_episodes():
    ns = load_check(CH5, "eq5-rtg-episodes")
    lengths = [4, 2, 5, 3]  # back-to-back episodes of +1 rewards, as in a CartPole batch
    rewards = torch.ones(sum(lengths), dtype=torch.float64)
    dones = torch.zeros(sum(lengths), dtype=torch.bool)
    dones[torch.tensor(lengths).cumsum(0) - 1] = True
    ns["check_reward_to_go"](rl.reward_to_go, rewards, dones, 0.99)
    across = lambda r, gamma, dones=None: rl.reward_to_go(r, gamma)  # noqa: E731  (dones ignored)
    assert fails(ns["check_reward_to_go"], across, rewards, dones, 0.99)


def test_eq5_optimal_state_baseline_catches_the_value_function(tiny):
    mdp, traj = tiny
    ns = load_check(CH5, "eq5-optimal-state-baseline")
    ns["check_state_baseline"](rl.optimal_state_baseline, traj, mdp.num_states)
    V, _ = rl.exact_values(THETA0, mdp)
    returns_value = lambda traj, num_states: V[: mdp.horizon]  # noqa: E731
    assert fails(ns["check_state_baseline"], returns_value, traj, mdp.num_states)


def test_eq5_learning_curves_catch_a_reinforce_loss_of_the_wrong_sign(monkeypatch, untrained_return):
    import course_lib.rl.reinforce as reinforce_module

    check = load_check(CH5, "eq5-learning-curves")["check_learning"]
    config = rl.ReinforceConfig(baseline="mean", seed=0, total_steps=3000, progress=False)
    right = rl.train_reinforce(config)[1]
    check({"mean": [right]}, untrained_return, factor=2)
    loss = reinforce_module.reinforce_loss
    monkeypatch.setattr(reinforce_module, "reinforce_loss", lambda log_probs, weights: -loss(log_probs, weights))
    descending = rl.train_reinforce(config)[1]
    assert fails(check, {"mean": [descending]}, untrained_return, factor=2)


def test_eq5_learning_curves_catch_actor_critic_advantages_of_the_wrong_sign(monkeypatch, untrained_return):
    import course_lib.rl.actor_critic as actor_critic_module

    check = load_check(CH5, "eq5-learning-curves")["check_learning"]
    gae = actor_critic_module.gae
    monkeypatch.setattr(actor_critic_module, "gae", lambda *args: -gae(*args))
    flipped = rl.train_actor_critic(rl.ActorCriticConfig(seed=0, total_steps=2000, progress=False))[2]
    assert fails(check, {"A2C": [flipped]}, untrained_return, factor=1, best_factor=5)


def _advantage_variants():
    def right(theta, mdp):
        V, Q = rl.exact_values(theta, mdp)
        return Q - V[:-1, :, None]

    def against_best(theta, mdp):
        _, Q = rl.exact_values(theta, mdp)
        return Q - Q.amax(-1, keepdim=True)

    def next_step_value(theta, mdp):
        V, Q = rl.exact_values(theta, mdp)
        return Q - V[1:, :, None]

    return right, {"Q - max_a Q": against_best, "Q_t - V_{t+1}": next_step_value}


@pytest.mark.parametrize("wrong", ["Q - max_a Q", "Q_t - V_{t+1}"])
def test_eq5_advantage_catches(wrong, tiny):
    mdp, _ = tiny
    ns = load_check(CH5, "eq5-advantage")
    ns["check_advantage"](ns["advantage"], THETA0, mdp)
    right, wrongs = _advantage_variants()
    ns["check_advantage"](right, THETA0, mdp)
    assert fails(ns["check_advantage"], wrongs[wrong], THETA0, mdp)


@pytest.mark.parametrize("wrong", ["policy term of the wrong sign", "entropy penalty", "target not held constant"])
def test_eq5_a2c_loss_catches(wrong):
    ns = load_check(CH5, "eq5-a2c-loss")
    loss = ns["a2c_loss"]
    ns["check_a2c_loss"](loss)

    def wrong_sign(logits, values, actions, adv, targets, c_v, c_h):
        log_pi = torch.log_softmax(logits, -1)
        log_probs = log_pi.gather(1, actions[:, None]).squeeze(1)
        entropy = -(log_pi.exp() * log_pi).sum(-1).mean()
        return (log_probs * adv).mean() + c_v * (values - targets).pow(2).mean() - c_h * entropy

    wrongs = {
        "policy term of the wrong sign": wrong_sign,
        "entropy penalty": lambda lg, v, a, adv, y, c_v, c_h: loss(lg, v, a, adv, y, c_v, -c_h),
        "target not held constant": lambda lg, v, a, adv, y, c_v, c_h: loss(lg, v, a, adv, adv + v, c_v, c_h),
    }
    assert fails(ns["check_a2c_loss"], wrongs[wrong])


@pytest.mark.parametrize("wrong", ["current ratio alone", "no ratio"])
def test_eq5_is_pg_catches(wrong, tiny):
    mdp, _ = tiny
    ns = load_check(CH5, "eq5-is-pg")
    ns["check_importance_weights"](rl.importance_weights, THETA0, THETA1, mdp)
    wrongs = {"current ratio alone": lambda new, old: (new - old).exp(), "no ratio": lambda new, old: torch.ones_like(new)}
    assert fails(ns["check_importance_weights"], wrongs[wrong], THETA0, THETA1, mdp)


def test_eq5_first_order_catches_the_log_ratio_surrogate(tiny):
    mdp, _ = tiny
    ns = load_check(CH5, "eq5-first-order")
    ns["check_first_order"](ns["first_order_surrogate"], THETA0, THETA1, mdp)
    log_ratio = lambda log_pi, log_pi_old, adv: (log_pi - log_pi_old) * adv  # noqa: E731
    assert fails(ns["check_first_order"], log_ratio, THETA0, THETA1, mdp)


@pytest.mark.parametrize("wrong", ["unclipped", "max", "clipped term alone"])
def test_eq5_ppo_catches(wrong):
    ns = load_check(CH5, "eq5-ppo")
    ns["check_ppo_clip"](ns["ppo_objective"])
    wrongs = {
        "unclipped": lambda ratio, adv, eps: ratio * adv,
        "max": lambda ratio, adv, eps: torch.max(ratio * adv, ratio.clamp(1 - eps, 1 + eps) * adv),
        "clipped term alone": lambda ratio, adv, eps: ratio.clamp(1 - eps, 1 + eps) * adv,
    }
    assert fails(ns["check_ppo_clip"], wrongs[wrong])


@pytest.mark.parametrize("wrong", ["mean return", "fourth power"])
def test_eq5_sampled_optimal_baseline_catches(wrong, tiny):
    _, traj = tiny
    ns = load_check(CH5, "eq5-optimal-baseline-sampled")
    ns["check_sampled_baseline"](rl.optimal_baseline, traj)
    wrongs = {
        "mean return": lambda g, R: R.mean().expand(g.shape[1]),
        "fourth power": lambda g, R: (g**4 * R[:, None]).sum(0) / (g**4).sum(0),
    }
    assert fails(ns["check_sampled_baseline"], wrongs[wrong], traj)


# --------------------------------------------------------------------------------------
# Chapter 6
# --------------------------------------------------------------------------------------

CH6 = "06_q_iteration.ipynb"


@pytest.fixture(scope="module")
def frozen_lake():
    return rl.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99)


def test_eq_eps_greedy_catches_cs182_counting_and_swapped_roles():
    ns = load_check(CH6, "eq-eps-greedy")
    check = ns["check_epsilon_greedy"]
    check(rl.epsilon_greedy, rl.epsilon_greedy_probs)

    def other_arms(q, epsilon, generator):  # CS182: epsilon spread over the k - 1 arms that are not greedy
        greedy = q.argmax(-1)
        explore = torch.rand(q.shape[:-1], generator=generator) < epsilon
        other = (greedy + torch.randint(1, q.shape[-1], q.shape[:-1], generator=generator)) % q.shape[-1]
        return torch.where(explore, other, greedy)

    def other_arms_probs(q, epsilon):
        greedy = torch.nn.functional.one_hot(q.argmax(-1), q.shape[-1]).double()
        return (1 - epsilon) * greedy + epsilon / (q.shape[-1] - 1) * (1 - greedy)

    swapped = lambda q, epsilon, generator: rl.epsilon_greedy(q, 1 - epsilon, generator)  # noqa: E731
    assert fails(check, other_arms, rl.epsilon_greedy_probs)
    assert fails(check, swapped, rl.epsilon_greedy_probs)
    assert fails(check, rl.epsilon_greedy, other_arms_probs)


def test_eq_exact_evaluation_catches_a_policy_matrix_bug_both_solvers_share(frozen_lake):
    ns = load_check(CH6, "eq-exact-evaluation")
    gen = torch.Generator().manual_seed(0)
    small = rl.random_mdp(10, 3, gamma=0.9, seed=1)
    cases = {"FrozenLake": (frozen_lake, torch.full((16, 4), 0.25, dtype=torch.float64)),
             "random": (small, torch.softmax(torch.randn(10, 3, generator=gen, dtype=torch.float64), -1))}
    ns["check_policy_evaluation"](rl.policy_evaluation, rl.iterative_policy_evaluation, cases)

    def transposed(m, pi):  # P^pi transposed: the bug would sit in the shared rl.policy_matrices
        P_pi, r_pi = rl.policy_matrices(m, pi)
        return P_pi.T, r_pi

    def exact_t(m, pi):
        P_pi, r_pi = transposed(m, pi)
        return torch.linalg.solve(torch.eye(m.num_states, dtype=torch.float64) - m.gamma * P_pi, r_pi)

    def iterative_t(m, pi, tol):
        P_pi, r_pi = transposed(m, pi)
        V, history = torch.zeros(m.num_states, dtype=torch.float64), []
        while not history or history[-1] >= tol:
            V_new = r_pi + m.gamma * P_pi @ V
            history.append((V_new - V).abs().max().item())
            V = V_new
        return V, history

    for m, pi in cases.values():  # the two buggy solvers agree with each other: the old check passed them
        assert (exact_t(m, pi) - iterative_t(m, pi, 1e-13)[0]).abs().max() < 1e-10
    assert fails(ns["check_policy_evaluation"], exact_t, iterative_t, cases)


@pytest.mark.parametrize("wrong", ["no gamma", "sum over actions", "sum over next states"])
def test_eq_contraction_catches(wrong):
    check = load_check(CH6, "eq-contraction")["check_contraction"]
    check(rl.bellman_optimality_backup, 3, 50)

    def q(m, V, gamma):  # (N, S, A) one-step look-ahead
        return m.rewards + gamma * torch.einsum("sat,nt->nsa", m.transitions, V)

    wrongs = {
        "no gamma": lambda m, V: q(m, V, 1.0).amax(-1),
        "sum over actions": lambda m, V: q(m, V, m.gamma).sum(-1),
        "sum over next states": lambda m, V: (m.rewards + m.gamma * V.sum(-1)[:, None, None]).amax(-1),
    }
    assert fails(check, wrongs[wrong], 3, 50)


def test_fl_start_value_catches_value_iteration_with_another_gamma(frozen_lake):
    ns = load_check(CH6, "fl-start-value", glue=lambda *args, **kwargs: None)
    ns["check_start_value"](rl.value_iteration, frozen_lake)
    m = frozen_lake
    other_gamma = rl.FiniteMDP(m.transitions, m.rewards, 0.95, m.initial_distribution, m.terminal,
                               next_state_rewards=m.next_state_rewards)
    assert fails(ns["check_start_value"], lambda mdp: rl.value_iteration(other_gamma), frozen_lake)


def test_vi_rate_catches_the_rate_gamma(frozen_lake):
    ns = load_check(CH6, "vi-rate")
    V_star, pi_star, _ = rl.value_iteration(frozen_lake)
    V, errors = torch.zeros(16, dtype=torch.float64), []
    for _ in range(300):
        errors.append((V - V_star).abs().max().item())
        V = rl.bellman_optimality_backup(frozen_lake, V)
    errors = np.array(errors)
    ns["check_vi_rate"](ns["vi_rate"], frozen_lake, pi_star, errors)
    assert fails(ns["check_vi_rate"], lambda mdp, policy: mdp.gamma, frozen_lake, pi_star, errors)


@pytest.fixture(scope="module")
def sklearn_imported():
    import sklearn.ensemble  # noqa: F401  (2 s of import, paid in the setup rather than in the test)


def test_eq_fqi_cartpole_catches_a_target_that_ignores_terminated(sklearn_imported):
    check = load_check(CH6, "eq-fqi-cartpole")["check_fqi_learns"]
    data = dict(rl.collect_transitions("CartPole-v1", 3000, seed=0))
    data["terminated"] = torch.zeros_like(torch.as_tensor(data["terminated"]))  # every target bootstraps
    config = rl.FittedQConfig(regressor="extra_trees", iterations=6, gamma=0.99, seed=0, n_estimators=10,
                              eval_env_id="CartPole-v1", eval_episodes=4, eval_max_steps=200, progress=False)
    final = rl.fitted_q_iteration(data, config)[1]["eval_return"][-1]
    random_return = rl.evaluate_q_function(lambda o: torch.rand(o.shape[0], 2), "CartPole-v1", 20, seed=10_000).mean()
    assert fails(check, {"extra_trees": final}, random_return)


# --------------------------------------------------------------------------------------
# Chapter 7
# --------------------------------------------------------------------------------------

CH7 = "07_dqn.ipynb"


def _sgd(q_net, loss, alpha):
    q_net.zero_grad()
    loss.backward()
    with torch.no_grad():
        for p in q_net.parameters():
            p -= alpha * p.grad


@pytest.mark.parametrize("wrong", ["residual gradient", "step of the wrong sign"])
def test_eq_online_q_catches(wrong):
    ns = load_check(CH7, "eq-online-q")
    ns["check_online_q"](ns["online_q_step"])

    def residual(q_net, s, a, r, s_next, gamma, alpha):  # the gradient also flows through the target
        y = r + gamma * q_net(s_next[None]).amax(1)[0]
        _sgd(q_net, 0.5 * (q_net(s[None])[0, a] - y) ** 2, alpha)

    def ascent(q_net, s, a, r, s_next, gamma, alpha):
        ns["online_q_step"](q_net, s, a, r, s_next, gamma, -alpha)

    wrongs = {"residual gradient": residual, "step of the wrong sign": ascent}
    assert fails(ns["check_online_q"], wrongs[wrong])


@pytest.mark.parametrize("wrong", ["squared loss", "threshold zeta = 2", "|delta| - 1"])
def test_eq_dqn_loss_catches(wrong):
    check = load_check(CH7, "eq-dqn-loss")["check_dqn_loss"]
    check(torch.nn.functional.smooth_l1_loss)
    wrongs = {
        "squared loss": lambda q, y: 0.5 * torch.nn.functional.mse_loss(q, y),
        "threshold zeta = 2": lambda q, y: torch.nn.functional.huber_loss(q, y, delta=2.0),
        "|delta| - 1": lambda q, y: torch.where((y - q).abs() <= 1, 0.5 * (y - q) ** 2, (y - q).abs() - 1).mean(),
    }
    assert fails(check, wrongs[wrong])


def test_replay_uniform_catches_randint_capacity_on_a_buffer_not_full():
    check = load_check(CH7, "replay-uniform")["check_partial_buffer"]
    check(lambda capacity: rl.ReplayBuffer(capacity=capacity, obs_shape=(1,)))

    class WholeCapacity(rl.ReplayBuffer):  # samples every slot, filled or not
        def sample(self, batch_size, generator=None):
            return self._gather(torch.randint(self.capacity, (batch_size,), generator=generator))

    assert fails(check, lambda capacity: WholeCapacity(capacity=capacity, obs_shape=(1,)))


@pytest.mark.parametrize("wrong", ["roles swapped", "DQN target"])
def test_eq_double_target_catches(wrong):
    check = load_check(CH7, "eq-double-target")["check_double_target"]
    check(rl.double_dqn_target)
    wrongs = {
        "roles swapped": lambda r, q_online, q_target, term, gamma: rl.double_dqn_target(r, q_target, q_online, term, gamma),
        "DQN target": lambda r, q_online, q_target, term, gamma: rl.td_target(r, q_target, term, gamma),
    }
    assert fails(check, wrongs[wrong])


def test_dqn_learns_catches_untrained_networks():
    check = load_check(CH7, "dqn-learns")["check_greedy_learned"]
    torch.manual_seed(0)
    untrained = {seed: rl.evaluate_greedy(rl.QNetwork(4, 2, (128, 128)), "CartPole-v1", 20, seed=10_000 + seed).mean()
                 for seed in range(5)}
    random_return = rl.evaluate_q_function(lambda o: torch.rand(o.shape[0], 2), "CartPole-v1", 20, seed=10_000).mean()
    assert fails(check, untrained, random_return)


def test_dqn_ablations_catch_an_ignored_flag():
    check = load_check(CH7, "dqn-ablations")["check_ablations_differ"]
    base = {"loss": [float("nan"), 0.5, 0.4], "mean_return": [20.0, 31.0, 55.0]}
    changed = {"loss": [float("nan"), 0.6, 0.3], "mean_return": [20.0, 28.0, 61.0]}
    check({"DQN": [(None, base)], "Double DQN": [(None, changed)]})
    assert fails(check, {"DQN": [(None, base)], "Double DQN": [(None, dict(base))]})


@pytest.mark.parametrize("wrong", ["rewards after the end", "first reward discounted"])
def test_discounted_return_catches(wrong):
    import gymnasium as gym

    ns = load_check(CH7, "discounted-return", gym=gym, BASE=rl.DQNConfig())
    torch.manual_seed(0)
    q_net = rl.QNetwork(4, 2, (16,))
    ns["check_measured_returns"](ns["predicted_vs_measured"], q_net)

    @torch.no_grad()
    def measure(q_net, episodes, seed, gamma, mask=True, discount_first=False):
        envs = gym.make_vec("CartPole-v1", num_envs=episodes, vectorization_mode="vector_entry_point")
        obs, _ = envs.reset(seed=seed)
        measured, lengths, running, discount = np.zeros(episodes), np.zeros(episodes, int), np.ones(episodes, bool), 1.0
        while running.any():
            obs, r, term, trunc, _ = envs.step(q_net(torch.as_tensor(obs)).argmax(1).numpy())
            if discount_first:
                discount *= gamma
            measured += np.where(running | (not mask), discount * r.astype(np.float64), 0.0)
            lengths += running
            running &= ~(term | trunc)
            if not discount_first:
                discount *= gamma
        envs.close()
        return 0.0, measured, lengths

    wrongs = {
        "rewards after the end": lambda *args: measure(*args, mask=False),
        "first reward discounted": lambda *args: measure(*args, discount_first=True),
    }
    assert fails(ns["check_measured_returns"], wrongs[wrong], q_net)


@pytest.mark.parametrize("wrong", ["DQN target", "online network's max"])
def test_double_gap_catches(wrong):
    check = load_check(CH7, "double-gap")["check_double_gap"]
    check(rl.double_dqn_target)
    wrongs = {
        "DQN target": lambda r, q_online, q_target, term, gamma: rl.td_target(r, q_target, term, gamma),
        "online network's max": lambda r, q_online, q_target, term, gamma: rl.td_target(r, q_online, term, gamma),
    }
    assert fails(check, wrongs[wrong])
