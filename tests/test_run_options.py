"""The run fields (max_seconds, checkpoint_path, resume, progress) are declared once, in
training.RunOptions, and every trainer's config accepts and refuses the same values."""

import os
import pathlib

import numpy as np
import pytest

from course_lib import autoregressive, rl, training, vae

CONFIGS = [
    rl.ReinforceConfig,
    rl.ESConfig,
    rl.ActorCriticConfig,
    rl.DQNConfig,
    rl.TabularQConfig,
    rl.FittedQConfig,
    autoregressive.TrainConfig,
    vae.VAEConfig,
]


def _flows_config():
    from course_lib import flows

    return flows.TrainConfig


@pytest.fixture(params=CONFIGS + [_flows_config], ids=lambda c: getattr(c, "__name__", "flows.TrainConfig"))
def config_class(request):
    cls = request.param
    return cls() if cls is _flows_config else cls


def test_every_config_inherits_run_options(config_class):
    assert issubclass(config_class, training.RunOptions)


BAD = [
    ({"progress": "no"}, "progress"),
    ({"progress": 1}, "progress"),
    ({"resume": "yes"}, "resume"),
    ({"checkpoint_path": 123}, "checkpoint_path"),
    ({"checkpoint_path": b"x.ckpt"}, "checkpoint_path"),
    ({"checkpoint_path": ""}, "checkpoint_path"),
    ({"max_seconds": "5"}, "max_seconds"),
    ({"max_seconds": 0}, "max_seconds"),
    ({"max_seconds": -1.0}, "max_seconds"),
    ({"max_seconds": float("nan")}, "max_seconds"),
]


@pytest.mark.parametrize("kwargs, name", BAD, ids=[repr(k) for k, _ in BAD])
def test_every_config_refuses_the_same_run_fields(config_class, kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        config_class(**kwargs)


def test_every_config_accepts_the_same_run_fields(config_class, tmp_path):
    path = tmp_path / "run.ckpt"
    extra = {"regressor": "linear"} if config_class is rl.FittedQConfig else {}  # extra-trees cannot checkpoint
    c = config_class(**extra, max_seconds=np.float32(2.5), checkpoint_path=path, resume=np.bool_(False), progress=False)
    assert c.max_seconds == 2.5 and type(c.max_seconds) is float
    assert c.checkpoint_path == os.fspath(path) and isinstance(c.checkpoint_path, str)
    assert c.resume is False and c.progress is False
    assert config_class(max_seconds=float("inf")).max_seconds == float("inf")
    d = config_class()
    assert (d.max_seconds, d.checkpoint_path, d.resume, d.progress) == (None, None, True, True)


def test_fqi_refuses_a_checkpoint_it_cannot_hold():
    with pytest.raises(ValueError, match="checkpoint_path"):
        rl.FittedQConfig(regressor="extra_trees", checkpoint_path="q.ckpt")
    rl.FittedQConfig(regressor="linear", checkpoint_path=pathlib.Path("q.ckpt"))


@pytest.mark.parametrize("regressor", ["mlp", "linear"])
def test_fqi_checkpoint_resumes_to_the_uninterrupted_result(regressor, tmp_path):
    """FittedQConfig now takes checkpoint_path like every config: the file is written after
    each iteration, and a run stopped after 2 iterations and resumed ends where one run ends."""
    import torch

    rng = np.random.default_rng(0)
    n = 120
    ds = {"obs": rng.normal(size=(n, 3)), "next_obs": rng.normal(size=(n, 3)), "actions": rng.integers(0, 2, n),
          "rewards": rng.normal(size=n), "terminated": rng.random(n) < 0.1}
    path = tmp_path / "q.ckpt"
    cfg = dict(regressor=regressor, epochs=4, progress=False)
    whole, h_whole = rl.fitted_q_iteration(ds, rl.FittedQConfig(iterations=4, **cfg))
    rl.fitted_q_iteration(ds, rl.FittedQConfig(iterations=2, checkpoint_path=path, **cfg))
    assert path.exists()
    resumed, h_resumed = rl.fitted_q_iteration(
        ds, rl.FittedQConfig(iterations=4, checkpoint_path=path, **cfg), allow_changed=("iterations",)
    )
    assert h_resumed["iteration"] == h_whole["iteration"] == [1, 2, 3, 4]
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
