"""The training core (course_lib.training) and the flows trainer that goes through it.

Resume equivalence: a run interrupted at a random step (an exception after the
batch's noise was drawn, Ctrl-C, the time budget) and resumed from its checkpoint
ends bit-for-bit where the uninterrupted run ends. Checkpoint files: atomic,
mode 0644, refused with a message naming the path when empty, truncated or
foreign, and refused when written under another config. The divergence guard
names the step, the quantity and the likely cause.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from course_lib import data, flows, training
from course_lib.training import CheckpointError, TrainingDiverged, TrainingRun

D, N = 8, 40  # a tiny NICE on 8 "pixels": 40 images, batches of 16 -> 3 steps per epoch
EPOCHS, BATCH = 3, 16
STEPS = EPOCHS * math.ceil(N / BATCH)


def _pixels(seed=0):
    return torch.randint(0, 256, (N, D), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def _model():
    torch.manual_seed(0)
    model = flows.NICE(D, num_coupling=2, hidden_dim=16, num_hidden=1)
    model.init_from_data(data.dequantize(_pixels(1)))
    return model


def _config(**kw):
    kw = {"epochs": EPOCHS, "batch_size": BATCH, "lr": 1e-2, "seed": 5, "progress": False, **kw}
    return flows.TrainConfig(**kw)


TEST = data.dequantize(_pixels(2), torch.Generator().manual_seed(0))


def _train(config, transform=data.dequantize):
    return flows.train(_model(), _pixels(), config, test_data=TEST, transform=transform)


def _same_run(a, b):
    (model_a, hist_a), (model_b, hist_b) = a, b
    for (name, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(p, q), f"{name} differs after resume"
    for key in flows.HISTORY_KEYS:
        if key != "seconds":
            assert hist_a[key] == hist_b[key], key


@pytest.fixture(scope="module")
def straight():
    return _train(_config())


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stop_at=st.integers(1, STEPS), how=st.sampled_from(["exception", "ctrl-c"]))
def test_flows_resume_is_bit_identical(tmp_path_factory, straight, stop_at, how):
    """Interrupt inside step ``stop_at`` (after the noise of its batch was drawn), resume, compare."""
    path = str(tmp_path_factory.mktemp("ckpt") / "run.pt")
    calls = []

    def interrupting(batch, generator):
        out = data.dequantize(batch, generator)  # the generator moves before the interruption
        calls.append(1)
        if len(calls) == stop_at:
            if how == "exception":
                raise RuntimeError("boom")
            signal.raise_signal(signal.SIGINT)  # Ctrl-C: the run stops at the end of this step
        return out

    if how == "exception":
        with pytest.raises(RuntimeError, match="boom") as info:
            _train(_config(checkpoint_path=path), transform=interrupting)
        assert len(info.value.history["epoch"]) == (stop_at - 1) // 3  # the partial history comes with the error
        assert any("checkpoint" in note for note in info.value.__notes__)
    else:
        _, hist = _train(_config(checkpoint_path=path), transform=interrupting)
        assert hist["stop_reason"] == "interrupted"
        assert hist["epoch_complete"][-1] == (stop_at % 3 == 0)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o666 & ~_umask())
    _same_run(straight, _train(_config(checkpoint_path=path)))


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_time_budget_cuts_epochs_and_resumes_step_by_step(tmp_path, straight):
    path = str(tmp_path / "run.pt")
    _, hist = _train(_config(checkpoint_path=path, max_seconds=1e-9))
    assert hist["stop_reason"] == "time_budget" and hist["epoch_complete"] == [False] and hist["step"] == [1]
    for _ in range(STEPS):  # each resume trains one step: the budget is spent
        result = _train(_config(checkpoint_path=path, max_seconds=1e-9))
        if result[1]["stop_reason"] == "completed":
            break
    assert result[1]["epoch"] == [1, 2, 3] and all(result[1]["epoch_complete"])
    _same_run(straight, result)


def test_extending_epochs_resumes_and_other_changes_are_refused(tmp_path, straight):
    path = str(tmp_path / "run.pt")
    _train(_config(epochs=1, checkpoint_path=path))
    _same_run(straight, _train(_config(checkpoint_path=path)))  # epochs may grow
    with pytest.raises(CheckpointError) as info:
        _train(_config(checkpoint_path=path, batch_size=8, seed=6))
    msg = str(info.value)
    assert path in msg and "batch_size: 16 -> 8" in msg and "seed: 5 -> 6" in msg and "lr" not in msg


def test_divergence_names_step_quantity_and_cause(tmp_path):
    path = str(tmp_path / "run.pt")
    _train(_config(epochs=1, checkpoint_path=path))  # one good epoch on disk
    with pytest.raises(TrainingDiverged) as info:
        _train(_config(lr=1e30, checkpoint_path=path))
    err = info.value
    assert err.step >= 0 and "learning rate" in err.cause and f"step {err.step}" in str(err)
    assert err.quantity in ("loss", "gradient") or err.quantity.startswith("parameter")
    saved = training.load_checkpoint(path)  # the last finite state is on disk
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    _, hist = _train(_config(lr=1e-3, checkpoint_path=path))  # resume it with a lower learning rate
    assert hist["stop_reason"] == "completed" and math.isfinite(hist["test_log_likelihood"][-1])


def test_nan_from_the_data_is_reported_as_data_not_as_learning_rate():
    def nan_noise(batch, generator):
        return data.dequantize(batch, generator) * float("nan")

    with pytest.raises(TrainingDiverged, match=r"step 0: the loss is not finite") as info:
        _train(_config(), transform=nan_noise)
    assert "input batch contains NaN" in info.value.cause and "learning rate" not in info.value.cause


def test_nan_initialisation_is_reported_as_initialisation():
    model = _model()
    with torch.no_grad():
        model.layers[0].shift_net[0].weight[0, 0] = float("nan")
    with pytest.raises(TrainingDiverged) as info:
        flows.train(model, _pixels(), _config(), transform=data.dequantize)
    assert info.value.step == 0 and "initial" in info.value.cause and "learning rate" not in info.value.cause


# ----------------------------------------------------------------------------
# Checkpoint files
# ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Cfg:
    steps: int = 6
    lr: float = 0.1


@pytest.fixture()
def good_checkpoint(tmp_path):
    path = tmp_path / "good.pt"
    model = torch.nn.Linear(2, 1)
    run = TrainingRun(_Cfg(), model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                      checkpoint_path=path, progress=False)
    run.restore({"i": 0})
    with run:
        run.save({"i": 0})
    return path


def _bad_files(tmp_path, good):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint")
    pickled = tmp_path / "pickled.pt"
    torch.save({"config": _Cfg()}, pickled)  # a Python object: weights_only refuses it
    tensors = tmp_path / "tensors.pt"
    torch.save({"weight": torch.ones(2)}, tensors)  # a torch file, not ours
    return {"empty": (empty, "empty"), "truncated": (truncated, "truncated"), "text": (text, "not a torch"),
            "pickled": (pickled, "Python objects"), "tensors": (tensors, "not a course_lib")}


@pytest.mark.parametrize("kind", ["empty", "truncated", "text", "pickled", "tensors", "missing", "directory"])
def test_bad_checkpoint_files_name_the_path_and_the_problem(tmp_path, good_checkpoint, kind):
    files = _bad_files(tmp_path, good_checkpoint)
    files["missing"] = (tmp_path / "missing.pt", "does not exist")
    files["directory"] = (tmp_path, "directory")
    path, what = files[kind]
    with pytest.raises(CheckpointError) as info:
        training.load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and what in msg
    assert "weights_only=False" not in msg and "weights_only = False" not in msg


def test_a_bad_checkpoint_stops_train_before_any_step(tmp_path):
    path = tmp_path / "run.pt"
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="run.pt"):
        _train(_config(checkpoint_path=str(path)))


def test_save_is_atomic_with_the_normal_mode(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        path = tmp_path / "c.pt"
        training.save_checkpoint(path, {"x": torch.ones(3)})
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
        original = path.read_bytes()

        def failing_save(obj, f):
            f.write(b"half")
            raise OSError("disk full")

        monkeypatch.setattr(torch, "save", failing_save)
        with pytest.raises(OSError, match="disk full"):
            training.save_checkpoint(path, {"x": torch.zeros(3)})
        assert path.read_bytes() == original and sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    finally:
        os.umask(old)


def test_rng_state_round_trip_covers_every_generator():
    g, n = torch.Generator().manual_seed(1), np.random.default_rng(2)
    state = training.rng_state({"g": g, "n": n})
    first = (torch.rand(2), np.random.rand(), torch.rand(2, generator=g), n.normal())
    training.set_rng_state(state, {"g": g, "n": n})
    again = (torch.rand(2), np.random.rand(), torch.rand(2, generator=g), n.normal())
    assert torch.equal(first[0], again[0]) and first[1] == again[1]
    assert torch.equal(first[2], again[2]) and first[3] == again[3]
    with pytest.raises(CheckpointError, match="'h'"):
        training.set_rng_state(state, {"h": g})


def test_config_diff_lists_fields_and_skips_safe_ones():
    lines = training.config_diff({"lr": 0.1, "epochs": 2, "max_seconds": 1}, {"lr": 0.2, "epochs": 2, "max_seconds": 9})
    assert lines == ["lr: 0.1 -> 0.2"]
    assert training.config_diff({"lr": 0.1}, {"lr": 0.2}, allow_changed=("lr",)) == []


# ----------------------------------------------------------------------------
# The guarded step: gradient clipping and the gradient check
# ----------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_clip_grad_norm_matches_torch(scale):
    torch.manual_seed(0)

    def params_with_grads(dtypes):
        out = []
        for shape, dtype in zip([(5, 3), (7,)], dtypes):
            p = torch.nn.Parameter(torch.zeros(shape, dtype=dtype))
            p.grad = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(p.numel())) * scale
            out.append(p)
        return out

    for dtypes in ([torch.float32, torch.float32], [torch.float64, torch.float32]):  # foreach path; torch's own
        ours, reference = params_with_grads(dtypes), params_with_grads(dtypes)
        expected = float(torch.nn.utils.clip_grad_norm_(reference, 0.5))
        assert training._clip_grad_norm(ours, 0.5) == expected
        assert all(torch.equal(p.grad, q.grad) for p, q in zip(ours, reference))  # the same scaled gradients
        assert (expected > 0.5) == any(not torch.equal(p.grad, q.grad) for p, q in zip(ours, params_with_grads(dtypes)))


@pytest.mark.parametrize("clip", [None, 1.0])
def test_non_finite_gradient_of_a_finite_loss_is_reported(clip):
    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.zero_()
    run = TrainingRun(_Cfg(), model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), progress=False)
    loss = model.weight.abs().sqrt().sum()  # 0 at w = 0, but d sqrt|w| / dw is NaN there
    with pytest.raises(TrainingDiverged) as info:
        run.optimize(loss, clip_grad_norm=clip)
    assert info.value.quantity == "gradient"
    assert torch.all(model.weight == 0)  # the step was refused


# ----------------------------------------------------------------------------
# Issue 18: the checksum, orphan temp files
# ----------------------------------------------------------------------------
def test_the_file_is_a_torch_archive_then_the_sha256_of_it(tmp_path):
    import hashlib

    path = tmp_path / "c.pt"
    training.save_checkpoint(path, {"x": torch.arange(5.0), "n": 3})
    raw = path.read_bytes()
    archive, trailer = raw[: -training._TRAILER_LEN], raw[-training._TRAILER_LEN:]
    assert trailer == training._TRAILER_MAGIC + hashlib.sha256(archive).hexdigest().encode()
    plain = torch.load(path, weights_only=True)  # still an ordinary torch file (zip readers skip the trailer)
    assert torch.equal(plain["x"], torch.arange(5.0)) and training.load_checkpoint(path)["n"] == 3


def _holding_lock(path):
    """Another process that holds the flock of ``path`` (a live writer) until killed."""
    import subprocess
    import sys

    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.skipif(os.name == "nt", reason="the live-writer lock is POSIX flock")
def test_a_save_removes_stale_temp_files_of_its_checkpoint_and_nothing_else(tmp_path):
    ckpt = tmp_path / "run.pt"
    old = time.time() - 3600

    def make(name, age=None):
        (tmp_path / name).write_bytes(b"half a checkpoint")
        if age is not None:
            os.utime(tmp_path / name, (age, age))
        return name

    stale = [make(".ckpt-run.pt.abcd1234.tmp"), make(".ckpt-run.pt.zz_9zz_9.tmp")]  # killed writers of run.pt
    old_style = make(".ckpt-k3j2h1g0.tmp", age=old)  # course_lib before checksums, an hour old
    keep = [make(".ckpt-other.pt.abcd1234.tmp"),  # another checkpoint's
            make(".ckpt-run.pt.bak.abcd1234.tmp"),  # run.pt.bak's, not run.pt's
            make(".ckpt-y7x6w5v4.tmp"),  # old style but recent: its writer may be alive
            make("notes.tmp")]
    live = make(".ckpt-run.pt.live0000.tmp")
    writer = _holding_lock(tmp_path / live)  # a concurrent writer of the same checkpoint, alive
    try:
        training.save_checkpoint(ckpt, {"x": torch.ones(2)})
        names = set(os.listdir(tmp_path))
        assert not names & {*stale, old_style} and names >= {*keep, live, "run.pt"}
    finally:
        writer.kill()
        writer.wait()
    training.save_checkpoint(ckpt, {"x": torch.zeros(2)})  # its writer is dead now: stale
    assert sorted(os.listdir(tmp_path)) == sorted([*keep, "run.pt"])
    assert torch.equal(training.load_checkpoint(ckpt)["x"], torch.zeros(2))


def test_a_writer_keeps_its_lock_until_the_rename(tmp_path, monkeypatch):
    """While torch.save writes, another save's cleanup must not take the temp file."""
    path = tmp_path / "run.pt"
    seen = []
    real_save = torch.save

    def save_and_clean(obj, f):
        real_save(obj, f)
        seen.append(sorted(os.listdir(tmp_path)))
        seen.append(training._remove_stale_temp_files(str(path)))  # what a concurrent saver would remove

    monkeypatch.setattr(torch, "save", save_and_clean)
    training.save_checkpoint(path, {"x": torch.ones(2)})
    assert len(seen[0]) == 1 and seen[0][0].startswith(".ckpt-run.pt.") and seen[1] == []
    assert os.listdir(tmp_path) == ["run.pt"]
