"""Property tests for course_lib.rl (fast: the whole file runs in well under 30 s)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.distributions import Categorical

from course_lib.rl import (
    CategoricalPolicy,
    ESConfig,
    ReinforceConfig,
    TabularMDP,
    centered_ranks,
    collect_batch,
    enumerate_trajectories,
    es_gradient_estimate,
    evaluate,
    exact_objective,
    mlp,
    reinforce_gradient_estimate,
    reinforce_loss,
    reward_to_go,
    rollout_episode,
    sample_trajectories,
    tiny_mdp,
    train_es,
    train_reinforce,
)

CONTINUOUS_ENVS = ["Pendulum-v1", "MountainCarContinuous-v0"]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------ reward_to_go


def _naive_rtg(r: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(r, dtype=np.float64)
    T = r.shape[-1]
    for t in range(T):
        for k in range(t, T):
            out[..., t] += gamma ** (k - t) * r[..., k]
    return out


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("shape", [(1,), (17,), (4, 13)])
def test_reward_to_go_matches_double_loop(gamma, shape):
    rng = np.random.default_rng(0)
    r = rng.normal(size=shape)
    got = reward_to_go(torch.tensor(r), gamma)
    assert got.shape == torch.Size(shape)
    np.testing.assert_allclose(got.numpy(), _naive_rtg(r, gamma), rtol=1e-10, atol=1e-12)


def test_reward_to_go_gamma_edge_cases_and_inputs():
    r = [1.0, 2.0, 3.0]
    assert torch.equal(reward_to_go(r, 0.0), torch.tensor([1.0, 2.0, 3.0]))  # G_t = r_t
    assert torch.equal(reward_to_go(np.array(r), 1.0), torch.tensor([6.0, 5.0, 3.0], dtype=torch.float64))
    assert reward_to_go(torch.tensor(r, dtype=torch.float32), 0.5).dtype == torch.float32


def test_reward_to_go_dones_split_episodes():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5), rng.normal(size=3)
    row = torch.tensor(np.concatenate([a, b]))
    dones = torch.zeros(8, dtype=torch.bool)
    dones[4] = True
    got = reward_to_go(row, 0.9, dones=dones)
    np.testing.assert_allclose(got.numpy(), np.concatenate([_naive_rtg(a, 0.9), _naive_rtg(b, 0.9)]))


@pytest.mark.parametrize("bad", [torch.tensor(1.0), torch.zeros(2, 3, 4), torch.zeros(0)])
def test_reward_to_go_bad_shape(bad):
    with pytest.raises(ValueError, match="rewards"):
        reward_to_go(bad, 0.9)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.9"])
def test_reward_to_go_bad_gamma(gamma):
    with pytest.raises(ValueError, match="gamma"):
        reward_to_go(torch.ones(3), gamma)


def test_reward_to_go_bad_dones_shape():
    with pytest.raises(ValueError, match="dones"):
        reward_to_go(torch.ones(2, 3), 0.9, dones=torch.zeros(3, dtype=torch.bool))


# ------------------------------------------------------------------ reinforce_loss


def test_reinforce_loss_gradient_by_hand():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 3, (8,))
    obs, actions, w = torch.randn(10, 4), torch.randint(0, 3, (10,)), torch.randn(10)
    loss = reinforce_loss(policy(obs).log_prob(actions), w)
    assert loss.ndim == 0
    got = torch.autograd.grad(loss, list(policy.parameters()))
    # by hand: -(1/B) sum_i w_i grad log pi(a_i|s_i), one sample at a time
    expected = [torch.zeros_like(p) for p in policy.parameters()]
    for i in range(10):
        lp = policy(obs[i]).log_prob(actions[i])
        for e, g in zip(expected, torch.autograd.grad(lp, list(policy.parameters()))):
            e -= w[i] * g / 10
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_reinforce_loss_detaches_weights():
    log_probs = torch.randn(6, requires_grad=True)
    weights = torch.randn(6, requires_grad=True)
    loss = reinforce_loss(log_probs, weights)
    loss.backward()
    assert weights.grad is None
    torch.testing.assert_close(log_probs.grad, -weights.detach() / 6)


def test_reinforce_loss_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        reinforce_loss(torch.zeros(5), torch.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        reinforce_loss(torch.zeros(2, 3), torch.zeros(3, 2))


# ------------------------------------------------------------------ tabular MDP: exact vs sampled


def _logits():
    return torch.tensor([[0.3, -0.4], [-0.2, 0.5]], dtype=torch.float64)


def test_enumerate_and_probabilities_sum_to_one():
    mdp = tiny_mdp()
    states, actions = enumerate_trajectories(mdp)
    assert states.shape == actions.shape == (64, 3)
    # J of a reward that is 1 at the first step and 0 after is the total probability 1
    ones = TabularMDP(mdp.p0, mdp.P, torch.tensor([[1.0, 1.0], [1.0, 1.0]]), horizon=3, gamma=0.0)
    torch.testing.assert_close(exact_objective(_logits(), ones), torch.tensor(1.0, dtype=torch.float64))


def test_exact_objective_matches_monte_carlo():
    mdp = tiny_mdp()
    gen = torch.Generator().manual_seed(0)
    _, _, rewards = sample_trajectories(_logits(), mdp, 50_000, gen)
    returns = (rewards * mdp.gamma ** torch.arange(mdp.horizon)).sum(-1)
    se = returns.std() / math.sqrt(returns.numel())
    assert abs(returns.mean() - exact_objective(_logits(), mdp)) < 4 * se


@pytest.mark.parametrize("rtg", [True, False])
def test_reinforce_estimator_unbiased(rtg):
    mdp = tiny_mdp()
    logits = _logits().requires_grad_(True)
    (exact,) = torch.autograd.grad(exact_objective(logits, mdp), logits)
    gen = torch.Generator().manual_seed(1 if rtg else 2)
    est, samples = reinforce_gradient_estimate(logits, mdp, 20_000, gen, reward_to_go=rtg, return_samples=True)
    assert est.shape == (2, 2) and samples.shape == (20_000, 2, 2)
    se = samples.std(0) / math.sqrt(20_000)
    assert ((est - exact).abs() < 4 * se + 1e-12).all(), (est, exact, se)


def test_dropping_gamma_t_in_reward_to_go_is_detectably_biased():
    # sanity check that the unbiasedness test above has power: weights G_t without
    # gamma^t estimate another vector
    mdp = tiny_mdp()
    logits = _logits().requires_grad_(True)
    (exact,) = torch.autograd.grad(exact_objective(logits, mdp), logits)
    states, actions, rewards = sample_trajectories(logits, mdp, 100_000, torch.Generator().manual_seed(3))
    w = reward_to_go(rewards, mdp.gamma)  # no gamma^t
    score = torch.nn.functional.one_hot(actions, 2).double() - torch.softmax(logits.detach(), -1)[states]
    g = torch.zeros(100_000, 2, 2, dtype=torch.float64)
    g.index_put_((torch.arange(100_000)[:, None].expand(-1, 3), states), w[..., None] * score, accumulate=True)
    se = g.std(0) / math.sqrt(100_000)
    assert ((g.mean(0) - exact).abs() > 5 * se).any()


def test_reward_to_go_has_lower_variance():
    mdp = tiny_mdp()
    logits = _logits()
    _, s_rtg = reinforce_gradient_estimate(logits, mdp, 20_000, torch.Generator().manual_seed(4), True, True)
    _, s_full = reinforce_gradient_estimate(logits, mdp, 20_000, torch.Generator().manual_seed(5), False, True)
    assert s_rtg.var(0).sum() < s_full.var(0).sum()


def test_estimator_equals_minus_H_times_loss_gradient():
    mdp = tiny_mdp()
    logits = _logits().requires_grad_(True)
    est = reinforce_gradient_estimate(logits, mdp, 500, torch.Generator().manual_seed(6))
    states, actions, rewards = sample_trajectories(logits, mdp, 500, torch.Generator().manual_seed(6))
    log_probs = torch.log_softmax(logits, -1)[states, actions]
    weights = mdp.gamma ** torch.arange(3) * reward_to_go(rewards, mdp.gamma)
    (grad,) = torch.autograd.grad(reinforce_loss(log_probs, weights), logits)
    torch.testing.assert_close(est, -mdp.horizon * grad)


def test_tabular_bad_inputs():
    mdp = tiny_mdp()
    with pytest.raises(ValueError, match="logits"):
        exact_objective(torch.zeros(3, 2), mdp)
    with pytest.raises(ValueError, match="P"):
        TabularMDP(mdp.p0, torch.ones(2, 2, 2), mdp.R, horizon=3)
    with pytest.raises(ValueError, match="horizon"):
        TabularMDP(mdp.p0, mdp.P, mdp.R, horizon=0)


# ------------------------------------------------------------------ policy and mlp


def test_mlp_shapes():
    net = mlp([4, 16, 16, 3])
    assert net(torch.zeros(7, 4)).shape == (7, 3)
    assert sum(isinstance(m, torch.nn.Tanh) for m in net) == 2
    with pytest.raises(ValueError, match="sizes"):
        mlp([4])


def test_categorical_policy_shapes_and_temperature():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 3, (16,))
    obs = torch.randn(5, 4)
    dist = policy(obs)
    assert isinstance(dist, Categorical)
    assert dist.batch_shape == (5,) and dist.probs.shape == (5, 3)
    assert policy(obs[0]).batch_shape == ()
    greedy = policy.logits(obs).argmax(-1)
    cold = policy(obs, temperature=1e-3).probs
    assert torch.equal(cold.argmax(-1), greedy)
    assert (cold.max(-1).values > 0.999).all()
    hot = policy(obs, temperature=1e3).probs
    assert torch.allclose(hot, torch.full_like(hot, 1 / 3), atol=1e-2)
    assert torch.equal(policy.act(obs, greedy=True), greedy)
    assert policy.act(obs).shape == (5,)
    with pytest.raises(ValueError, match="temperature"):
        policy(obs, temperature=0.0)
    with pytest.raises(ValueError, match="obs"):
        policy(torch.zeros(5, 3))


# ------------------------------------------------------------------ environments


def test_evaluate_returns_undiscounted_returns():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (8,))
    returns = evaluate(policy, "CartPole-v1", 7, seed=3, num_envs=3)
    assert returns.shape == (7,) and returns.dtype == np.float64
    # CartPole pays +1 per step: undiscounted returns are whole numbers in [1, 500]
    assert np.all(returns == np.round(returns)) and returns.min() >= 1 and returns.max() <= 500
    np.testing.assert_array_equal(returns, evaluate(policy, "CartPole-v1", 7, seed=3, num_envs=3))


def test_rollout_episode_matches_returns():
    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (8,))
    out = rollout_episode(policy, "CartPole-v1", seed=0, temperature=1.0, render=False)
    T = out["actions"].shape[0]
    assert out["frames"] is None and out["probs"].shape == (T, 2) and out["rewards"].shape == (T,)
    assert out["return"] == float(out["rewards"].sum()) == T
    np.testing.assert_allclose(out["probs"].sum(-1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("env_id", CONTINUOUS_ENVS)
def test_continuous_action_space_rejected(env_id):
    policy = CategoricalPolicy(3, 2, (8,))
    with pytest.raises(ValueError, match="Box"):
        evaluate(policy, env_id, 2, seed=0)
    with pytest.raises(ValueError, match="Box"):
        train_reinforce(ReinforceConfig(env_id=env_id, total_steps=100, progress=False))
    with pytest.raises(ValueError, match="Box"):
        train_es(ESConfig(env_id=env_id, total_steps=100, progress=False))


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_envs": 0}, "num_envs"), ({"gamma": 1.1}, "gamma"), ({"learning_rate": 0}, "learning_rate"),
     ({"batch_size": -1}, "batch_size"), ({"checkpoint_fractions": (0.5, 0.2)}, "checkpoint_fractions")],
)
def test_reinforce_config_validation(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ReinforceConfig(**kwargs)


# ------------------------------------------------------------------ training


def test_collect_batch_holds_complete_episodes():
    from course_lib.rl import make_vec_env

    torch.manual_seed(0)
    policy = CategoricalPolicy(4, 2, (8,))
    envs = make_vec_env("CartPole-v1", 4)
    try:
        batch = collect_batch(envs, policy, min_steps=300, gamma=0.9, seed=0)
    finally:
        envs.close()
    M = batch.num_steps
    assert M >= 300 and batch.simulated_steps >= M
    assert batch.obs.shape == (M, 4) and batch.actions.shape == batch.rewards.shape == batch.weights_rtg.shape == (M,)
    # only complete episodes: lengths add up, and (CartPole pays 1 per step) return == length
    assert batch.episode_lengths.sum() == M
    np.testing.assert_array_equal(batch.episode_returns, batch.episode_lengths)
    # the reward-to-go of a CartPole step with k steps left is (1 - 0.9^k) / 0.1;
    # its maximum over the batch is reached at the first step of the longest episode
    L = batch.episode_lengths.max()
    np.testing.assert_allclose(batch.weights_rtg.max(), (1 - 0.9**L) / 0.1, rtol=1e-5)
    assert np.isclose(batch.weights_rtg, 1.0).sum() == batch.episode_lengths.size  # one last step each
    # dones marks exactly each episode's last step, and episodes are contiguous
    last = np.flatnonzero(batch.dones)
    np.testing.assert_array_equal(np.sort(np.diff(np.concatenate([[-1], last]))), np.sort(batch.episode_lengths))
    np.testing.assert_allclose(batch.weights_rtg[last], 1.0)


def test_train_reinforce_improves_cartpole():
    config = ReinforceConfig(total_steps=30_000, seed=0, progress=False, checkpoint_fractions=(0.0, 0.5, 1.0))
    policy, history = train_reinforce(config)
    steps = history["env_steps"]
    assert steps[-1] >= 30_000 and all(b > a for a, b in zip(steps, steps[1:]))
    assert all(b >= a for a, b in zip(history["wall_time"], history["wall_time"][1:]))
    assert np.isfinite(history["mean_return"]).all()
    assert all(len(history[k]) == len(steps) for k in ("wall_time", "mean_return", "num_episodes"))
    assert history["simulated_steps"][-1] >= steps[-1]
    # a random policy averages ~22 on CartPole
    assert np.mean(history["mean_return"][-3:]) > 60
    assert evaluate(policy, "CartPole-v1", 20, seed=1).mean() > 60
    ckpts = history["checkpoints"]
    assert [c["fraction"] for c in ckpts] == [0.0, 0.5, 1.0]
    assert ckpts[0]["env_steps"] == 0 and ckpts[1]["env_steps"] >= 15_000
    fresh = CategoricalPolicy(4, 2, config.hidden_sizes)
    fresh.load_state_dict(ckpts[-1]["state_dict"])
    obs = torch.randn(3, 4)
    torch.testing.assert_close(fresh.logits(obs), policy.logits(obs))


def test_train_reinforce_callback_stops():
    calls = []

    def cb(policy, history):
        calls.append(len(history["env_steps"]))
        return len(calls) == 2

    _, history = train_reinforce(ReinforceConfig(total_steps=50_000, progress=False, batch_size=500), callback=cb)
    assert calls == [1, 2] and len(history["env_steps"]) == 2


def test_centered_ranks_and_es_gradient():
    r = centered_ranks(torch.tensor([3.0, -1.0, 10.0, 0.0]))
    torch.testing.assert_close(r, torch.tensor([1 / 6, -0.5, 0.5, -1 / 6], dtype=torch.float64))
    # ES estimate of the gradient of a linear function is exact in expectation
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(20_000, 3, generator=gen, dtype=torch.float64)
    a = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    g = es_gradient_estimate((0.1 * eps) @ a, (-0.1 * eps) @ a, eps, 0.1)
    torch.testing.assert_close(g, a, atol=0.05, rtol=0)


def test_train_es_smoke():
    config = ESConfig(num_pairs=4, total_steps=3_000, progress=False, checkpoint_fractions=(0.0, 1.0))
    policy, history = train_es(config)
    assert isinstance(policy, CategoricalPolicy)
    steps = history["env_steps"]
    assert steps[-1] >= 3_000 and all(b > a for a, b in zip(steps, steps[1:]))
    assert np.isfinite(history["mean_return"]).all() and all(n == 8 for n in history["num_episodes"])
    assert len(history["wall_time"]) == len(history["max_return"]) == len(steps)
    assert [c["fraction"] for c in history["checkpoints"]] == [0.0, 1.0]
