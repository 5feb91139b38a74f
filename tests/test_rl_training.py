"""The RL trainers on the shared training core: resume equivalence, divergence guard,
interrupt safety, baselines (REINFORCE with a learned value baseline), ES.

Runs are tiny (a few thousand CartPole steps) so the file takes seconds.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import rl
from course_lib.rl.reinforce import _weights
from course_lib.training import CheckpointError, TrainingDiverged

torch.set_num_threads(1)

# about 6 updates of >= 500 steps each
SMALL = dict(num_envs=4, batch_size=400, total_steps=2000, progress=False)


def _interrupt_at(update: int):
    """A callback that raises at the given update (1-based count of finished updates)."""

    def callback(policy, history):
        if len(history["env_steps"]) == update:
            raise RuntimeError(f"stop at update {update}")
        return False

    return callback


def _assert_same_run(run_a, run_b):
    (pa, ha), (pb, hb) = run_a, run_b
    for (name, a), (_, b) in zip(pa.state_dict().items(), pb.state_dict().items()):
        assert torch.equal(a, b), f"parameter {name} differs after resume"
    for key in ha:
        if key in ("wall_time", "stop_reason", "value_network"):
            continue
        if key == "checkpoints":
            assert [c["env_steps"] for c in ha[key]] == [c["env_steps"] for c in hb[key]]
            for ca, cb in zip(ha[key], hb[key]):
                assert all(torch.equal(ca["state_dict"][k], cb["state_dict"][k]) for k in ca["state_dict"])
        else:
            assert ha[key] == hb[key], f"history[{key!r}] differs after resume"
    if "value_network" in ha:
        for a, b in zip(ha["value_network"].parameters(), hb["value_network"].parameters()):
            assert torch.equal(a, b)


# --------------------------------------------------------------------------------------
# Faithful resume (bit-identical on CPU)
# --------------------------------------------------------------------------------------


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop=st.integers(1, 5), baseline=st.sampled_from(["standardize", "value"]), seed=st.integers(0, 3))
def test_reinforce_resume_after_exception_is_bit_identical(tmp_path_factory, stop, baseline, seed):
    path = str(tmp_path_factory.mktemp("ckpt") / "reinforce.pt")
    config = rl.ReinforceConfig(
        **SMALL, baseline=baseline, seed=seed, checkpoint_fractions=(0.0, 0.5, 1.0), value_iterations=3
    )
    reference = rl.train_reinforce(config)
    resumable = dataclasses.replace(config, checkpoint_path=path, checkpoint_every=100)  # saved only on the error
    with pytest.raises(RuntimeError, match="stop at update") as info:
        rl.train_reinforce(resumable, callback=_interrupt_at(stop))
    assert len(info.value.history["env_steps"]) == stop  # the caller gets the partial history
    assert os.path.exists(path)
    resumed = rl.train_reinforce(dataclasses.replace(resumable, checkpoint_every=1))  # safe to change
    _assert_same_run(reference, resumed)


def test_reinforce_resume_after_ctrl_c_and_time_budget(tmp_path):
    config = rl.ReinforceConfig(**SMALL, seed=1)
    reference = rl.train_reinforce(config)

    # Ctrl-C during update 2: training stops at the next boundary and returns the partial run
    path = str(tmp_path / "a.pt")

    def press_ctrl_c(policy, history):
        if len(history["env_steps"]) == 2:
            os.kill(os.getpid(), signal.SIGINT)

    _, partial = rl.train_reinforce(dataclasses.replace(config, checkpoint_path=path), callback=press_ctrl_c)
    assert partial["stop_reason"] == "interrupted" and len(partial["env_steps"]) < len(reference[1]["env_steps"])
    _assert_same_run(reference, rl.train_reinforce(dataclasses.replace(config, checkpoint_path=path)))

    # a time budget spent after the first update; the budget may change on resume
    path = str(tmp_path / "b.pt")
    _, partial = rl.train_reinforce(dataclasses.replace(config, checkpoint_path=path, max_seconds=1e-9))
    assert partial["stop_reason"] == "time_budget" and len(partial["env_steps"]) == 1
    _assert_same_run(reference, rl.train_reinforce(dataclasses.replace(config, checkpoint_path=path)))


def test_reinforce_resume_refuses_a_different_config(tmp_path):
    path = str(tmp_path / "c.pt")
    config = rl.ReinforceConfig(**SMALL, checkpoint_path=path)
    with pytest.raises(RuntimeError):
        rl.train_reinforce(config, callback=_interrupt_at(1))
    lower = dataclasses.replace(config, learning_rate=0.01)
    with pytest.raises(CheckpointError, match="learning_rate"):
        rl.train_reinforce(lower)
    # allowed explicitly (a diverged run resumed from its last finite checkpoint)
    _, history = rl.train_reinforce(lower, allow_changed=("learning_rate",))
    assert history["stop_reason"] == "completed" and len(history["env_steps"]) > 1


def test_es_resume_is_bit_identical(tmp_path):
    config = rl.ESConfig(num_pairs=4, total_steps=1500, progress=False, checkpoint_fractions=(0.0, 1.0))
    reference = rl.train_es(config)
    path = str(tmp_path / "es.pt")
    with pytest.raises(RuntimeError):
        rl.train_es(dataclasses.replace(config, checkpoint_path=path), callback=_interrupt_at(3))
    _assert_same_run(reference, rl.train_es(dataclasses.replace(config, checkpoint_path=path)))


# --------------------------------------------------------------------------------------
# Divergence guard
# --------------------------------------------------------------------------------------


def test_reinforce_huge_learning_rate_is_an_error_not_a_dead_policy():
    with pytest.raises(TrainingDiverged, match="learning rate") as info:
        rl.train_reinforce(rl.ReinforceConfig(**{**SMALL, "total_steps": 20_000}, learning_rate=1e6))
    assert info.value.step <= 3 and "saturated" in str(info.value)


def test_es_guard_stops_on_a_non_finite_gradient_estimate(monkeypatch):
    import course_lib.rl.es as es_module

    calls = []

    def poisoned(fitness_pos, fitness_neg, eps, sigma):
        calls.append(1)
        g = rl.es_gradient_estimate(fitness_pos, fitness_neg, eps, sigma)
        return g * float("nan") if len(calls) == 2 else g

    monkeypatch.setattr(es_module, "es_gradient_estimate", poisoned)
    with pytest.raises(TrainingDiverged, match="ES gradient estimate") as info:
        rl.train_es(rl.ESConfig(num_pairs=2, total_steps=2000, progress=False))
    assert info.value.step == 1 and len(info.value.history["env_steps"]) == 1


@pytest.mark.parametrize("sigma", [float("inf"), float("nan"), 0.0, -1.0])
def test_es_config_refuses_bad_sigma(sigma):
    with pytest.raises(ValueError, match="sigma"):
        rl.ESConfig(sigma=sigma)


# --------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------


def test_baseline_weights_formulas():
    g = torch.tensor([3.0, 1.0, 2.0, 6.0])
    v = torch.tensor([1.0, 1.0, 1.0, 1.0])
    assert torch.equal(_weights(g, "none", None), g)
    assert torch.allclose(_weights(g, "mean", None), g - 3.0)
    assert torch.allclose(_weights(g, "standardize", None), (g - 3.0) / (g.std() + 1e-8))
    assert torch.allclose(_weights(g, "value", v), g - 1.0)


def test_normalize_returns_is_a_deprecated_alias_of_baseline():
    assert rl.ReinforceConfig().baseline == "standardize" and rl.ReinforceConfig().normalize_returns
    with pytest.warns(DeprecationWarning, match="baseline='none'"):
        cfg = rl.ReinforceConfig(normalize_returns=False)
    assert cfg.baseline == "none" and not cfg.normalize_returns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dataclasses.replace(cfg, seed=1).baseline == "none"  # replace does not warn again
        assert not rl.ReinforceConfig(baseline="value").normalize_returns
    with pytest.raises(ValueError, match="baseline"):
        rl.ReinforceConfig(baseline="critic")


def test_default_baseline_equals_explicit_standardize_and_differs_from_none():
    a = rl.train_reinforce(rl.ReinforceConfig(**SMALL))
    b = rl.train_reinforce(rl.ReinforceConfig(**SMALL, baseline="standardize"))
    c = rl.train_reinforce(rl.ReinforceConfig(**SMALL, baseline="mean"))
    _assert_same_run(a, b)
    assert a[1]["mean_return"][0] == c[1]["mean_return"][0]  # same first batch (same seed) ...
    assert a[1]["mean_return"][1:] != c[1]["mean_return"][1:]  # ... then a different update


def test_value_baseline_learns_the_reward_to_go():
    # a frozen policy (learning rate 1e-9), so that V_w chases a fixed target
    config = rl.ReinforceConfig(**{**SMALL, "total_steps": 5000}, baseline="value", learning_rate=1e-9)
    policy, history = rl.train_reinforce(config)
    assert len(history["value_loss"]) == len(history["env_steps"])
    critic = history["value_network"]
    assert isinstance(critic, rl.ValueNetwork) and not critic.training
    envs = rl.make_vec_env(config.env_id, 4)
    batch = rl.collect_batch(envs, policy, 1000, config.gamma, seed=99)
    envs.close()
    g = torch.as_tensor(batch.weights_rtg)
    with torch.no_grad():
        mse_critic = ((critic(torch.as_tensor(batch.obs)) - g) ** 2).mean()
    # on fresh episodes the critic beats the best constant (the mean, MSE = var); a critic
    # that did not learn (V = 0), or learned another target (r_t), does much worse
    assert mse_critic < 0.8 * g.var(), (mse_critic, g.var())


def test_value_network_shapes_and_errors():
    net = rl.ValueNetwork(4, (8,))
    assert net(torch.zeros(5, 4)).shape == (5,) and net(torch.zeros(4)).shape == ()
    with pytest.raises(ValueError, match="obs"):
        net(torch.zeros(5, 3))


# --------------------------------------------------------------------------------------
# Interrupt safety and callbacks
# --------------------------------------------------------------------------------------


def test_callback_exception_without_checkpoint_path_still_gives_the_partial_history():
    with pytest.raises(RuntimeError) as info:
        rl.train_reinforce(rl.ReinforceConfig(**SMALL), callback=_interrupt_at(2))
    assert len(info.value.history["mean_return"]) == 2
    assert any("partial history" in note for note in info.value.__notes__)


def test_callback_stop_is_recorded_and_snapshots_forced():
    config = rl.ReinforceConfig(**SMALL, checkpoint_fractions=(0.0, 0.5, 1.0))
    _, history = rl.train_reinforce(config, callback=lambda p, h: len(h["env_steps"]) == 1)
    assert history["stop_reason"] == "callback" and len(history["env_steps"]) == 1
    assert [c["fraction"] for c in history["checkpoints"]] == [0.0, 0.5, 1.0]
    assert history["checkpoints"][-1]["env_steps"] == history["env_steps"][-1]
