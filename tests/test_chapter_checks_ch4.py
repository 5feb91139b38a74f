"""The numeric checks of Chapter 4 catch the wrong formulas their sentences name.

CHAPTER_STANDARD: a check is *proven falsifiable* by a test that feeds it the wrong
formula its sentence names and asserts that it fails. Each check cell of the master
notebook starts with a marker line ``# CHECK: <label>`` and defines the check as a
function of the implementation under test. These tests read that cell from the
notebook, execute only its imports and ``def`` statements (nothing that trains or
plots), and call the check with the right implementation (it must pass) and with each
wrong one (it must raise ``AssertionError``). The helpers come from
``tests/test_chapter_checks_rl.py``.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_chapter_checks_rl import fails, load_check  # the marker-reading helpers (pytest puts tests/ on sys.path)

from course_lib import rl

CH4 = "04_reinforce.ipynb"
THETA0 = torch.tensor([[0.3, -0.2], [-0.5, 0.4]], dtype=torch.float64)  # the chapter's logits


# --------------------------------------------------------------------------------------
# eq. (4.6): the dynamics drop out of the score of a trajectory
# --------------------------------------------------------------------------------------


def _wrong_scores():
    def summed(step_score):
        def score(logits, states, actions, last=None):
            K, T = states.shape
            out = torch.zeros(K, *logits.shape, dtype=logits.dtype)
            for t in range(T if last is None else last):
                out[torch.arange(K), states[:, t]] += step_score(logits, states[:, t], actions[:, t])
            return out

        return score

    one_hot = lambda logits, a: torch.nn.functional.one_hot(a, logits.shape[1]).to(logits.dtype)  # noqa: E731
    pi = lambda logits, s: torch.softmax(logits, -1)[s]  # noqa: E731
    right_step = lambda logits, s, a: one_hot(logits, a) - pi(logits, s)  # noqa: E731

    def grad_pi(logits, s, a):  # d pi(a|s) / d logits = pi(a|s) (e_a - pi): no division by pi
        return pi(logits, s).gather(1, a[:, None]) * right_step(logits, s, a)

    def dropped_last_step(logits, states, actions):
        return summed(right_step)(logits, states, actions, last=states.shape[1] - 1)

    return {
        "one-hot without the probabilities": summed(lambda logits, s, a: one_hot(logits, a)),
        "grad pi instead of grad log pi": summed(grad_pi),
        "a time step dropped": dropped_last_step,
    }


@pytest.mark.parametrize("wrong", ["one-hot without the probabilities", "grad pi instead of grad log pi", "a time step dropped"])
def test_eq_dynamics_drop_catches(wrong):
    mdp = rl.tiny_mdp()
    ns = load_check(CH4, "eq-dynamics-drop")
    ns["check_trajectory_score"](ns["closed_form_score"], THETA0, mdp)
    other = THETA0 + torch.tensor([[0.4, -0.3], [0.2, 0.5]], dtype=torch.float64)  # other logits than the chapter's
    ns["check_trajectory_score"](ns["closed_form_score"], other, mdp)
    assert fails(ns["check_trajectory_score"], _wrong_scores()[wrong], THETA0, mdp)


# --------------------------------------------------------------------------------------
# eq. (4.22): the mirrored ES gradient estimate
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["one-sided normalisation 1/(n sigma)", "no 1/sigma", "difference reversed"])
def test_eq_es_gradient_catches(wrong):
    check = load_check(CH4, "eq-es-gradient")["check_es_gradient"]
    check(rl.es_gradient_estimate)
    n_of = lambda eps: eps.shape[0]  # noqa: E731
    wrongs = {
        "one-sided normalisation 1/(n sigma)": lambda fp, fn, eps, sigma: (fp - fn) @ eps / (n_of(eps) * sigma),
        "no 1/sigma": lambda fp, fn, eps, sigma: (fp - fn) @ eps / (2 * n_of(eps)),
        "difference reversed": lambda fp, fn, eps, sigma: (fn - fp) @ eps / (2 * n_of(eps) * sigma),
    }
    assert fails(check, wrongs[wrong])


# --------------------------------------------------------------------------------------
# eq. (4.23): the score of a Gaussian policy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["no 1/sigma^2 in d/dmu", "no -1 in d/dlog sigma"])
def test_eq_gaussian_policy_catches(wrong):
    check = load_check(CH4, "eq-gaussian-policy")["check_gaussian_score"]
    gen = torch.Generator().manual_seed(11)
    mu, log_std = torch.tensor([0.2], dtype=torch.float64), torch.tensor([math.log(0.6)], dtype=torch.float64)
    actions = mu + log_std.exp() * torch.randn(200_000, 1, generator=gen, dtype=torch.float64)
    check(rl.gaussian_score, actions, mu, log_std, a_star=1.0)

    def no_inverse_variance(a, m, ls):
        return a - m, (a - m) ** 2 * torch.exp(-2 * ls) - 1

    def no_minus_one(a, m, ls):
        return (a - m) * torch.exp(-2 * ls), (a - m) ** 2 * torch.exp(-2 * ls)

    wrongs = {"no 1/sigma^2 in d/dmu": no_inverse_variance, "no -1 in d/dlog sigma": no_minus_one}
    assert fails(check, wrongs[wrong], actions, mu, log_std, a_star=1.0)


# --------------------------------------------------------------------------------------
# eq. (4.10): the policy gradient theorem (finite horizon, discounted weighting)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["no gamma^t", "state distribution differentiated too"])
def test_eq_pgt_time_catches(wrong):
    mdp = rl.tiny_mdp()
    ns = load_check(CH4, "eq-pgt-time")
    ns["check_pgt"](ns["pgt_gradient"], THETA0, mdp)
    dists_and_q = ns["state_distributions_and_q"]
    jacobian = torch.autograd.functional.jacobian

    def no_discount(logits, mdp):
        dist, Q = dists_and_q(logits, mdp)
        return jacobian(lambda z: (dist[..., None] * Q * torch.softmax(z, -1)[None]).sum(), logits)

    def state_distribution_differentiated(logits, mdp):
        _, Q = dists_and_q(logits, mdp)
        disc = mdp.gamma ** torch.arange(mdp.horizon, dtype=torch.float64)[:, None]
        return jacobian(lambda z: (disc[..., None] * dists_and_q(z, mdp)[0][..., None] * Q * torch.softmax(z, -1)[None]).sum(), logits)

    wrongs = {"no gamma^t": no_discount, "state distribution differentiated too": state_distribution_differentiated}
    assert fails(ns["check_pgt"], wrongs[wrong], THETA0, mdp)
