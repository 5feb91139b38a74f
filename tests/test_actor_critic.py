"""Property tests for Chapter 5: baselines, advantages, GAE, actor-critic (runs in well under a minute)."""

from __future__ import annotations

import dataclasses

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import training
from course_lib.rl import (
    ActorCriticConfig,
    CategoricalPolicy,
    SharedValueHead,
    baseline_gradients,
    effective_sample_size,
    exact_moments,
    exact_objective,
    exact_target_moments,
    exact_trajectories,
    exact_values,
    gae,
    importance_weights,
    n_step_return,
    optimal_baseline,
    optimal_constant_baseline,
    optimal_state_baseline,
    reward_to_go,
    softmax_bandit_gradient,
    td_target,
    tiny_mdp,
    train_actor_critic,
)


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ------------------------------------------------------------------ GAE


def _naive_gae(r, v, nv, term, ends, gamma, lam):
    """GAE as the double sum A_t = sum_k (gamma lam)^(k-t) delta_k within the episode."""
    r, v, nv, term, ends = (np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in (r, v, nv, term, ends))
    delta = r + gamma * (1 - term) * nv - v
    out = np.zeros_like(delta)
    N, T = delta.shape
    for i in range(N):
        for t in range(T):
            coef = 1.0
            for k in range(t, T):
                out[i, t] += coef * delta[i, k]
                if ends[i, k]:
                    break
                coef *= gamma * lam
    return out


def _episode_data(draw_or_rng, N, T, p_end=0.2):
    rng = draw_or_rng
    r = rng.normal(size=(N, T))
    v = rng.normal(size=(N, T))
    nv = rng.normal(size=(N, T))
    ends = rng.random((N, T)) < p_end
    term = ends & (rng.random((N, T)) < 0.5)
    return r, v, nv, term, ends


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    N=st.integers(1, 3),
    T=st.integers(1, 12),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
)
def test_gae_matches_the_double_sum(seed, N, T, gamma, lam):
    r, v, nv, term, ends = _episode_data(np.random.default_rng(seed), N, T)
    got = gae(r, v, nv, term, ends, gamma, lam).numpy()
    np.testing.assert_allclose(got, _naive_gae(r, v, nv, term, ends, gamma, lam), atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 15), gamma=st.floats(0.0, 1.0))
def test_gae_lambda_one_is_reward_to_go_minus_v_and_zero_is_td_error(seed, T, gamma):
    rng = np.random.default_rng(seed)
    r, v, nv = rng.normal(size=(3, T))
    nv[:-1] = v[1:]  # V(s_{t+1}) is the next step's V(s_t) inside one episode
    term = np.zeros(T, dtype=bool)
    term[-1] = True  # one complete episode that terminates
    ends = term.copy()
    # lambda = 1: Monte Carlo advantage G_t - V(s_t)
    mc = reward_to_go(torch.as_tensor(r), gamma).numpy() - v
    np.testing.assert_allclose(gae(r, v, nv, term, ends, gamma, 1.0).numpy(), mc, atol=1e-9)
    # lambda = 0: TD error
    delta = td_target(r, nv, term, gamma).numpy() - v
    np.testing.assert_allclose(gae(r, v, nv, term, ends, gamma, 0.0).numpy(), delta, atol=1e-12)


def test_gae_bootstraps_on_truncation_not_on_termination():
    r = torch.tensor([1.0, 1.0])
    v = torch.tensor([0.0, 0.0])
    nv = torch.tensor([0.0, 10.0])
    ends = torch.tensor([0, 1])
    truncated = gae(r, v, nv, torch.tensor([0, 0]), ends, 0.5, 1.0)
    terminated = gae(r, v, nv, torch.tensor([0, 1]), ends, 0.5, 1.0)
    assert truncated[1].item() == pytest.approx(1.0 + 0.5 * 10.0)
    assert terminated[1].item() == pytest.approx(1.0)
    assert truncated[0].item() == pytest.approx(1.0 + 0.5 * truncated[1].item())


def test_gae_does_not_leak_across_episode_ends():
    rng = np.random.default_rng(1)
    r, v, nv, term, ends = _episode_data(rng, 1, 10, p_end=0.0)
    ends[0, 4] = True
    a = gae(r, v, nv, term, ends, 0.9, 0.8)
    r2 = r.copy()
    r2[0, 5:] += 100.0  # rewards of the next episode
    b = gae(r2, v, nv, term, ends, 0.9, 0.8)
    torch.testing.assert_close(a[..., :5], b[..., :5])
    assert not torch.allclose(a[..., 5:], b[..., 5:])


def test_n_step_return_interpolates_td_and_monte_carlo():
    rng = np.random.default_rng(2)
    r, v, nv, term, ends = _episode_data(rng, 2, 9)
    inside = ~ends[:, :-1]
    nv[:, :-1][inside] = v[:, 1:][inside]  # within an episode V(s_{t+1}) is the next step's value
    np.testing.assert_allclose(n_step_return(r, v, nv, term, ends, 0.9, 1).numpy(), td_target(r, nv, term, 0.9).numpy())
    lam1 = gae(r, v, nv, term, ends, 0.9, 1.0).numpy() + v
    np.testing.assert_allclose(n_step_return(r, v, nv, term, ends, 0.9, 9).numpy(), lam1, atol=1e-12)
    two = n_step_return(r, v, nv, term, ends, 0.9, 2).numpy()
    assert not np.allclose(two, lam1) and not np.allclose(two, td_target(r, nv, term, 0.9).numpy())


GOOD = dict(rewards=[1.0, 2.0], values=[0.0, 0.0], next_values=[0.0, 0.0], terminated=[0, 1], episode_ends=[0, 1],
            gamma=0.9, lam=0.95)


@pytest.mark.parametrize(
    "bad, exc, name",
    [
        (dict(terminated=[1, 0], episode_ends=[0, 1]), ValueError, "episode_ends"),
        (dict(gamma=1.5), ValueError, "gamma"),
        (dict(gamma=-0.1), ValueError, "gamma"),
        (dict(lam=2.0), ValueError, "lam"),
        (dict(lam="a"), TypeError, "lam"),
        (dict(values=[0.0, 0.0, 0.0]), ValueError, "values"),
        (dict(next_values=[[0.0, 0.0]]), ValueError, "next_values"),
        (dict(terminated=[0, 2]), ValueError, "terminated"),
        (dict(rewards=[[[1.0]]]), ValueError, "rewards"),
        (dict(rewards="abc"), TypeError, "rewards"),
        (dict(episode_ends=[0.5, 1]), ValueError, "episode_ends"),
    ],
)
def test_gae_bad_inputs(bad, exc, name):
    with pytest.raises(exc, match=name):
        gae(**{**GOOD, **bad})


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(rewards=[1.0], next_values=[1.0, 2.0], terminated=[0], gamma=0.9), ValueError, "next_values"),
        (dict(rewards=[1.0], next_values=[1.0], terminated=[3], gamma=0.9), ValueError, "terminated"),
        (dict(rewards=[1.0], next_values=[1.0], terminated=[0], gamma=9.0), ValueError, "gamma"),
        (dict(rewards=None, next_values=[1.0], terminated=[0], gamma=0.9), TypeError, "rewards"),
    ],
)
def test_td_target_bad_inputs(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        td_target(**kwargs)


def test_td_target_bootstraps_only_when_not_terminated():
    y = td_target([1.0, 1.0], [5.0, 5.0], [0, 1], 0.9)
    torch.testing.assert_close(y, torch.tensor([5.5, 1.0]))


def test_n_step_return_bad_n():
    with pytest.raises(ValueError, match="n"):
        n_step_return(**{k: GOOD[k] for k in GOOD if k != "lam"}, n=0)


# ------------------------------------------------------------------ optimal baseline


@settings(max_examples=25, deadline=None)
@given(
    g=hnp.arrays(np.float64, (7, 3), elements=st.floats(-3, 3)),
    R=hnp.arrays(np.float64, (7,), elements=st.floats(-5, 5)),
    eps=st.floats(0.05, 1.0),
)
def test_optimal_baseline_minimises_the_empirical_second_moment(g, R, eps):
    g, R = torch.as_tensor(g), torch.as_tensor(R)
    b = optimal_baseline(g, R)

    def second_moment(bb):  # sum_i ||g_i (R_i - b)||^2, per parameter b_d
        return ((g * (R[:, None] - bb)) ** 2).sum()

    base = second_moment(b)
    for d in range(3):
        if (g[:, d] ** 2).sum() > 1e-6:
            for sign in (1, -1):
                bb = b.clone()
                bb[d] += sign * eps
                assert second_moment(bb) >= base - 1e-9


def test_optimal_baseline_exact_on_the_tiny_mdp_with_sqrt_p_rows():
    """With rows scaled by sqrt(p), the formula is the exact per-parameter minimiser (gamma = 1 objective)."""
    mdp = dataclasses.replace(tiny_mdp(), gamma=1.0)
    logits = torch.tensor([[0.2, -0.3], [0.5, 0.1]], dtype=torch.float64)
    traj = exact_trajectories(logits, mdp)
    u = traj.scores.sum(1)  # sum_t grad log pi
    R = traj.rewards.sum(1)
    b = optimal_baseline(u * traj.probs.sqrt()[:, None], R)
    expected = (traj.probs[:, None] * u**2 * R[:, None]).sum(0) / (traj.probs[:, None] * u**2).sum(0)
    torch.testing.assert_close(b, expected)


@pytest.mark.parametrize(
    "g, R, exc, name",
    [
        (torch.zeros(3), torch.zeros(3), ValueError, "grad_log_probs"),
        (torch.zeros(0, 2), torch.zeros(0), ValueError, "grad_log_probs"),
        (torch.zeros(3, 2), torch.zeros(2), ValueError, "returns"),
        (torch.zeros(3, 2), torch.zeros(3, 1), ValueError, "returns"),
        ("x", torch.zeros(3), TypeError, "grad_log_probs"),
        (torch.zeros(3, 2), None, TypeError, "returns"),
    ],
)
def test_optimal_baseline_bad_inputs(g, R, exc, name):
    with pytest.raises(exc, match=name):
        optimal_baseline(g, R)


def test_optimal_baseline_zero_column_gives_zero():
    g = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    assert optimal_baseline(g, torch.tensor([1.0, 3.0]))[1].item() == 0.0


# ------------------------------------------------------------------ exact variance table


@pytest.fixture(scope="module")
def exact():
    mdp = tiny_mdp()
    logits = torch.tensor([[0.3, -0.2], [0.1, 0.4]], dtype=torch.float64)
    traj = exact_trajectories(logits, mdp)
    lg = logits.clone().requires_grad_()
    true = torch.autograd.grad(exact_objective(lg, mdp), lg)[0].flatten()
    V, Q = exact_values(logits, mdp)
    return mdp, logits, traj, true, V, Q


def test_exact_trajectories_probabilities_and_values(exact):
    mdp, logits, traj, true, V, Q = exact
    assert traj.probs.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert (mdp.p0 * V[0]).sum().item() == pytest.approx(exact_objective(logits, mdp).item(), abs=1e-12)


def test_baselines_without_the_action_are_unbiased_and_with_it_biased(exact):
    mdp, logits, traj, true, V, Q = exact
    t = torch.arange(mdp.horizon)
    for b in (0.0, 3.7, V[t, traj.states], optimal_state_baseline(traj, 2)[t, traj.states],
              optimal_constant_baseline(traj, per_parameter=True)):
        mean, _ = exact_moments(baseline_gradients(traj, b), traj.probs)
        torch.testing.assert_close(mean, true, atol=1e-12, rtol=0)
    biased, _ = exact_moments(baseline_gradients(traj, Q[t, traj.states, traj.actions]), traj.probs)
    assert (biased - true).abs().max() > 0.1


def test_variance_ordering(exact):
    mdp, logits, traj, true, V, Q = exact
    t = torch.arange(mdp.horizon)
    J = exact_objective(logits, mdp).item()

    def var(b):
        return exact_moments(baseline_gradients(traj, b), traj.probs)[1].item()

    none, mean = var(0.0), var(J)
    scalar, per = var(optimal_constant_baseline(traj)), var(optimal_constant_baseline(traj, True))
    v, star = var(V[t, traj.states]), var(optimal_state_baseline(traj, 2)[t, traj.states])
    assert none > mean >= scalar - 1e-12 >= per - 2e-12
    assert v >= star - 1e-12 and per >= star - 1e-12
    for eps in (0.3, -0.3):  # the optimum is a minimum
        assert var(optimal_constant_baseline(traj) + eps) > scalar


def test_exact_target_moments_mc_unbiased_td_biased_with_wrong_values(exact):
    mdp, logits, traj, true, V, Q = exact
    mc = exact_target_moments(traj, V + 1.0, V, n=mdp.horizon)
    td = exact_target_moments(traj, V + 1.0, V, n=1)
    assert mc["bias"].abs().max() < 1e-12
    assert td["bias"][: mdp.horizon - 1].abs().min() > 0.5
    td_exact = exact_target_moments(traj, V, V, n=1)
    assert td_exact["bias"].abs().max() < 1e-12
    assert (td_exact["visit"] * td_exact["variance"]).sum() < (mc["visit"] * mc["variance"]).sum()


@pytest.mark.parametrize(
    "fn, args, exc, name",
    [
        (exact_moments, (torch.zeros(3, 2), torch.ones(2) / 2), ValueError, "probs"),
        (exact_moments, (torch.zeros(2, 2), torch.tensor([0.9, 0.9])), ValueError, "probs"),
        (exact_moments, (np.zeros((2, 2)), torch.ones(2) / 2), TypeError, "samples"),
        (optimal_state_baseline, ("TRAJ", 0), ValueError, "num_states"),
    ],
)
def test_variance_tools_bad_inputs(fn, args, exc, name, exact):
    with pytest.raises(exc, match=name):
        fn(*args)


def test_baseline_gradients_bad_shape(exact):
    traj = exact[2]
    with pytest.raises(ValueError, match="baseline"):
        baseline_gradients(traj, torch.zeros(5))
    with pytest.raises(TypeError, match="traj"):
        baseline_gradients("traj", 0.0)


# ------------------------------------------------------------------ importance weights


def test_importance_weights_are_cumulative_products_and_restart():
    new = torch.log(torch.tensor([0.5, 0.5, 0.5]))
    old = torch.log(torch.tensor([0.25, 0.5, 1.0]))
    torch.testing.assert_close(importance_weights(new, old), torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(
        importance_weights(new, old, dones=[1, 0, 0]), torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
    )


def test_effective_sample_size_bounds():
    assert effective_sample_size(torch.ones(10)).item() == pytest.approx(10.0)
    assert effective_sample_size(torch.tensor([0.0, 0.0, 5.0])).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="weights"):
        effective_sample_size(torch.tensor([1.0, -1.0]))
    with pytest.raises(TypeError, match="weights"):
        effective_sample_size([1.0, 2.0])
    with pytest.raises(ValueError, match="log_probs_old"):
        importance_weights(torch.zeros(3), torch.zeros(4))


# ------------------------------------------------------------------ the trainer


SMALL = dict(num_envs=4, n_steps=16, total_steps=4 * 16 * 6, hidden_sizes=(16,), progress=False)


def test_train_actor_critic_history_and_shapes():
    policy, value, history = train_actor_critic(ActorCriticConfig(**SMALL, checkpoint_fractions=(0.0, 0.5, 1.0)))
    for key in ("env_steps", "wall_time", "mean_return", "num_episodes", "simulated_steps", "checkpoints"):
        assert key in history
    assert history["env_steps"] == [64 * (i + 1) for i in range(6)]
    assert [c["fraction"] for c in history["checkpoints"]] == [0.0, 0.5, 1.0]
    assert value(torch.zeros(5, 4)).shape == (5,)
    assert history["stop_reason"] == "completed"


def test_shared_network_shares_the_hidden_layer():
    policy, value, history = train_actor_critic(ActorCriticConfig(**SMALL, shared=True))
    assert isinstance(value, SharedValueHead)
    assert value.policy is policy
    assert value(torch.zeros(3, 4)).shape == (3,)


def _run(cfg, stop_after=None):
    def callback(policy, history):
        return stop_after is not None and len(history["env_steps"]) >= stop_after

    return train_actor_critic(cfg, callback=callback)


@pytest.mark.parametrize("extra", [dict(), dict(clip_range=0.2, n_epochs=2, num_minibatches=2)])
def test_resume_is_bit_identical(tmp_path, extra):
    base = dict(SMALL, env_id="CartPole-v1", seed=3, **extra)
    p0, v0, h0 = _run(ActorCriticConfig(**base))
    cfg = ActorCriticConfig(**base, checkpoint_path=str(tmp_path / "ac.pt"))
    _, _, h_stop = _run(cfg, stop_after=2)
    assert h_stop["stop_reason"] == "callback" and len(h_stop["env_steps"]) == 2
    p1, v1, h1 = _run(cfg)
    for a, b in zip(list(p0.parameters()) + list(v0.parameters()), list(p1.parameters()) + list(v1.parameters())):
        assert torch.equal(a, b)
    for key in ("env_steps", "mean_return", "num_episodes", "value_loss", "entropy"):
        np.testing.assert_array_equal(h0[key], h1[key])


@pytest.mark.parametrize("extra", [dict(), dict(clip_range=0.2, n_epochs=2, num_minibatches=4)])
def test_checkpoints_are_written_during_the_run_and_a_killed_run_resumes_bit_identically(tmp_path, extra):
    """The file is on disk every checkpoint_every updates (it was written only at the end, so a
    run killed at 90 % had nothing). A copy of it taken at an update, as a SIGKILL would leave
    it, resumes to the uninterrupted weights and history."""
    import shutil

    base = dict(SMALL, total_steps=4 * 16 * 7, seed=5, **extra)
    p0, v0, h0 = train_actor_critic(ActorCriticConfig(**base))
    path = tmp_path / "ac.pt"
    on_disk = []

    def snapshot(policy, history):  # after update k: copy what is on disk now
        k = len(history["env_steps"])
        on_disk.append(training.load_checkpoint(path)["step"] if path.exists() else None)
        if path.exists():
            shutil.copy(path, tmp_path / f"after_{k}.pt")

    train_actor_critic(ActorCriticConfig(**base, checkpoint_path=str(path), checkpoint_every=3), callback=snapshot)
    assert on_disk == [None, None, 3, 3, 3, 6, 6]  # every 3 updates; the last at the end of the loop
    killed = tmp_path / "killed.pt"
    shutil.copy(tmp_path / "after_5.pt", killed)  # killed during update 6: the file holds update 3
    cfg = ActorCriticConfig(**base, checkpoint_path=str(killed), checkpoint_every=2)  # may differ on resume
    p1, v1, h1 = train_actor_critic(cfg)
    for a, b in zip([*p0.parameters(), *v0.parameters()], [*p1.parameters(), *v1.parameters()]):
        assert torch.equal(a, b)
    for key in ("env_steps", "mean_return", "num_episodes", "value_loss", "entropy", "explained_variance"):
        np.testing.assert_array_equal(h0[key], h1[key], err_msg=key)


def test_actor_critic_learns_cartpole_a_little():
    """A short run improves the return (seeded; fails if the sign of the policy loss is flipped)."""
    cfg = ActorCriticConfig(total_steps=12_000, seed=0, progress=False)
    _, _, history = train_actor_critic(cfg)
    returns = [r for r in history["mean_return"] if r == r]
    assert np.mean(returns[-5:]) > 2 * np.mean(returns[:5])


@pytest.mark.parametrize(
    "field, value",
    [
        ("num_envs", 0),
        ("n_steps", 2.5),
        ("total_steps", -1),
        ("learning_rate", 0.0),
        ("gamma", 1.2),
        ("gae_lambda", -0.1),
        ("hidden_sizes", (0,)),
        ("shared", "yes"),
        ("value_coef", -1.0),
        ("entropy_coef", float("inf")),
        ("max_grad_norm", 0.0),
        ("clip_range", -0.2),
        ("n_epochs", 0),
        ("num_minibatches", 10_000),
        ("return_window", 0),
        ("seed", -1),
        ("device", "tpu"),
        ("max_seconds", 0.0),
        ("checkpoint_fractions", (0.5, 0.2)),
        ("env_id", ""),
    ],
)
def test_config_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        ActorCriticConfig(**{field: value})


def test_shared_needs_a_hidden_layer_and_config_type():
    with pytest.raises(ValueError, match="shared"):
        ActorCriticConfig(shared=True, hidden_sizes=())
    with pytest.raises(TypeError, match="config"):
        train_actor_critic({"env_id": "CartPole-v1"})
    with pytest.raises(ValueError, match="hidden"):
        SharedValueHead(CategoricalPolicy(4, 2, ()))


def test_continuous_env_is_refused():
    with pytest.raises(ValueError, match="Discrete"):
        train_actor_critic(ActorCriticConfig(env_id="Pendulum-v1", **SMALL))


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 1000), A=st.integers(2, 6), b=st.floats(-100, 100))
def test_softmax_bandit_gradient_is_the_exact_gradient_for_any_baseline(seed, A, b):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(A, generator=gen, dtype=torch.float64)
    r = torch.randn(A, generator=gen, dtype=torch.float64)
    zz = z.clone().requires_grad_(True)
    exact = torch.autograd.grad((torch.softmax(zz, -1) * r).sum(), zz)[0]
    torch.testing.assert_close(softmax_bandit_gradient(z, r, b), exact, atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    "args, exc, name",
    [
        ((torch.zeros(3), torch.zeros(2)), ValueError, "rewards"),
        ((torch.zeros(2, 2), torch.zeros(2, 2)), ValueError, "logits"),
        ((np.zeros(3), torch.zeros(3)), TypeError, "logits"),
        ((torch.zeros(3), torch.zeros(3), "b"), TypeError, "baseline"),
    ],
)
def test_softmax_bandit_gradient_bad_inputs(args, exc, name):
    with pytest.raises(exc, match=name):
        softmax_bandit_gradient(*args)
