"""Chapter 6's numeric checks added in issue 23 catch the wrong formulas their sentences name.

Same pattern as ``tests/test_chapter_checks_rl.py`` (whose helpers are imported): each check
cell of ``notebooks/06_q_iteration.ipynb`` carries ``# CHECK: <label>``; only its imports and
``def`` statements are executed here, then the check is called with the right implementation
(it passes) and with the wrong one its sentence names (it raises ``AssertionError``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_chapter_checks_rl import fails, load_check  # noqa: E402

from course_lib import rl  # noqa: E402
from course_lib.rl import value_based  # noqa: E402

CH6 = "06_q_iteration.ipynb"
torch.set_num_threads(1)


# --------------------------------------------------------------------------------------
# Baird's counterexample with a target network (section 6.7)
# --------------------------------------------------------------------------------------


def test_baird_target_period_catches_a_target_that_ignores_its_period():
    ns = load_check(CH6, "baird-target-period")
    periods, sweeps = (1, 10, 100, 300), 20_000
    ns["check_target_periods"](rl.baird_target_periods, periods, sweeps)

    def refresh_every_sweep(periods, **kwargs):
        return rl.baird_target_periods([1] * len(periods), **kwargs)

    assert fails(ns["check_target_periods"], refresh_every_sweep, periods, sweeps)


# --------------------------------------------------------------------------------------
# The discount as a survival probability (section 6.2)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def survival():
    evaluate_by_loops = load_check(CH6, "eq-exact-evaluation")["evaluate_by_loops"]
    ns = load_check(CH6, "discount-survival", evaluate_by_loops=evaluate_by_loops)
    mdp = rl.random_mdp(50, 4, gamma=0.9, seed=1)
    policy = torch.arange(50) % 4
    return ns, mdp, policy


def test_discount_survival_passes_with_geometric_lifetimes(survival):
    ns, mdp, policy = survival
    ns["check_survival"](ns["geometric_lifetimes"], mdp, policy, 20_000)


@pytest.mark.parametrize("wrong", ["dies_before_the_first_reward", "survives_with_one_minus_gamma"])
def test_discount_survival_catches(wrong, survival):
    ns, mdp, policy = survival
    right = ns["geometric_lifetimes"]
    lifetimes = {
        "dies_before_the_first_reward": lambda gamma, n, gen: right(gamma, n, gen) - 1,   # Pr(L > t) = gamma^(t+1)
        "survives_with_one_minus_gamma": lambda gamma, n, gen: right(1 - gamma, n, gen),
    }[wrong]
    assert fails(ns["check_survival"], lifetimes, mdp, policy, 20_000)


# --------------------------------------------------------------------------------------
# Maximization bias: Q-learning against Double Q-learning (Example 6.7)
# --------------------------------------------------------------------------------------


def _bias_runs():
    return {double: rl.maximization_bias(double, num_runs=2_000, episodes=300, seed=0) for double in (False, True)}


def test_max_bias_passes_with_double_q_learning():
    ns = load_check(CH6, "max-bias")
    out = _bias_runs()
    ns["check_maximization_bias"](out[False], out[True])


def test_max_bias_catches_a_double_target_that_values_with_its_own_table(monkeypatch):
    ns = load_check(CH6, "max-bias")

    def own_table(reward, next_q_select, next_q_evaluate, terminated, gamma):
        return rl.q_learning_td_target(reward, next_q_select, terminated, gamma)

    monkeypatch.setattr(value_based, "double_q_learning_td_target", own_table)
    out = _bias_runs()
    assert fails(ns["check_maximization_bias"], out[False], out[True])
