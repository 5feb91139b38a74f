"""Bad inputs to the RL side of the public API: one table per public module.

Each row calls a public function with one bad argument and checks (i) the exception
type and (ii) that the message names the argument, so a user sees which argument
was wrong instead of a deep stack trace or a silent wrong answer (issue 6, section 3).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from course_lib import checks, rl

torch.set_num_threads(1)

NAN = float("nan")


def _policy(obs_dim=4, num_actions=2):
    torch.manual_seed(0)
    return rl.CategoricalPolicy(obs_dim, num_actions, (8,))


def _check(call, exc_type, name):
    with pytest.raises(exc_type) as info:
        call()
    assert name in str(info.value), f"the message does not name {name!r}: {info.value}"


def _ids(table):
    return [row[0] for row in table]


# --------------------------------------------------------------------------------------
# course_lib.rl.policy_gradient
# --------------------------------------------------------------------------------------
POLICY_GRADIENT = [
    ("policy obs_dim=2.5", lambda: rl.CategoricalPolicy(2.5, 2), TypeError, "obs_dim"),
    ("policy obs_dim=True", lambda: rl.CategoricalPolicy(True, 2), TypeError, "obs_dim"),
    ("policy one action", lambda: rl.CategoricalPolicy(4, 1), ValueError, "num_actions"),
    ("policy hidden '32'", lambda: rl.CategoricalPolicy(4, 2, "32"), TypeError, "hidden_sizes"),
    ("policy hidden 0", lambda: rl.CategoricalPolicy(4, 2, (0,)), ValueError, "hidden_sizes"),
    ("obs 3-D", lambda: _policy()(torch.zeros(2, 3, 4)), ValueError, "obs"),
    ("obs wrong width", lambda: _policy()(torch.zeros(5, 3)), ValueError, "obs"),
    ("temperature 0", lambda: _policy()(torch.zeros(4), temperature=0.0), ValueError, "temperature"),
    ("temperature '1'", lambda: _policy()(torch.zeros(4), temperature="1"), TypeError, "temperature"),
    ("temperature NaN", lambda: _policy().act(torch.zeros(4), temperature=NAN), ValueError, "temperature"),
    (
        "temperature underflow -> NaN probs (forward)",
        lambda: _policy()(torch.full((3, 4), 50.0), temperature=1e-320),
        ValueError,
        "temperature",
    ),
    (
        "temperature underflow -> NaN probs (act)",
        lambda: _policy().act(torch.full((3, 4), 50.0), temperature=1e-320),
        ValueError,
        "temperature",
    ),
    ("value net obs_dim=0", lambda: rl.ValueNetwork(0), ValueError, "obs_dim"),
    ("value net hidden 2.5", lambda: rl.ValueNetwork(4, (2.5,)), ValueError, "hidden_sizes"),
    ("value net obs wrong width", lambda: rl.ValueNetwork(4)(torch.zeros(2, 5)), ValueError, "obs"),
    ("rtg gamma 1.5", lambda: rl.reward_to_go(torch.ones(3), 1.5), ValueError, "gamma"),
    ("rtg gamma True", lambda: rl.reward_to_go(torch.ones(3), True), TypeError, "gamma"),
    ("rtg rewards 3-D", lambda: rl.reward_to_go(torch.ones(2, 2, 2), 0.9), ValueError, "rewards"),
    ("rtg rewards empty", lambda: rl.reward_to_go(torch.ones(0), 0.9), ValueError, "rewards"),
    ("rtg rewards str", lambda: rl.reward_to_go("123", 0.9), TypeError, "rewards"),
    ("rtg rewards bool", lambda: rl.reward_to_go(torch.ones(3, dtype=torch.bool), 0.9), TypeError, "rewards"),
    (
        "rtg dones not 0/1",
        lambda: rl.reward_to_go(torch.ones(4), 0.9, dones=torch.tensor([0.0, 2.0, 0.0, 1.0])),
        ValueError,
        "dones",
    ),
    (
        "rtg dones 0.5",
        lambda: rl.reward_to_go(np.ones(3), 0.9, dones=np.array([0.0, 0.5, 1.0])),
        ValueError,
        "dones",
    ),
    ("rtg dones shape", lambda: rl.reward_to_go(torch.ones(4), 0.9, dones=torch.zeros(3)), ValueError, "dones"),
    ("loss numpy log_probs", lambda: rl.reinforce_loss(np.zeros(3), torch.ones(3)), TypeError, "log_probs"),
    (
        "loss int log_probs",
        lambda: rl.reinforce_loss(torch.zeros(3, dtype=torch.long), torch.ones(3)),
        TypeError,
        "log_probs",
    ),
    ("loss weights shape", lambda: rl.reinforce_loss(torch.zeros(3), torch.ones(4)), ValueError, "weights"),
    ("loss weights str", lambda: rl.reinforce_loss(torch.zeros(3), "abc"), TypeError, "weights"),
    ("loss empty", lambda: rl.reinforce_loss(torch.zeros(0), torch.zeros(0)), ValueError, "log_probs"),
]


@pytest.mark.parametrize("case, call, exc_type, name", POLICY_GRADIENT, ids=_ids(POLICY_GRADIENT))
def test_policy_gradient_bad_inputs(case, call, exc_type, name):
    _check(call, exc_type, name)


# --------------------------------------------------------------------------------------
# course_lib.rl.envs
# --------------------------------------------------------------------------------------


def _collect_with_next_step_autoreset():
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")  # NEXT_STEP by default
    try:
        rl.collect_batch(envs, _policy(), 50, 0.99)
    finally:
        envs.close()


def _collect(policy=None, min_steps=50, gamma=0.99, env_id="CartPole-v1", seed=None):
    envs = rl.make_vec_env(env_id, 2)
    try:
        rl.collect_batch(envs, policy if policy is not None else _policy(), min_steps, gamma, seed=seed)
    finally:
        envs.close()


ENVS = [
    ("make_vec_env num_envs 0", lambda: rl.make_vec_env("CartPole-v1", 0), ValueError, "num_envs"),
    ("make_vec_env num_envs 2.5", lambda: rl.make_vec_env("CartPole-v1", 2.5), TypeError, "num_envs"),
    ("make_vec_env env_id None", lambda: rl.make_vec_env(None, 2), TypeError, "env_id"),
    ("make_vec_env continuous", lambda: rl.make_vec_env("Pendulum-v1", 2), ValueError, "env_id"),
    ("collect NEXT_STEP autoreset", _collect_with_next_step_autoreset, ValueError, "SAME_STEP"),
    ("collect 2-action policy on MountainCar", lambda: _collect(_policy(2, 2), env_id="MountainCar-v0"), ValueError, "policy"),
    ("collect obs_dim mismatch", lambda: _collect(_policy(3, 2)), ValueError, "obs_dim"),
    ("collect min_steps 2.5", lambda: _collect(min_steps=2.5), TypeError, "min_steps"),
    ("collect min_steps 0", lambda: _collect(min_steps=0), ValueError, "min_steps"),
    ("collect gamma -0.1", lambda: _collect(gamma=-0.1), ValueError, "gamma"),
    ("collect seed -1", lambda: _collect(seed=-1), ValueError, "seed"),
    ("collect envs not a vector env", lambda: rl.collect_batch(gym.make("CartPole-v1"), _policy(), 10, 0.9), TypeError, "envs"),
    ("collect policy not a policy", lambda: _collect(policy=torch.nn.Linear(4, 2)), TypeError, "policy"),
    ("env_generators of a single env", lambda: rl.env_generators(gym.make("CartPole-v1")), TypeError, "envs"),
    ("evaluate 2-action policy on MountainCar", lambda: rl.evaluate(_policy(2, 2), "MountainCar-v0", 2), ValueError, "policy"),
    ("evaluate episodes 2.5", lambda: rl.evaluate(_policy(), episodes=2.5), TypeError, "episodes"),
    ("evaluate seed -1", lambda: rl.evaluate(_policy(), episodes=2, seed=-1), ValueError, "seed"),
    ("evaluate temperature 0", lambda: rl.evaluate(_policy(), episodes=2, temperature=0.0), ValueError, "temperature"),
    ("evaluate greedy 'yes'", lambda: rl.evaluate(_policy(), episodes=2, greedy="yes"), TypeError, "greedy"),
    ("evaluate num_envs 0", lambda: rl.evaluate(_policy(), episodes=2, num_envs=0), ValueError, "num_envs"),
    ("rollout 2-action policy on MountainCar", lambda: rl.rollout_episode(_policy(2, 2), "MountainCar-v0", render=False), ValueError, "policy"),
    ("rollout frame_stride 0", lambda: rl.rollout_episode(_policy(), frame_stride=0), ValueError, "frame_stride"),
    ("rollout max_steps 2.5", lambda: rl.rollout_episode(_policy(), max_steps=2.5, render=False), TypeError, "max_steps"),
    ("rollout render 1", lambda: rl.rollout_episode(_policy(), render=1), TypeError, "render"),
    ("rollout policy not a policy", lambda: rl.rollout_episode(torch.nn.Linear(4, 2), render=False), TypeError, "policy"),
    (
        "rollout temperature underflow",
        lambda: rl.rollout_episode(_policy(), temperature=1e-320, render=False),
        ValueError,
        "temperature",
    ),
]


@pytest.mark.parametrize("case, call, exc_type, name", ENVS, ids=_ids(ENVS))
def test_envs_bad_inputs(case, call, exc_type, name):
    _check(call, exc_type, name)


# --------------------------------------------------------------------------------------
# course_lib.rl.reinforce
# --------------------------------------------------------------------------------------
REINFORCE = [
    ("num_envs 0", dict(num_envs=0), ValueError, "num_envs"),
    ("num_envs True", dict(num_envs=True), TypeError, "num_envs"),
    ("batch_size 2.5", dict(batch_size=2.5), TypeError, "batch_size"),
    ("total_steps -1", dict(total_steps=-1), ValueError, "total_steps"),
    ("learning_rate 0", dict(learning_rate=0.0), ValueError, "learning_rate"),
    ("learning_rate inf", dict(learning_rate=float("inf")), ValueError, "learning_rate"),
    ("learning_rate NaN", dict(learning_rate=NAN), ValueError, "learning_rate"),
    ("learning_rate True", dict(learning_rate=True), TypeError, "learning_rate"),
    ("gamma 1.01", dict(gamma=1.01), ValueError, "gamma"),
    ("gamma '0.9'", dict(gamma="0.9"), TypeError, "gamma"),
    ("hidden_sizes (0,)", dict(hidden_sizes=(0,)), ValueError, "hidden_sizes"),
    ("normalize_returns 1", dict(normalize_returns=1), TypeError, "normalize_returns"),
    ("seed -1", dict(seed=-1), ValueError, "seed"),
    ("seed 1.5", dict(seed=1.5), TypeError, "seed"),
    ("device bogus", dict(device="gpu0"), ValueError, "device"),
    ("checkpoint_fractions > 1", dict(checkpoint_fractions=(0.5, 1.5)), ValueError, "checkpoint_fractions"),
    ("baseline unknown", dict(baseline="critic"), ValueError, "baseline"),
    ("value_learning_rate 0", dict(value_learning_rate=0.0), ValueError, "value_learning_rate"),
    ("value_hidden_sizes empty str", dict(value_hidden_sizes="64"), TypeError, "value_hidden_sizes"),
    ("value_iterations 0", dict(value_iterations=0), ValueError, "value_iterations"),
    ("checkpoint_path 3", dict(checkpoint_path=3), TypeError, "checkpoint_path"),
    ("checkpoint_every 0", dict(checkpoint_every=0), ValueError, "checkpoint_every"),
    ("max_seconds -1", dict(max_seconds=-1.0), ValueError, "max_seconds"),
    ("env_id empty", dict(env_id=""), ValueError, "env_id"),
]
if not torch.cuda.is_available():
    REINFORCE.append(("device cuda without CUDA", dict(device="cuda"), ValueError, "device"))


@pytest.mark.parametrize("case, kwargs, exc_type, name", REINFORCE, ids=_ids(REINFORCE))
def test_reinforce_config_bad_inputs(case, kwargs, exc_type, name):
    _check(lambda: rl.ReinforceConfig(**kwargs), exc_type, name)


def test_train_reinforce_bad_config_and_env():
    _check(lambda: rl.train_reinforce({"total_steps": 10}), TypeError, "config")
    _check(lambda: rl.train_reinforce(rl.ReinforceConfig(env_id="Pendulum-v1", progress=False)), ValueError, "env_id")


# --------------------------------------------------------------------------------------
# course_lib.rl.es
# --------------------------------------------------------------------------------------
ES = [
    ("ranks NaN", lambda: rl.centered_ranks(torch.tensor([1.0, NAN, 0.0])), ValueError, "x"),
    ("ranks inf", lambda: rl.centered_ranks(np.array([1.0, np.inf, 0.0])), ValueError, "x"),
    ("ranks one entry", lambda: rl.centered_ranks(torch.ones(1)), ValueError, "x"),
    ("ranks 2-D", lambda: rl.centered_ranks(torch.ones(2, 2)), ValueError, "x"),
    ("ranks str", lambda: rl.centered_ranks("abc"), TypeError, "x"),
    ("grad numpy eps", lambda: rl.es_gradient_estimate(torch.ones(2), torch.ones(2), np.ones((2, 3)), 0.1), TypeError, "eps"),
    ("grad numpy fitness", lambda: rl.es_gradient_estimate(np.ones(2), torch.ones(2), torch.ones(2, 3), 0.1), TypeError, "fitness_pos"),
    ("grad shapes", lambda: rl.es_gradient_estimate(torch.ones(3), torch.ones(2), torch.ones(2, 3), 0.1), ValueError, "fitness_pos"),
    ("grad 1-D eps", lambda: rl.es_gradient_estimate(torch.ones(2), torch.ones(2), torch.ones(2), 0.1), ValueError, "eps"),
    ("grad sigma inf", lambda: rl.es_gradient_estimate(torch.ones(2), torch.ones(2), torch.ones(2, 3), float("inf")), ValueError, "sigma"),
    ("grad sigma '0.1'", lambda: rl.es_gradient_estimate(torch.ones(2), torch.ones(2), torch.ones(2, 3), "0.1"), TypeError, "sigma"),
    ("config sigma inf", lambda: rl.ESConfig(sigma=float("inf")), ValueError, "sigma"),
    ("config sigma 0", lambda: rl.ESConfig(sigma=0.0), ValueError, "sigma"),
    ("config num_pairs 2.5", lambda: rl.ESConfig(num_pairs=2.5), TypeError, "num_pairs"),
    ("config learning_rate NaN", lambda: rl.ESConfig(learning_rate=NAN), ValueError, "learning_rate"),
    ("config weight_decay -1", lambda: rl.ESConfig(weight_decay=-1.0), ValueError, "weight_decay"),
    ("config greedy_actions 'no'", lambda: rl.ESConfig(greedy_actions="no"), TypeError, "greedy_actions"),
    ("config total_steps 0", lambda: rl.ESConfig(total_steps=0), ValueError, "total_steps"),
    ("config max_seconds 0", lambda: rl.ESConfig(max_seconds=0.0), ValueError, "max_seconds"),
    ("train_es config dict", lambda: rl.train_es({"sigma": 0.1}), TypeError, "config"),
]


@pytest.mark.parametrize("case, call, exc_type, name", ES, ids=_ids(ES))
def test_es_bad_inputs(case, call, exc_type, name):
    _check(call, exc_type, name)


# --------------------------------------------------------------------------------------
# course_lib.rl.tabular
# --------------------------------------------------------------------------------------
_P = torch.full((2, 2, 2), 0.5, dtype=torch.float64)
_R = torch.zeros(2, 2, dtype=torch.float64)
_p0 = torch.tensor([0.5, 0.5], dtype=torch.float64)


def _mdp(**kw):
    return rl.TabularMDP(**{"p0": _p0, "P": _P, "R": _R, "horizon": 3, **kw})


TABULAR = [
    ("horizon 30 (4^30 trajectories)", lambda: _mdp(horizon=30), ValueError, "horizon"),
    ("horizon 11 just above the limit", lambda: _mdp(horizon=11), ValueError, "horizon"),
    ("horizon 2.5", lambda: _mdp(horizon=2.5), TypeError, "horizon"),
    ("horizon 0", lambda: _mdp(horizon=0), ValueError, "horizon"),
    ("gamma 2", lambda: _mdp(gamma=2.0), ValueError, "gamma"),
    ("p0 not summing to 1", lambda: _mdp(p0=torch.tensor([0.5, 0.6])), ValueError, "p0"),
    ("p0 NaN", lambda: _mdp(p0=torch.tensor([NAN, 0.5])), ValueError, "p0"),
    ("P wrong shape", lambda: _mdp(P=torch.full((2, 2), 0.5)), ValueError, "P"),
    ("R NaN", lambda: _mdp(R=torch.tensor([[0.0, NAN], [0.0, 0.0]])), ValueError, "R"),
    ("R str", lambda: _mdp(R="zeros"), TypeError, "R"),
    ("objective numpy logits", lambda: rl.exact_objective(np.zeros((2, 2)), rl.tiny_mdp()), TypeError, "logits"),
    ("objective logits shape", lambda: rl.exact_objective(torch.zeros(3, 2), rl.tiny_mdp()), ValueError, "logits"),
    ("sample logits NaN", lambda: rl.sample_trajectories(torch.full((2, 2), NAN), rl.tiny_mdp(), 3), ValueError, "logits"),
    ("objective mdp dict", lambda: rl.exact_objective(torch.zeros(2, 2), {"P": _P}), TypeError, "mdp"),
    ("enumerate mdp None", lambda: rl.enumerate_trajectories(None), TypeError, "mdp"),
    ("sample n 2.5", lambda: rl.sample_trajectories(torch.zeros(2, 2), rl.tiny_mdp(), 2.5), TypeError, "n"),
    ("sample n 0", lambda: rl.sample_trajectories(torch.zeros(2, 2), rl.tiny_mdp(), 0), ValueError, "n"),
    ("sample generator seed int", lambda: rl.sample_trajectories(torch.zeros(2, 2), rl.tiny_mdp(), 3, 0), TypeError, "generator"),
    (
        "estimate reward_to_go 'yes'",
        lambda: rl.reinforce_gradient_estimate(torch.zeros(2, 2), rl.tiny_mdp(), 3, reward_to_go="yes"),
        TypeError,
        "reward_to_go",
    ),
    (
        "estimate numpy logits",
        lambda: rl.reinforce_gradient_estimate(np.zeros((2, 2)), rl.tiny_mdp(), 3),
        TypeError,
        "logits",
    ),
]


@pytest.mark.parametrize("case, call, exc_type, name", TABULAR, ids=_ids(TABULAR))
def test_tabular_bad_inputs_table(case, call, exc_type, name):
    _check(call, exc_type, name)


def test_type_errors_are_also_value_errors():
    """Callers that caught ValueError before the checkers existed still catch these."""
    with pytest.raises(ValueError):
        rl.reinforce_loss(np.zeros(3), torch.ones(3))
    assert issubclass(checks.ArgumentTypeError, ValueError)


def test_horizon_limit_is_where_it_is_stated():
    assert rl.MAX_TRAJECTORIES == 2**20
    _mdp(horizon=10)  # 4^10 = 2^20 trajectories: allowed (enumeration itself is not run here)
