"""Chapter 5's numeric checks added for issue 23 catch the wrong formulas their sentences name.

Same pattern as ``tests/test_chapter_checks_rl.py`` (whose helpers this file imports): each
check cell of ``notebooks/05_baselines.ipynb`` starts with ``# CHECK: <label>``; the test
executes only its imports and ``def`` statements, calls the check with the right
implementation (it must pass) and with each wrong one (it must raise ``AssertionError``).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from course_lib import rl
from test_chapter_checks_rl import CH5, THETA0, THETA1, fails, load_check


@pytest.fixture(scope="module")
def mdp():
    return rl.tiny_mdp()


def _per_step_baseline(traj, num_states):
    """The per-step formula b_t(s) = E[|score_t|^2 G_t | s_t = s] / E[|score_t|^2 | s_t = s] (no cross-time terms)."""
    H = traj.states.shape[1]
    w = traj.probs[:, None] * (traj.scores**2).sum(-1)  # (K, H)
    onehot = torch.nn.functional.one_hot(traj.states, num_states).double()  # (K, H, S)
    num = (w[..., None] * traj.reward_to_go[..., None] * onehot).sum(0)
    den = (w[..., None] * onehot).sum(0)
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.zeros_like(den)).reshape(H, num_states)


@pytest.mark.parametrize("wrong", ["the value function", "the per-step formula"])
def test_eq5_v_optimal_one_step_catches(wrong, mdp):
    ns = load_check(CH5, "eq5-v-optimal-one-step")
    check = ns["check_value_is_optimal_only_one_step"]
    check(rl.optimal_state_baseline, mdp)

    def value(traj, num_states):
        theta_u = torch.zeros(mdp.num_states, mdp.num_actions, dtype=torch.float64)
        m = dataclasses.replace(mdp, horizon=traj.states.shape[1])
        return rl.exact_values(theta_u, m)[0][: m.horizon]

    wrongs = {"the value function": value, "the per-step formula": _per_step_baseline}
    assert fails(check, wrongs[wrong], mdp)


@pytest.mark.parametrize("wrong", ["future ratios dropped", "no ratio", "current ratio alone"])
def test_eq5_is_pg_returns_catches(wrong, mdp):
    ns = load_check(CH5, "eq5-is-pg-returns")
    check = ns["check_is_returns"]
    check(ns["all_ratios_up_to_k"], THETA0, THETA1, mdp)
    H = mdp.horizon
    wrongs = {
        "future ratios dropped": ns["ratios_up_to_t"],
        "no ratio": lambda log_rho: torch.ones(log_rho.shape[0], H, H, dtype=torch.float64),
        "current ratio alone": lambda log_rho: log_rho.exp()[:, :, None].expand(-1, -1, H),
    }
    assert fails(check, wrongs[wrong], THETA0, THETA1, mdp)
    # at theta = theta_old every ratio is 1: dropping the future ratios is exact there
    check(ns["ratios_up_to_t"], THETA0, THETA0, mdp)


def _gae_variants():
    def ignores_terminated(rewards, values, next_values, terminated, episode_ends, gamma, lam):
        return rl.gae(rewards, values, next_values, torch.zeros_like(terminated), episode_ends, gamma, lam)

    def forgets_gamma_in_recursion(rewards, values, next_values, terminated, episode_ends, gamma, lam):
        delta = rewards + gamma * (1.0 - terminated.double()) * next_values - values
        adv, running = torch.zeros_like(delta), torch.zeros_like(delta[..., 0])
        for t in range(delta.shape[-1] - 1, -1, -1):
            running = delta[..., t] + lam * (1.0 - episode_ends[..., t].double()) * running
            adv[..., t] = running
        return adv

    return {"ignores terminated": ignores_terminated, "lambda^k without gamma": forgets_gamma_in_recursion}


@pytest.mark.parametrize("wrong", ["ignores terminated", "lambda^k without gamma"])
def test_eq5_gae_lambda_catches(wrong, mdp):
    ns = load_check(CH5, "eq5-gae-lambda")
    traj = rl.exact_trajectories(THETA0, mdp)
    V, _ = rl.exact_values(THETA0, mdp)
    logits = THETA0.clone().requires_grad_(True)
    grad_J = torch.autograd.grad(rl.exact_objective(logits, mdp), logits)[0].flatten()
    ns["check_gae_lambda"](rl.gae, traj, V, grad_J, mdp)
    assert fails(ns["check_gae_lambda"], _gae_variants()[wrong], traj, V, grad_J, mdp)


def test_benchmark_table_reads_the_chapter_5_section(tmp_path):
    """§5.9's table reads the CartPole summary lines of RESULTS.md's Chapter 5 section, and nothing else."""
    import ast
    import json
    import re
    from pathlib import Path

    from test_chapter_checks_rl import NOTEBOOKS

    nb = json.loads((NOTEBOOKS / CH5).read_text(encoding="utf-8"))
    (cell,) = ["".join(c["source"]) for c in nb["cells"] if "def chapter5_results" in "".join(c["source"])]
    tree = ast.parse(cell)
    ns = {"re": re, "Path": Path}
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    exec(compile(ast.Module(body=keep, type_ignores=[]), "bench", "exec"), ns)
    results = tmp_path / "RESULTS.md"
    assert ns["chapter5_results"](results) == ({}, [])
    line = ("algo={a} env={e} median_steps={s} median_seconds=1.50 seeds_solved=9/10 solved_fraction=0.90 "
            "budget=500000 params=835 params_detail=835")
    results.write_text("\n".join([
        "# Benchmark results", "- machine: test", "",
        "## Chapter 4: REINFORCE", "```", line.format(a="reinforce", e="CartPole-v1", s=1), "```",
        "## Chapter 5: baselines and actor-critic", "```",
        line.format(a="ppo", e="CartPole-v1", s=20000), line.format(a="ppo", e="Acrobot-v1", s=7),
        line.format(a="sb3_ppo", e="CartPole-v1", s=30000), "```",
        "## Chapter 6: dynamic programming", "```", line.format(a="a2c", e="CartPole-v1", s=3), "```",
    ]), encoding="utf-8")
    rows, header = ns["chapter5_results"](results)
    assert set(rows) == {"ppo", "sb3_ppo"}
    assert rows["ppo"]["median_steps"] == "20000" and rows["ppo"]["seeds_solved"] == "9/10"
    assert header == ["- machine: test"]
