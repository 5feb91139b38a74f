"""Tests for rl.GaussianPolicy and rl.gaussian_score (Chapter 4, continuous actions)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks, rl

torch.set_num_threads(1)


@given(st.integers(1, 5), st.integers(1, 3), st.floats(-1.5, 1.0))
@settings(max_examples=30, deadline=None)
def test_gaussian_score_is_autograd_of_log_prob(B, d, log_std_value):
    gen = torch.Generator().manual_seed(B * 7 + d)
    actions = torch.randn(B, d, generator=gen, dtype=torch.float64)
    mean = torch.randn(B, d, generator=gen, dtype=torch.float64, requires_grad=True)
    log_std = torch.full((d,), log_std_value, dtype=torch.float64, requires_grad=True)
    log_p = torch.distributions.Normal(mean, log_std.exp().expand_as(mean)).log_prob(actions)   # (B, d)
    g_mean = torch.autograd.grad(log_p.sum(), mean, retain_graph=True)[0]
    g_ls = torch.stack([torch.autograd.grad(log_p[i].sum(), log_std, retain_graph=True)[0] for i in range(B)])
    d_mean, d_ls = rl.gaussian_score(actions, mean.detach(), log_std.detach())
    assert torch.allclose(d_mean, g_mean, atol=1e-10) and torch.allclose(d_ls, g_ls, atol=1e-10)


def test_gaussian_score_has_mean_zero():
    gen = torch.Generator().manual_seed(0)
    a = 0.5 + 2.0 * torch.randn(400_000, generator=gen, dtype=torch.float64)
    d_mean, d_ls = rl.gaussian_score(a, torch.tensor(0.5, dtype=torch.float64), torch.tensor(math.log(2.0), dtype=torch.float64))
    assert abs(d_mean.mean().item()) < 0.01 and abs(d_ls.mean().item()) < 0.01


def test_policy_distribution_shapes_and_log_prob():
    torch.manual_seed(0)
    policy = rl.GaussianPolicy(3, 2, (8,), init_log_std=-0.5)
    obs = torch.randn(4, 3)
    dist = policy(obs)
    a = dist.sample()
    assert a.shape == (4, 2) and dist.log_prob(a).shape == (4,)
    mean = policy.mean_net(obs)
    expected = torch.distributions.Normal(mean, math.exp(-0.5)).log_prob(a).sum(1)
    assert torch.allclose(dist.log_prob(a), expected, atol=1e-6)
    assert policy(obs[0]).log_prob(a[0]).shape == ()
    loss = rl.reinforce_loss(dist.log_prob(a), torch.ones(4))
    loss.backward()
    assert policy.log_std.grad is not None and policy.log_std.grad.shape == (2,)


@pytest.mark.parametrize("call, exc, name", [
    (lambda: rl.GaussianPolicy(0, 1), ValueError, "obs_dim"),
    (lambda: rl.GaussianPolicy(3, 0), ValueError, "action_dim"),
    (lambda: rl.GaussianPolicy(3, 1, (0,)), ValueError, "hidden_sizes"),
    (lambda: rl.GaussianPolicy(3, 1, init_log_std=float("nan")), ValueError, "init_log_std"),
    (lambda: rl.GaussianPolicy(3, 1)(torch.zeros(2, 4)), ValueError, "obs"),
    (lambda: rl.gaussian_score([1.0], torch.zeros(1), torch.zeros(1)), checks.ArgumentTypeError, "actions"),
    (lambda: rl.gaussian_score(torch.zeros(1, dtype=torch.long), torch.zeros(1), torch.zeros(1)), ValueError, "actions"),
    (lambda: rl.gaussian_score(torch.zeros(1), torch.zeros(1), torch.zeros(1, dtype=torch.long)), ValueError, "log_std"),
    (lambda: rl.gaussian_score(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(3)), ValueError, "actions"),
])
def test_bad_inputs(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
