"""Property tests for Chapter 7: the replay buffer, the DQN and Double DQN targets, the
epsilon schedule, the networks, the Atari pipeline and train_dqn (resume bit-identical)."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from course_lib import rl
from course_lib.rl import (
    DQNConfig,
    NatureCNN,
    QNetwork,
    ReplayBuffer,
    double_dqn_target,
    evaluate_greedy,
    linear_schedule,
    sample_indices,
    td_target,
    train_dqn,
)
from course_lib.training import TrainingDiverged


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------


def test_td_target_hand_made_with_truncation():
    # transitions: ordinary, terminated, truncated (time limit: still bootstraps)
    rewards = torch.tensor([1.0, 1.0, 1.0])
    next_q = torch.tensor([[2.0, 4.0], [10.0, 3.0], [5.0, 6.0]])
    terminated = torch.tensor([False, True, False])  # the third one was truncated, not terminated
    y = td_target(rewards, next_q, terminated, 0.5)
    torch.testing.assert_close(y, torch.tensor([3.0, 1.0, 4.0]))


def test_td_target_has_no_gradient():
    next_q = torch.randn(5, 3, requires_grad=True)
    y = td_target(torch.ones(5), next_q, torch.zeros(5, dtype=torch.bool), 0.9)
    assert not y.requires_grad


def test_td_target_keeps_chapter5_value_form():
    torch.testing.assert_close(td_target([1.0, 1.0], [5.0, 5.0], [0, 1], 0.9), torch.tensor([5.5, 1.0]))
    torch.testing.assert_close(td_target(rewards=[1.0], next_values=[2.0], terminated=[0], gamma=0.5), torch.tensor([2.0]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 8), st.integers(1, 5), st.floats(0, 1), st.integers(0, 2**31 - 1))
def test_double_target_never_exceeds_dqn_target(B, A, gamma, seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.randn(B, generator=g)
    q_on, q_tg = torch.randn(B, A, generator=g), torch.randn(B, A, generator=g)
    term = torch.rand(B, generator=g) < 0.3
    dd = double_dqn_target(r, q_on, q_tg, term, gamma)
    d = td_target(r, q_tg, term, gamma)
    assert torch.all(dd <= d + 1e-6)
    # with the same network for selection and evaluation, Double DQN is DQN
    torch.testing.assert_close(double_dqn_target(r, q_tg, q_tg, term, gamma), d)
    # terminated transitions are exactly r
    torch.testing.assert_close(dd[term], r[term])


def test_double_target_uses_online_argmax():
    y = double_dqn_target(torch.tensor([0.0]), torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0, 7.0]]),
                          torch.tensor([False]), 1.0)
    assert y.item() == 3.0  # online picks action 0; target rates it 3, not max 7


# --------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.floats(-5, 5), st.floats(-5, 5), st.integers(0, 1000), st.integers(0, 2000))
def test_linear_schedule_endpoints_and_bounds(start, end, duration, step):
    v = linear_schedule(start, end, duration, step)
    assert min(start, end) - 1e-9 <= v <= max(start, end) + 1e-9
    if step >= duration:
        assert v == pytest.approx(end)
    if duration > 0:
        assert linear_schedule(start, end, duration, 0) == pytest.approx(start)
        assert linear_schedule(start, end, duration, duration // 2) == pytest.approx(
            start + (duration // 2) / duration * (end - start))


# --------------------------------------------------------------------------------------
# Replay buffer
# --------------------------------------------------------------------------------------


def _transitions(start: int, n: int, dim: int = 2):
    ids = torch.arange(start, start + n, dtype=torch.float32)
    obs = ids[:, None].repeat(1, dim)
    return obs, torch.arange(start, start + n) % 3, ids, obs + 0.5, (torch.arange(start, start + n) % 2) == 0


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(1, 9), min_size=1, max_size=8))
def test_ring_buffer_keeps_exactly_the_newest(capacity, chunks):
    buf = ReplayBuffer(capacity, (2,))
    total = 0
    for n in chunks:
        buf.add(*_transitions(total, n))
        total += n
    assert len(buf) == min(total, capacity)
    stored = sorted(buf.rewards[: len(buf)].tolist())
    assert stored == [float(i) for i in range(max(0, total - capacity), total)]
    # every field of a slot belongs to the same transition
    torch.testing.assert_close(buf.obs[: len(buf), 0], buf.rewards[: len(buf)])
    torch.testing.assert_close(buf.next_obs[: len(buf), 1], buf.rewards[: len(buf)] + 0.5)
    assert torch.equal(buf.actions[: len(buf)], buf.rewards[: len(buf)].long() % 3)
    latest = buf.latest(len(buf))
    assert latest.rewards.tolist() == [float(i) for i in range(max(0, total - capacity), total)]


def test_sampling_is_uniform_chi_squared():
    buf = ReplayBuffer(20, (1,))
    buf.add(*_transitions(0, 35, dim=1))  # wrapped: transitions 15..34 remain
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([buf.sample(16, g).rewards for _ in range(800)]).long()
    assert draws.min() >= 15 and draws.max() <= 34
    counts = torch.bincount(draws - 15, minlength=20).numpy()
    p = stats.chisquare(counts).pvalue
    assert p > 1e-3, f"sampling not uniform: chi2 p = {p}"
    # a biased sampler (always the newest half) fails the same test
    biased = np.bincount(np.random.default_rng(0).integers(10, 20, 12800), minlength=20)
    assert stats.chisquare(biased).pvalue < 1e-6


def test_sample_indices_range_and_determinism():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a, b = sample_indices(7, 500, g1), sample_indices(7, 500, g2)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() == 6 and a.dtype == torch.int64


def test_buffer_state_dict_round_trip():
    buf = ReplayBuffer(5, (2,))
    buf.add(*_transitions(0, 7))
    other = ReplayBuffer(5, (2,))
    other.load_state_dict(buf.state_dict())
    assert len(other) == 5 and other.position == buf.position and torch.equal(other.obs, buf.obs)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-300, 600), min_size=3, max_size=3), st.sampled_from(["int64", "float64", "float32"]),
       st.booleans())
def test_uint8_buffer_stores_frames_exactly_or_refuses_them(pixels, kind, fraction):
    """The buffer never wraps or rounds a frame: what it holds is what was given, or add raises."""
    buf = ReplayBuffer(4, (3,), torch.uint8)
    frame = np.array([pixels, pixels], dtype=kind)
    if fraction and kind != "int64":
        frame[0, 0] += 0.5  # a fraction in the first transition
    exact = all(0 <= v <= 255 for v in frame.ravel()) and bool(np.all(frame == np.round(frame)))
    call = lambda: buf.add(frame, [0, 1], [0.0, 1.0], frame, [False, True])  # noqa: E731
    if exact:
        call()
        assert torch.equal(buf.obs[:2], torch.as_tensor(frame).to(torch.int64).to(torch.uint8))
        assert buf.obs[:2].to(torch.float64).tolist() == frame.astype(np.float64).tolist()
    else:
        with pytest.raises(ValueError, match="obs"):
            call()
        assert len(buf) == 0


def test_buffer_takes_integer_actions_and_0_1_flags_in_any_form():
    buf = ReplayBuffer(8, (2,))
    obs = np.zeros((2, 2), dtype=np.float32)
    buf.add(obs, np.array([1.0, 2.0]), np.ones(2), obs, np.array([0, 1]))  # float actions with integer values
    buf.add(obs, [3, 0], [1, 1], obs, np.array([np.True_, np.False_]))  # lists, NumPy bools
    buf.add(obs, torch.tensor([1, 1], dtype=torch.int32), torch.ones(2), obs, torch.tensor([1.0, 0.0]))
    assert buf.actions[:6].tolist() == [1, 2, 3, 0, 1, 1]
    assert buf.terminated[:6].tolist() == [False, True, True, False, True, False]
    for bad in ({"terminated": np.array([0, 2])}, {"terminated": np.array([0.5, 1.0])}, {"action": np.array([0, 1.7])}):
        args = {"action": [0, 1], "terminated": [False, False], **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            buf.add(obs, args["action"], np.ones(2), obs, args["terminated"])
    assert len(buf) == 6  # a refused add stores nothing


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 10), st.integers(0, 25), st.integers(-2, 12), st.integers(-2, 12))
def test_buffer_load_state_dict_accepts_exactly_the_states_a_buffer_can_be_in(capacity, added, position, size):
    """A state is loaded iff size <= capacity, position < capacity and (full or position == size):
    the states a ring buffer reaches; anything else is refused, naming the field."""
    source = ReplayBuffer(capacity, (2,))
    if added:
        source.add(*_transitions(0, added))
    state = {**source.state_dict(), "position": position, "size": size}
    reachable = 0 <= size <= capacity and 0 <= position < capacity and (size == capacity or position == size)
    target = ReplayBuffer(capacity, (2,))
    if reachable:
        target.load_state_dict(state)
        assert (target.position, len(target)) == (position, size) and torch.equal(target.obs, source.obs)
    else:
        with pytest.raises(ValueError, match="position|size"):
            target.load_state_dict(state)
        assert (target.position, len(target)) == (0, 0) and not target.obs.any()


def test_linear_schedule_takes_numpy_scalars_like_python_numbers():
    for step in (0, 3, 10, 20):
        assert linear_schedule(np.float32(1.0), np.float32(0.25), np.int64(10), np.int64(step)) == \
            linear_schedule(1.0, 0.25, 10, step)


# --------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------


def test_networks_shapes():
    assert QNetwork(4, 2, (8,))(torch.randn(3, 4)).shape == (3, 2)
    cnn = NatureCNN(4, 6)
    assert cnn(torch.randint(0, 255, (2, 4, 84, 84), dtype=torch.uint8)).shape == (2, 6)
    x = torch.randint(0, 255, (1, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(cnn(x), cnn(x.float() / 255))


def test_evaluate_greedy_is_seeded_and_bounded():
    q = QNetwork(4, 2, (8,))
    a, b = evaluate_greedy(q, num_episodes=7, seed=1), evaluate_greedy(q, num_episodes=7, seed=1)
    assert a.shape == (7,) and np.array_equal(a, b) and np.all((a >= 1) & (a <= 500))


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale-py not installed")
def test_atari_pipeline_shapes():
    env = rl.make_atari_env("ALE/Pong-v5")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    env.close()


# --------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------

R, Q, T = torch.ones(2), torch.ones(2, 3), torch.zeros(2, dtype=torch.bool)


@pytest.mark.parametrize(
    "call, exc, name",
    [
        (lambda: td_target(R, torch.ones(3, 3), T, 0.9), ValueError, "next_q_values"),
        (lambda: td_target(R, Q, torch.zeros(3, dtype=torch.bool), 0.9), ValueError, "terminated"),
        (lambda: td_target(R, Q, torch.tensor([0, 2]), 0.9), ValueError, "terminated"),
        (lambda: td_target(R, Q, T, 1.5), ValueError, "gamma"),
        (lambda: td_target(None, Q, T, 0.9), TypeError, "rewards"),
        (lambda: td_target(torch.ones(2, 2, 2), torch.ones(2, 2), T, 0.9), ValueError, "rewards"),
        (lambda: double_dqn_target(R, Q, torch.ones(2, 4), T, 0.9), ValueError, "next_q_online"),
        (lambda: double_dqn_target(R, torch.ones(3, 3), Q, T, 0.9), ValueError, "next_q_online"),
        (lambda: double_dqn_target(R, Q, Q, T, -0.1), ValueError, "gamma"),
        (lambda: linear_schedule(float("nan"), 0.0, 10, 1), ValueError, "start"),
        (lambda: linear_schedule(1.0, "x", 10, 1), ValueError, "end"),
        (lambda: linear_schedule(1.0, 0.0, -1, 1), ValueError, "duration"),
        (lambda: linear_schedule(1.0, 0.0, 10, -1), ValueError, "step"),
        (lambda: sample_indices(0, 3), ValueError, "size"),
        (lambda: sample_indices(3, 0), ValueError, "batch_size"),
        (lambda: ReplayBuffer(0, (2,)), ValueError, "capacity"),
        (lambda: ReplayBuffer(4, "ab"), ValueError, "obs_shape"),
        (lambda: ReplayBuffer(4, (2,), obs_dtype="float"), TypeError, "obs_dtype"),
        (lambda: ReplayBuffer(4, (2,), device="tpu"), ValueError, "device"),
        (lambda: ReplayBuffer(4, (2,)).sample(5), ValueError, "capacity"),
        (lambda: ReplayBuffer(4, (2,)).sample(2), ValueError, "empty"),
        (lambda: ReplayBuffer(4, (2,)).add(torch.ones(2, 3), torch.ones(2), torch.ones(2), torch.ones(2, 2), T), ValueError, "obs"),
        (lambda: ReplayBuffer(4, (2,)).add(torch.ones(2, 2), torch.ones(2), torch.ones(2), torch.ones(3, 2), T), ValueError, "next_obs"),
        (lambda: ReplayBuffer(4, (2,)).add(torch.ones(2, 2), torch.ones(3), torch.ones(2), torch.ones(2, 2), T), ValueError, "action"),
        (lambda: ReplayBuffer(4, (2,)).add(torch.ones(2, 2), torch.ones(2), torch.ones(1), torch.ones(2, 2), T), ValueError, "reward"),
        (lambda: ReplayBuffer(4, (2,)).add(torch.ones(2, 2), torch.ones(2), torch.ones(2), torch.ones(2, 2), torch.ones(1)), ValueError, "terminated"),
        (lambda: QNetwork(0, 2), ValueError, "obs_dim"),
        (lambda: QNetwork(4, 0), ValueError, "num_actions"),
        (lambda: QNetwork(4, 2, (0,)), ValueError, "hidden_sizes"),
        (lambda: NatureCNN(0, 2), ValueError, "in_channels"),
        (lambda: NatureCNN(4, -1), ValueError, "num_actions"),
        (lambda: evaluate_greedy(QNetwork(4, 2), num_episodes=0), ValueError, "num_episodes"),
        (lambda: evaluate_greedy(QNetwork(4, 2), epsilon=2.0), ValueError, "epsilon"),
        (lambda: rl.make_atari_env("CartPole-v1"), ValueError, "env_id"),
        (lambda: train_dqn("CartPole-v1"), TypeError, "config"),
        (lambda: train_dqn(DQNConfig(env_id="Pendulum-v1", progress=False)), ValueError, "action"),
    ],
)
def test_bad_inputs(call, exc, name):
    with pytest.raises(exc, match=name):
        call()


@pytest.mark.parametrize(
    "field, value, exc",
    [
        ("total_steps", 0, ValueError), ("buffer_size", 10, ValueError), ("batch_size", 0, ValueError),
        ("train_frequency", 0, ValueError), ("gradient_steps", -1, ValueError),
        ("target_update_interval", 0, ValueError), ("tau", 0.0, ValueError), ("gamma", 1.1, ValueError),
        ("learning_rate", -1e-3, ValueError), ("epsilon_end", 2.0, ValueError),
        ("exploration_fraction", -0.1, ValueError), ("loss", "l1", ValueError), ("double", 1, TypeError),
        ("replay", "yes", TypeError), ("hidden_sizes", (0,), ValueError), ("learning_starts", -1, ValueError),
        ("stop_at_return", 475.0, ValueError), ("checkpoint_fractions", (0.5, 0.2), ValueError),
        ("max_grad_norm", 0.0, ValueError), ("device", "tpu", ValueError), ("env_id", "", TypeError),
    ],
)
def test_config_bad_inputs(field, value, exc):
    kwargs = {"buffer_size": 100, "batch_size": 32} if field != "buffer_size" else {"batch_size": 32}
    with pytest.raises(exc, match=field if field != "stop_at_return" else "eval_every"):
        DQNConfig(**{**kwargs, field: value})


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------

TINY = dict(total_steps=800, learning_starts=100, buffer_size=500, batch_size=16, train_frequency=20,
            gradient_steps=4, target_update_interval=50, hidden_sizes=(16,), log_every=200, progress=False,
            checkpoint_every=200)


def test_train_dqn_history_and_checkpoints():
    q, h = train_dqn(DQNConfig(**TINY, eval_every=400, eval_episodes=3, exploration_fraction=1.0))
    for key in ("env_steps", "wall_time", "mean_return", "num_episodes", "simulated_steps", "loss", "eval_return"):
        assert len(h[key]) == 4, key
    assert h["env_steps"] == [200, 400, 600, 800] and h["stop_reason"] == "completed"
    assert np.isnan(h["eval_return"][0]) and not np.isnan(h["eval_return"][1])
    assert [c["fraction"] for c in h["checkpoints"]] == [0.0, 0.25, 0.5, 1.0]
    assert h["epsilon"][-1] < h["epsilon"][0]
    assert all(np.isfinite(h["loss"][1:]))


@pytest.mark.parametrize("extra", [{}, {"double": True, "tau": 0.5, "loss": "mse"}, {"replay": False, "target_network": False}])
def test_resume_is_bit_identical(tmp_path, extra):
    cfg = DQNConfig(**TINY, **extra)
    q0, h0 = train_dqn(cfg)
    path = str(tmp_path / "dqn.pt")
    cfg_ck = dataclasses.replace(cfg, checkpoint_path=path)
    calls = []

    def stop_once(q, history):
        calls.append(1)
        return len(calls) == 2  # stop after 400 env steps

    _, h_part = train_dqn(cfg_ck, callback=stop_once)
    assert h_part["stop_reason"] == "callback" and h_part["env_steps"][-1] == 400
    q1, h1 = train_dqn(cfg_ck)
    for (n, a), b in zip(q0.state_dict().items(), q1.state_dict().values()):
        assert torch.equal(a, b), n
    for key in ("env_steps", "loss", "mean_return", "num_episodes", "q_mean"):
        np.testing.assert_array_equal(h0[key], h1[key], err_msg=key)


def test_resume_without_buffer_still_runs(tmp_path):
    cfg = DQNConfig(**TINY, checkpoint_path=str(tmp_path / "b.pt"), checkpoint_buffer=False)
    train_dqn(cfg, callback=lambda q, h: True)
    _, h = train_dqn(cfg)
    assert h["env_steps"][-1] == 800


def test_learning_starts_up_to_total_steps_trains_and_beyond_is_refused():
    """learning_starts = total_steps still takes gradient steps; one more could take none (refused)."""
    _, h = train_dqn(DQNConfig(**{**TINY, "learning_starts": TINY["total_steps"]}))
    assert h["stop_reason"] == "completed" and h["gradient_steps"][-1] > 0
    with pytest.raises(ValueError, match="learning_starts=801 must be <= total_steps=800"):
        DQNConfig(**{**TINY, "learning_starts": 801})
    with pytest.raises(ValueError, match="batch_size=16 must be <= total_steps=10"):
        DQNConfig(**{**TINY, "total_steps": 10, "learning_starts": 0})


def test_divergence_guard_names_learning_rate():
    with pytest.raises(TrainingDiverged, match="learning rate"):
        train_dqn(DQNConfig(**{**TINY, "max_grad_norm": None}, learning_rate=1e30, loss="mse"))


@settings(max_examples=20, deadline=None)
@given(st.floats(0, 5), st.integers(1, 12))
def test_expected_max_gaussian_properties(sigma, A):
    v = rl.expected_max_gaussian(sigma, A)
    assert v >= -1e-9 and v == pytest.approx(sigma * rl.expected_max_gaussian(1.0, A), abs=1e-9)
    assert rl.expected_max_gaussian(1.0, A + 1) > rl.expected_max_gaussian(1.0, A)


def test_expected_max_gaussian_matches_monte_carlo_and_one_action_is_unbiased():
    assert abs(rl.expected_max_gaussian(3.0, 1)) < 1e-9
    g = torch.Generator().manual_seed(0)
    mc = torch.randn(200_000, 5, generator=g, dtype=torch.float64).amax(1)
    assert abs(mc.mean().item() - rl.expected_max_gaussian(1.0, 5)) < 4 * mc.std().item() / 200_000 ** 0.5


@pytest.mark.parametrize("kwargs, name", [(dict(sigma=-1.0), "sigma"), (dict(sigma=1.0, num_actions=0), "num_actions")])
def test_expected_max_gaussian_bad_inputs(kwargs, name):
    with pytest.raises(ValueError, match=name):
        rl.expected_max_gaussian(**kwargs)
