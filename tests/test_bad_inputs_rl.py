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


# --------------------------------------------------------------------------------------
# Issue 18: course_lib.rl.dqn and course_lib.rl.actor_critic (no silent wrong answers)
# --------------------------------------------------------------------------------------
def _buffer(capacity=8, obs_shape=(2,), dtype=torch.float32):
    return rl.ReplayBuffer(capacity, obs_shape, dtype)


def _add(buffer=None, **bad):
    """``buffer.add`` of two good transitions with one argument replaced."""
    buffer = _buffer() if buffer is None else buffer  # (an empty buffer is falsy: len 0)
    args = {"obs": torch.zeros(2, 2), "action": torch.tensor([0, 1]), "reward": torch.ones(2),
            "next_obs": torch.zeros(2, 2), "terminated": torch.tensor([False, True]), **bad}
    return lambda: buffer.add(**args)


def _frames(**bad):
    frames = {"obs": torch.zeros(2, 3, dtype=torch.uint8), "next_obs": torch.zeros(2, 3, dtype=torch.uint8)}
    return _add(_buffer(obs_shape=(3,), dtype=torch.uint8), **{**frames, **bad})


def _load(**changes):
    """``load_state_dict`` of a capacity-8 buffer's own state (3 transitions) with fields changed."""
    source = _buffer()
    source.add(torch.ones(3, 2), torch.tensor([0, 1, 0]), torch.ones(3), torch.ones(3, 2), torch.zeros(3, dtype=torch.bool))
    state = {**source.state_dict(), **changes}
    for key in [k for k, v in changes.items() if v is None]:
        del state[key]
    return lambda: _buffer().load_state_dict(state)


_AC = dict(num_envs=4, n_steps=16)  # a batch of 64 transitions
_DQN = dict(buffer_size=100, batch_size=32)

ISSUE_18 = [
    # A2C/PPO: minibatches that do not cover the batch dropped transitions every epoch
    ("ac num_minibatches 3 of 64", lambda: rl.ActorCriticConfig(**_AC, num_minibatches=3), ValueError, "num_minibatches"),
    ("ac num_minibatches 48 of 64", lambda: rl.ActorCriticConfig(**_AC, num_minibatches=48), ValueError, "num_minibatches"),
    ("ac checkpoint_every 0", lambda: rl.ActorCriticConfig(checkpoint_every=0), ValueError, "checkpoint_every"),
    ("ac checkpoint_every 2.5", lambda: rl.ActorCriticConfig(checkpoint_every=2.5), TypeError, "checkpoint_every"),
    ("ac normalize_advantages 'no'", lambda: rl.ActorCriticConfig(normalize_advantages="no"), TypeError,
     "normalize_advantages"),
    # DQN: a run that can take no gradient step "completed" untrained
    ("dqn learning_starts > total_steps", lambda: rl.DQNConfig(**_DQN, total_steps=500, learning_starts=501), ValueError,
     "learning_starts"),
    ("dqn learning_starts > total_steps (names total_steps)",
     lambda: rl.DQNConfig(**_DQN, total_steps=500, learning_starts=501), ValueError, "total_steps"),
    ("dqn batch_size > total_steps", lambda: rl.DQNConfig(buffer_size=100, batch_size=64, total_steps=50,
                                                           learning_starts=0), ValueError, "batch_size"),
    ("dqn stop_at_return '400'", lambda: rl.DQNConfig(stop_at_return="400", eval_every=100), TypeError, "stop_at_return"),
    ("dqn stop_at_return inf", lambda: rl.DQNConfig(stop_at_return=float("inf"), eval_every=100), ValueError,
     "stop_at_return"),
    ("dqn checkpoint_fractions ('a',)", lambda: rl.DQNConfig(checkpoint_fractions=("a",)), TypeError, "checkpoint_fractions"),
    ("dqn checkpoint_fractions '0.5'", lambda: rl.DQNConfig(checkpoint_fractions="0.5"), TypeError, "checkpoint_fractions"),
    ("dqn double 'yes'", lambda: rl.DQNConfig(double="yes"), TypeError, "double"),
    # ReplayBuffer.add: truncated, wrapped or rounded values
    ("buffer action 1.7", _add(action=torch.tensor([0.0, 1.7])), ValueError, "action"),
    ("buffer action NaN", _add(action=np.array([0.0, NAN])), ValueError, "action"),
    ("buffer action bool", _add(action=np.array([True, False])), TypeError, "action"),
    ("buffer action str", _add(action="left"), TypeError, "action"),
    ("buffer terminated 2", _add(terminated=np.array([0, 2])), ValueError, "terminated"),
    ("buffer terminated 0.5", _add(terminated=torch.tensor([0.5, 1.0])), ValueError, "terminated"),
    ("buffer reward None", _add(reward=None), TypeError, "reward"),
    ("buffer uint8 obs 0.5", _frames(obs=np.full((2, 3), 0.5)), ValueError, "obs"),
    ("buffer uint8 obs 300", _frames(obs=torch.full((2, 3), 300)), ValueError, "obs"),
    ("buffer uint8 obs -1", _frames(obs=np.full((2, 3), -1)), ValueError, "obs"),
    ("buffer uint8 next_obs 256.0", _frames(next_obs=torch.full((2, 3), 256.0)), ValueError, "next_obs"),
    ("buffer uint8 obs NaN", _frames(obs=torch.full((2, 3), NAN)), ValueError, "obs"),
    # ReplayBuffer.load_state_dict: every field of a loaded state
    ("buffer load size 100 > capacity 8", _load(size=100), ValueError, "size"),
    ("buffer load position 8 = capacity", _load(position=8, size=8), ValueError, "position"),
    ("buffer load position != size while not full", _load(position=5), ValueError, "position"),
    ("buffer load size -1", _load(size=-1), ValueError, "size"),
    ("buffer load size 2.0", _load(size=2.0), TypeError, "size"),
    ("buffer load obs of capacity 9", _load(obs=torch.zeros(9, 2)), ValueError, "obs"),
    ("buffer load rewards float64", _load(rewards=torch.zeros(8, dtype=torch.float64)), ValueError, "rewards"),
    ("buffer load terminated list", _load(terminated=[False] * 8), TypeError, "terminated"),
    ("buffer load no actions", _load(actions=None), ValueError, "actions"),
    ("buffer load state a list", lambda: _buffer().load_state_dict([1, 2]), TypeError, "state"),
    ("evaluate_greedy seed -1", lambda: rl.evaluate_greedy(rl.QNetwork(4, 2), num_episodes=1, seed=-1), ValueError, "seed"),
]


@pytest.mark.parametrize("case, call, exc_type, name", ISSUE_18, ids=_ids(ISSUE_18))
def test_issue_18_bad_inputs(case, call, exc_type, name):
    _check(call, exc_type, name)


def test_a_refused_add_or_load_leaves_the_buffer_as_it_was():
    buffer = _buffer()
    _add(buffer)()
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in buffer.state_dict().items()}
    for call in (_add(buffer, action=torch.tensor([0.0, 1.7])), _add(buffer, terminated=np.array([0, 2]))):
        with pytest.raises(ValueError):
            call()
    with pytest.raises(ValueError):
        buffer.load_state_dict({**buffer.state_dict(), "obs": torch.ones(8, 2), "size": 100})
    for key, value in buffer.state_dict().items():
        assert torch.equal(value, before[key]) if isinstance(value, torch.Tensor) else value == before[key], key


# NumPy scalars are numbers: each row is accepted and gives what the Python numbers give
NUMPY_SCALARS = [
    ("linear_schedule np.float32 / np.int64",
     lambda: rl.linear_schedule(np.float32(1.0), np.float64(0.5), np.int64(10), np.int64(4)),
     lambda: rl.linear_schedule(1.0, 0.5, 10, 4)),
    ("linear_schedule np.int64 endpoints", lambda: rl.linear_schedule(np.int64(1), np.int32(0), 4, 1),
     lambda: rl.linear_schedule(1, 0, 4, 1)),
    ("DQNConfig numpy fields", lambda: rl.DQNConfig(total_steps=np.int64(500), learning_starts=np.int32(100),
                                                     tau=np.float32(0.5), gamma=np.float64(0.9), double=np.bool_(True),
                                                     stop_at_return=np.float32(400), eval_every=np.int64(100),
                                                     checkpoint_fractions=(np.float32(0.0), np.float32(0.5))),
     lambda: rl.DQNConfig(total_steps=500, learning_starts=100, tau=0.5, gamma=0.9, double=True, stop_at_return=400.0,
                          eval_every=100, checkpoint_fractions=(0.0, 0.5))),
    ("ActorCriticConfig numpy fields", lambda: rl.ActorCriticConfig(num_envs=np.int64(2), n_steps=np.int32(8),
                                                                     learning_rate=np.float64(0.01), seed=np.int64(1),
                                                                     shared=np.bool_(True), clip_range=np.float64(0.2),
                                                                     normalize_advantages=np.bool_(False)),
     lambda: rl.ActorCriticConfig(num_envs=2, n_steps=8, learning_rate=0.01, seed=1, shared=True, clip_range=0.2,
                                  normalize_advantages=False)),
    ("evaluate_greedy np.int64 seed and counts",
     lambda: rl.evaluate_greedy(_q_network(), num_episodes=np.int64(2), seed=np.int64(3), epsilon=np.float32(0.0),
                                max_steps=np.int64(30)).tolist(),
     lambda: rl.evaluate_greedy(_q_network(), num_episodes=2, seed=3, epsilon=0.0, max_steps=30).tolist()),
]


def _q_network():
    torch.manual_seed(0)
    return rl.QNetwork(4, 2, (8,))


@pytest.mark.parametrize("case, numpy_call, python_call", NUMPY_SCALARS, ids=_ids(NUMPY_SCALARS))
def test_numpy_scalars_are_accepted_like_python_numbers(case, numpy_call, python_call):
    import dataclasses

    got, expected = numpy_call(), python_call()
    assert got == expected
    if dataclasses.is_dataclass(got):  # stored as Python numbers: a checkpoint's config loads with weights_only
        assert all(type(a) is type(b) for a, b in zip(dataclasses.astuple(got), dataclasses.astuple(expected)))


@pytest.mark.parametrize("trainer", ["a2c", "dqn"])
def test_a_config_of_numpy_scalars_trains_and_its_checkpoint_resumes(tmp_path, trainer):
    from course_lib import training

    path = str(tmp_path / "run.pt")
    if trainer == "a2c":
        cfg = rl.ActorCriticConfig(num_envs=np.int64(2), n_steps=np.int64(8), total_steps=np.int64(48),
                                   hidden_sizes=(np.int64(8),), learning_rate=np.float32(0.01), seed=np.int64(1),
                                   progress=False, checkpoint_path=path)
        rl.train_actor_critic(cfg)
    else:
        cfg = rl.DQNConfig(total_steps=np.int64(120), learning_starts=np.int64(40), buffer_size=np.int64(100),
                           batch_size=np.int64(16), train_frequency=np.int64(20), hidden_sizes=(np.int64(8),),
                           learning_rate=np.float32(1e-3), seed=np.int64(1), progress=False, checkpoint_path=path)
        rl.train_dqn(cfg)
    assert training.load_checkpoint(path)["step"] > 0
