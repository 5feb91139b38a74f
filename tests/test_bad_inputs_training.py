"""Bad inputs to the training core (course_lib.training), issue 18: a checkpoint_path no
checkpoint can be written to, and checkpoint files that must not be resumed.

Each row checks (i) the exception type and (ii) that the message names the argument
(``checkpoint_path``) or the file. A second table runs every trainer with a
``checkpoint_path`` whose folder cannot be made and checks that the error comes before
the first training step (A2C used to find out after the whole run).
"""

from __future__ import annotations

import dataclasses
import os
import sys

import numpy as np
import pytest
import torch

from course_lib import training
from course_lib.training import CheckpointError, TrainingRun


@dataclasses.dataclass(frozen=True)
class _Cfg:
    steps: int = 3


def _run(path):
    model = torch.nn.Linear(2, 1)
    return TrainingRun(_Cfg(), model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                       checkpoint_path=path, progress=False)


def _under_a_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    return str(tmp_path / "file" / "sub" / "run.pt")


def _read_only_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        probe = folder / "probe"
        probe.write_text("")  # root (or a filesystem that ignores modes) writes anyway
        probe.unlink()
        pytest.skip("this user can write into a 0555 folder (root)")
    except PermissionError:
        pass
    return str(folder / "run.pt")


def _good_checkpoint(tmp_path):
    path = tmp_path / "good.pt"
    run = _run(path)
    state = run.restore({"i": 0})
    with run:
        run.save(state)
    return path


def _flipped(tmp_path):
    path = _good_checkpoint(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    return path


def _format_1(tmp_path):
    """What course_lib wrote before checksums: a plain torch.save of the state, format 1."""
    path = tmp_path / "old.pt"
    torch.save({"course_lib_checkpoint": 1, "model": {"w": torch.ones(2)}, "step": 3}, path)
    return path


def _trailer_cut(tmp_path):
    path = _good_checkpoint(tmp_path)
    path.write_bytes(path.read_bytes()[: -training._TRAILER_LEN])
    return path


PATHS = [
    ("checkpoint_path is a folder", lambda tmp: str(tmp), "checkpoint_path"),
    ("checkpoint_path under a file", _under_a_file, "checkpoint_path"),
    ("checkpoint_path in a read-only folder", _read_only_folder, "checkpoint_path"),
    pytest.param("checkpoint_path in /proc", lambda tmp: "/proc/run.pt", "checkpoint_path",
                 marks=pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")),
]


@pytest.mark.parametrize("case, make_path, name", PATHS, ids=lambda v: v if isinstance(v, str) else "")
def test_unwritable_checkpoint_path_is_refused_when_the_run_is_made(tmp_path, case, make_path, name):
    path = make_path(tmp_path)
    with pytest.raises(CheckpointError) as info:
        _run(path)
    assert name in str(info.value) and repr(path) in str(info.value), str(info.value)


def test_a_missing_folder_is_created_and_nothing_is_left_in_it(tmp_path):
    path = tmp_path / "new" / "deeper" / "run.pt"
    _run(path)
    assert path.parent.is_dir() and list(path.parent.iterdir()) == []


FILES = [
    ("a changed byte", _flipped, "corrupted"),
    ("format 1 (before checksums)", _format_1, "predates checkpoint checksums"),
    ("the checksum trailer cut off", _trailer_cut, "checksum trailer is missing"),
]


@pytest.mark.parametrize("case, make_file, what", FILES, ids=[row[0] for row in FILES])
def test_checkpoint_files_that_are_refused_name_the_path(tmp_path, case, make_file, what):
    path = make_file(tmp_path)
    with pytest.raises(CheckpointError) as info:
        training.load_checkpoint(path)
    assert str(path) in str(info.value) and what in str(info.value), str(info.value)
    run = TrainingRun(_Cfg(), model=torch.nn.Linear(2, 1), checkpoint_path=path, progress=False)
    with pytest.raises(CheckpointError) as info:  # resume refuses it too
        run.restore({"i": 0})
    assert what in str(info.value)


# --------------------------------------------------------------------------------------
# Every trainer checks checkpoint_path before its first step
# --------------------------------------------------------------------------------------
def _flows(path):
    from course_lib import flows

    model = flows.NICE(4, num_coupling=2, hidden_dim=8, num_hidden=1)
    return flows.train(model, torch.rand(16, 4), flows.TrainConfig(epochs=1, batch_size=8, progress=False,
                                                                   checkpoint_path=path))


def _pixelcnn(path):
    from course_lib import autoregressive

    model = autoregressive.PixelCNN(1, 4, 1, 3, 3)
    images = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8)
    return autoregressive.train(model, images, autoregressive.TrainConfig(epochs=1, batch_size=4, progress=False,
                                                                          checkpoint_path=path))


def _vae(path):
    from course_lib import vae

    images = torch.randint(0, 256, (8, 16), dtype=torch.uint8)
    return vae.train_vae(vae.VAE(16, 2, (8,)), images, vae.VAEConfig(epochs=1, batch_size=4, progress=False,
                                                                     checkpoint_path=path))


def _rl(name):
    def call(path):
        from course_lib import rl

        small = dict(progress=False, checkpoint_path=path)
        if name == "reinforce":
            return rl.train_reinforce(rl.ReinforceConfig(num_envs=2, batch_size=50, total_steps=200, **small))
        if name == "es":
            return rl.train_es(rl.ESConfig(num_pairs=2, total_steps=2_000, **small))
        if name == "a2c":
            return rl.train_actor_critic(rl.ActorCriticConfig(num_envs=2, n_steps=8, total_steps=64, **small))
        if name == "dqn":
            return rl.train_dqn(rl.DQNConfig(total_steps=200, learning_starts=50, buffer_size=100, batch_size=16, **small))
        if name == "q_learning":
            return rl.q_learning("FrozenLake-v1", rl.TabularQConfig(total_steps=200, eval_every=100, **small))
        rng = np.random.default_rng(0)
        ds = {"obs": rng.normal(size=(20, 3)), "next_obs": rng.normal(size=(20, 3)), "actions": rng.integers(0, 2, 20),
              "rewards": rng.normal(size=20), "terminated": rng.random(20) < 0.1}
        return rl.fitted_q_iteration(ds, rl.FittedQConfig(regressor="linear", iterations=2, epochs=2, **small))

    return call


TRAINERS = [("flows", _flows), ("pixelcnn", _pixelcnn), ("vae", _vae)] + [
    (name, _rl(name)) for name in ("reinforce", "es", "a2c", "dqn", "q_learning", "fqi")
]


@pytest.mark.parametrize("trainer, call", TRAINERS, ids=[row[0] for row in TRAINERS])
def test_every_trainer_refuses_an_unwritable_checkpoint_path_before_training(tmp_path, monkeypatch, trainer, call):
    def no_step(self, *args, **kwargs):
        raise AssertionError(f"{trainer} took a training step before checking checkpoint_path")

    monkeypatch.setattr(TrainingRun, "end_step", no_step)
    monkeypatch.setattr(TrainingRun, "optimize", no_step)
    path = _under_a_file(tmp_path)
    with pytest.raises(CheckpointError) as info:
        call(path)
    assert "checkpoint_path" in str(info.value) and repr(path) in str(info.value), str(info.value)
    assert os.path.isfile(tmp_path / "file")
