"""No lost work (issue 18): a trainer killed with SIGKILL resumes to the uninterrupted result,
bit for bit, and a damaged checkpoint is refused.

**Kill test.** The A2C, DQN, VAE and PixelCNN trainers run tiny configs with a
checkpoint in child processes (this file is also the child's script):

1. one process runs each trainer uninterrupted and records, for every checkpoint
   it writes, how many optimizer steps came before it;
2. each trainer starts the same run in a child forked from one process (one import
   for all) and is SIGKILLed at a seeded random
   optimizer step strictly after its first checkpoint and before its last. The kill
   is either *mid-update* (right after an optimizer step, between two checkpoints)
   or *mid-save* (inside the next checkpoint write, half of the temp file written:
   the case that leaves an orphan ``.ckpt-*.tmp``). The child sends the SIGKILL to
   itself at that step, so where a kill lands is reproducible on a loaded machine
   as well as an idle one (a timer would land at a different step on each), and it
   is as abrupt as an external one: no handler, ``finally`` or ``atexit`` runs;
3. a new process resumes each run from its checkpoint to the end.

The resumed weights and histories must equal the uninterrupted ones bit for bit
(every history entry except wall-clock ones), and the orphan temp file of a
mid-save kill must be gone after the resume.

**Corruption test.** One byte changed at 20 seeded positions of a training
checkpoint (the zip header, the tensors, the pickled state, the checksum trailer):
every one is refused with a :class:`CheckpointError` naming the path.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys

import pytest
import torch

from course_lib import training

TRAINERS = ("a2c", "dqn", "vae", "pixelcnn")
KILL_KINDS = {"a2c": "update", "dqn": "save", "vae": "save", "pixelcnn": "update"}
KILL_SEED = 18  # the kill points are drawn from random.Random(KILL_SEED): the test is reproducible
WALL_CLOCK = {"wall_time", "seconds", "train_seconds"}  # history entries that measure time, not training


# --------------------------------------------------------------------------------------
# The child: python tests/test_kill_resume.py run (<trainer> <checkpoint> <out>)...
#            python tests/test_kill_resume.py kill (<trainer> <checkpoint> <out> <kill step> <kill kind>)...
# --------------------------------------------------------------------------------------
def _digits(n: int):
    from course_lib import data

    images, _ = data.load_mnist("train", source="embedded")
    return torch.as_tensor(images[:n])  # (n, 28, 28) uint8, interleaved by class


def _run_trainer(name: str, checkpoint: str):
    """Train ``name`` (a tiny config, a few seconds) with a checkpoint; return ``(state dicts, history)``."""
    from course_lib import autoregressive, rl, vae

    if name == "a2c":
        cfg = rl.ActorCriticConfig(num_envs=2, n_steps=16, total_steps=2 * 16 * 30, hidden_sizes=(16,), seed=3,
                                   checkpoint_every=2, checkpoint_fractions=(0.0, 0.5, 1.0), progress=False,
                                   checkpoint_path=checkpoint)
        policy, value, history = rl.train_actor_critic(cfg)
        return {"policy": policy.state_dict(), "value": value.state_dict()}, history
    if name == "dqn":
        cfg = rl.DQNConfig(total_steps=1_000, learning_starts=200, buffer_size=600, batch_size=16, train_frequency=20,
                           gradient_steps=2, target_update_interval=60, hidden_sizes=(16,), log_every=100,
                           checkpoint_every=100, seed=1, progress=False, checkpoint_path=checkpoint)
        q, history = rl.train_dqn(cfg)
        return {"q": q.state_dict()}, history
    if name == "vae":
        torch.manual_seed(0)
        model = vae.VAE(784, latent_dim=2, hidden_dims=(16,))
        cfg = vae.VAEConfig(epochs=12, batch_size=16, lr=3e-3, seed=2, progress=False, checkpoint_path=checkpoint)
        model, history = vae.train_vae(model, _digits(48).reshape(48, 784), cfg)
        return {"vae": model.state_dict()}, history
    if name == "pixelcnn":
        torch.manual_seed(0)
        model = autoregressive.PixelCNN(in_channels=1, hidden_channels=4, num_layers=1, kernel_size=3,
                                        first_kernel_size=3)
        cfg = autoregressive.TrainConfig(epochs=10, batch_size=8, lr=3e-3, seed=2, progress=False,
                                         checkpoint_path=checkpoint)
        model, history = autoregressive.train(model, _digits(16)[:, None, 6:20, 6:20], cfg)
        return {"pixelcnn": model.state_dict()}, history
    raise ValueError(f"unknown trainer {name!r}")


def _child(name: str, checkpoint: str, out: str, kill_at: int | None = None, kind: str | None = None) -> None:
    torch.set_num_threads(1)
    count = {"optimize": 0, "saves": []}
    optimize, save_checkpoint, torch_save = training.TrainingRun.optimize, training.save_checkpoint, torch.save

    def counting_optimize(self, *args, **kwargs):
        value = optimize(self, *args, **kwargs)
        count["optimize"] += 1
        if kind == "update" and count["optimize"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # mid-update: the optimizer moved, no boundary yet
        return value

    def recording_save(path, state):
        count["saves"].append(count["optimize"])
        return save_checkpoint(path, state)

    def half_save(obj, f):  # mid-save: half the archive is in the temp file when the kill comes
        if kind == "save" and count["optimize"] >= kill_at:
            import io

            buffer = io.BytesIO()
            torch_save(obj, buffer)
            f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return torch_save(obj, f)

    training.TrainingRun.optimize = counting_optimize
    training.save_checkpoint = recording_save
    torch.save = half_save
    try:
        states, history = _run_trainer(name, checkpoint)
    finally:
        training.TrainingRun.optimize, training.save_checkpoint, torch.save = optimize, save_checkpoint, torch_save
    torch.save({"states": states, "history": history, "optimize_steps": count["optimize"], "saves": count["saves"]}, out)


def _kill_runs(runs: list[list[str]]) -> None:
    """Each run in a child forked from this process (the imports are paid once, not per run),
    one after the other; print each child's exit status (-9: SIGKILL)."""
    import importlib
    import traceback

    for module in ("autoregressive", "data", "rl", "vae"):  # imported once, before the forks
        importlib.import_module(f"course_lib.{module}")

    for name, checkpoint, out, kill_at, kind in runs:
        pid = os.fork()
        if pid == 0:
            try:
                _child(name, checkpoint, out, int(kill_at), kind)
            except BaseException:
                traceback.print_exc()
                sys.stdout.flush(), sys.stderr.flush()
                os._exit(1)
            os._exit(0)  # not reached when the kill landed
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {name} {code}", flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "run":  # run: (trainer checkpoint out)... one after the other, uninterrupted or resumed
        for i in range(0, len(args), 3):
            _child(*args[i : i + 3])
    else:  # kill: (trainer checkpoint out step kind)... each SIGKILLed
        _kill_runs([args[i : i + 5] for i in range(0, len(args), 5)])
    sys.exit(0)


# --------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------
def _env():
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, OMP_NUM_THREADS="1", COURSE_NUM_THREADS="1", MPLBACKEND="Agg", COURSE_PROFILE="small")
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(here), env.get("PYTHONPATH", "")])
    return env


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(proc: subprocess.Popen, what: str) -> str:
    output, _ = proc.communicate(timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"{what} failed (exit {proc.returncode}):\n{output[-3000:]}")
    return output


def _load(path):
    return torch.load(path, weights_only=True)


def _assert_same(a, b, where: str) -> None:
    """Bit-identical: tensors with torch.equal, floats with NaN equal to NaN, containers recursively."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            if key not in WALL_CLOCK:
                _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), f"{where}: nan != {b!r}"
    else:
        assert a == b and type(a) is type(b), f"{where}: {a!r} != {b!r}"


def _temp_files(folder) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.startswith(".ckpt-") and n.endswith(".tmp"))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="SIGKILL and fork are POSIX")
def test_sigkill_then_resume_is_bit_identical_for_every_trainer(tmp_path):
    ref_dir, run_dir = tmp_path / "reference", tmp_path / "killed"
    ref_dir.mkdir(), run_dir.mkdir()
    reference = _start("run", *[a for t in TRAINERS for a in (t, str(ref_dir / f"{t}.pt"), str(ref_dir / f"{t}.out"))])
    _finish(reference, "the uninterrupted runs")
    ref = {t: _load(ref_dir / f"{t}.out") for t in TRAINERS}

    rng = random.Random(KILL_SEED)
    plan = {}
    for t in TRAINERS:
        saves = ref[t]["saves"]  # optimizer steps before each checkpoint write; the last is the final one
        assert len(saves) >= 3, f"{t}: too few checkpoints for a mid-run kill: {saves}"
        if KILL_KINDS[t] == "update":  # after the first checkpoint is on disk, before the last
            plan[t] = (rng.randint(saves[0] + 1, saves[-1] - 1), "update")
        else:  # inside a write that is not the first (one checkpoint on disk) nor the final one
            plan[t] = (rng.randint(saves[0] + 1, saves[-2]), "save")
    killed = _start("kill", *[a for t, (step, kind) in plan.items()
                              for a in (t, str(run_dir / f"{t}.pt"), str(run_dir / f"{t}.out"), str(step), kind)])
    output = _finish(killed, "the runs to kill")
    landed = {}
    for t in TRAINERS:
        assert f"exit {t} {-signal.SIGKILL}" in output.splitlines(), f"{t}: not killed:\n{output[-3000:]}"
        assert not (run_dir / f"{t}.out").exists()
        on_disk = training.load_checkpoint(run_dir / f"{t}.pt")["step"]  # the last checkpoint before the kill: intact
        final = training.load_checkpoint(ref_dir / f"{t}.pt")["step"]
        assert 0 < on_disk < final, f"{t}: the kill did not land mid-run (checkpoint at step {on_disk} of {final})"
        step, kind = plan[t]
        total = ref[t]["optimize_steps"]
        at = step if kind == "update" else next(c for c in ref[t]["saves"] if c >= step)  # the write it hit
        where = "right after optimizer step" if kind == "update" else "inside the checkpoint write after optimizer step"
        landed[t] = f"SIGKILL {where} {at}/{total} ({at / total:.0%}); on disk: the checkpoint of run step {on_disk}/{final}"
        orphans = [n for n in _temp_files(run_dir) if f".ckpt-{t}.pt." in n]
        assert bool(orphans) == (kind == "save"), f"{t}: temp files after a {kind} kill: {orphans}"

    resumed = _start("run", *[a for t in TRAINERS for a in (t, str(run_dir / f"{t}.pt"), str(run_dir / f"{t}.out"))])
    _finish(resumed, "the resumed runs")
    print("\nkills:", *(f"  {t}: {text}" for t, text in landed.items()), sep="\n")
    for t in TRAINERS:
        out = _load(run_dir / f"{t}.out")
        _assert_same(ref[t]["states"], out["states"], f"{t} weights")
        _assert_same(ref[t]["history"], out["history"], f"{t} history")
        assert out["history"]["stop_reason"] == "completed"
    assert _temp_files(run_dir) == [], "the resumed runs' saves remove the orphan temp files of the killed ones"


# --------------------------------------------------------------------------------------
# Corruption
# --------------------------------------------------------------------------------------
def test_every_changed_byte_of_a_training_checkpoint_is_refused(tmp_path):
    from course_lib import rl

    path = tmp_path / "a2c.pt"
    cfg = rl.ActorCriticConfig(num_envs=2, n_steps=8, total_steps=2 * 8 * 3, hidden_sizes=(8,), progress=False,
                               checkpoint_path=str(path))
    rl.train_actor_critic(cfg)
    good = path.read_bytes()
    assert training.load_checkpoint(path)["step"] == 3
    rng = random.Random(KILL_SEED)
    n = len(good)
    trailer = n - training._TRAILER_LEN
    positions = [0, 3, n - 1, trailer, trailer + len(training._TRAILER_MAGIC) + 5]  # header, trailer, digest
    positions += rng.sample(range(4, trailer), 15)  # anywhere in the torch archive: tensors, pickle, zip records
    refused = []
    for pos in positions:
        bad = bytearray(good)
        bad[pos] ^= rng.randrange(1, 256)  # a different byte
        path.write_bytes(bytes(bad))
        with pytest.raises(training.CheckpointError) as info:
            training.load_checkpoint(path)
        assert str(path) in str(info.value), str(info.value)
        refused.append(pos)
    assert len(refused) == 20
    path.write_bytes(good)
    assert training.load_checkpoint(path)["step"] == 3


def test_a_corrupted_checkpoint_is_not_resumed(tmp_path):
    """The trainer refuses it before any step (today's code resumed from a weight off by 0.0625)."""
    from course_lib import rl

    path = tmp_path / "a2c.pt"
    cfg = rl.ActorCriticConfig(num_envs=2, n_steps=8, total_steps=2 * 8 * 4, hidden_sizes=(8,), progress=False,
                               checkpoint_path=str(path))
    _, _, history = rl.train_actor_critic(cfg, callback=lambda policy, history: len(history["env_steps"]) == 2)
    assert history["stop_reason"] == "callback"
    raw = bytearray(path.read_bytes())
    saved = training.load_checkpoint(path)
    weight = saved["model"]["policy.net.0.weight"]
    needle = weight.numpy().tobytes()[:16]
    at = bytes(raw).find(needle)
    assert at > 0
    raw[at + 2] ^= 0x01  # one bit of one float32 weight
    path.write_bytes(bytes(raw))
    with pytest.raises(training.CheckpointError, match="is corrupted: its SHA-256 checksum does not match") as info:
        rl.train_actor_critic(cfg)
    assert str(path) in str(info.value)
