"""Benchmark: policy-gradient methods side by side on CartPole-v1 and Acrobot-v1 (Chapter 5).

Algorithms (``--algos``, all by default):

=================  =============================================================
name               what runs
=================  =============================================================
reinforce          Chapter 4's REINFORCE, ``ReinforceConfig()`` defaults
reinforce_b500     the same with ``batch_size=500`` (twice as many, smaller updates)
reinforce_value    REINFORCE with a Monte Carlo value baseline (``baseline="value"``)
a2c                ours: :func:`course_lib.rl.train_actor_critic`, A2C + GAE
ppo                ours: the same trainer with PPO's clipped loss
sb3_a2c            Stable-Baselines3 A2C, rl-baselines3-zoo hyperparameters
sb3_ppo            Stable-Baselines3 PPO, rl-baselines3-zoo hyperparameters
=================  =============================================================

The SB3 rows need the optional ``bench`` extra (``pip install --no-deps
stable-baselines3``: it must not replace the installed torch); without it they
are skipped with a note.

Protocol, the same for every algorithm, per seed ``0..n-1``:

- train; after an update whose recent training episodes (the last 20, or the
  batch for REINFORCE) average at least the threshold, and at least
  ``--eval-gap`` training steps after the previous evaluation, run a
  100-episode evaluation with **sampled** actions (its own seeded RNG and envs);
- solved: the evaluation's mean undiscounted return >= 475 (CartPole-v1) or
  >= -100 (Acrobot-v1);
- ``steps``: training environment steps up to the passing update (evaluation
  steps are not counted); ``seconds``: training wall time up to it, with the
  evaluations' time subtracted;
- a seed that does not pass within the step budget (or its share of
  ``--max-seconds``) is unsolved; once the whole ``--max-seconds`` is spent,
  only seed 0 of each remaining algorithm and environment still runs (so a CI
  smoke run goes through every code path) and the other seeds count as unsolved.

Expected run time of the default (small profile, 5 seeds, all six algorithms,
both environments): about 10-15 minutes on an idle 2-core machine (not measured
idle: the development machine was shared; most of it is SB3 A2C and the
100-episode evaluations, which are excluded from the reported seconds).

Output, one line per algorithm and environment (medians over the *solved* seeds;
``-1`` when none solved)::

    algo=<name> env=<id> solved_median_steps=<int> solved_median_seconds=<float> seeds_solved=<k>/<n>

then ``ratio_steps_ours_a2c_vs_sb3_a2c=<float> ratio_seconds_ours_a2c_vs_sb3_a2c=<float>``
(CartPole-v1; ``nan`` when either did not solve) and a ``target`` line: our best
method on CartPole-v1 against SB3 PPO (the issue asks for <= 0.8x its steps and
<= 0.25x its seconds).

Usage::

    python benchmarks/policy_gradient_cartpole.py --profile small --seeds 5
    python benchmarks/policy_gradient_cartpole.py --profile full --max-seconds 20   # CI smoke run
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import course_lib  # noqa: E402
from course_lib import rl  # noqa: E402

EVAL_EPISODES = 100
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
ALGOS = ("reinforce", "reinforce_b500", "reinforce_value", "a2c", "ppo", "sb3_a2c", "sb3_ppo")
OURS_ALGOS = tuple(a for a in ALGOS if not a.startswith("sb3"))
BUDGETS = {"small": {"CartPole-v1": 100_000, "Acrobot-v1": 100_000},
           "full": {"CartPole-v1": 300_000, "Acrobot-v1": 500_000}}

# Our trainers' settings per environment. Chosen on CartPole-v1, seeds 0-4 (0-9 for
# REINFORCE), under this script's protocol (median steps to solve):
# - REINFORCE: batch_size 500 (23,234 over 10 seeds) beat 1,000 (29,486), 400, 600 and
#   700, and lr 0.04/0.06, gamma 0.995/1 or 6 envs at batch 500;
# - PPO: 10 epochs x 4 minibatches of rollouts of 8 envs x 64 steps, gamma 0.99,
#   lambda 0.9 (19,968); fewer gradient steps per rollout (4-8 epochs, 1-2 minibatches),
#   rollouts of 32 or 128 steps, gamma 0.98 / lambda 0.8, a shared trunk, a 0.01-scaled
#   policy head or reward scaling all needed more steps;
# - A2C: rollouts of 8 steps at lr 0.003 (5/5 solved, 72,448) against the defaults
#   (3/5 within 100,000 steps).
# Acrobot-v1 was not tuned: the same settings, PPO's close to the zoo's (lambda 0.94, 4 epochs).
OURS = {
    "reinforce": {"CartPole-v1": dict(), "Acrobot-v1": dict()},
    "reinforce_b500": {"CartPole-v1": dict(batch_size=500), "Acrobot-v1": dict(batch_size=500)},
    "reinforce_value": {"CartPole-v1": dict(baseline="value"), "Acrobot-v1": dict(baseline="value")},
    "a2c": {"CartPole-v1": dict(n_steps=8, learning_rate=0.003), "Acrobot-v1": dict(n_steps=8, learning_rate=0.003)},
    "ppo": {
        "CartPole-v1": dict(clip_range=0.2, n_epochs=10, num_minibatches=4, n_steps=64, gamma=0.99,
                            gae_lambda=0.9, learning_rate=0.003),
        "Acrobot-v1": dict(clip_range=0.2, n_epochs=4, num_minibatches=4, n_steps=64, gamma=0.99,
                           gae_lambda=0.94, learning_rate=0.003),
    },
}

# rl-baselines3-zoo hyperparameters (hyperparams/a2c.yml and ppo.yml).
ZOO = {
    "sb3_a2c": {
        "CartPole-v1": dict(n_envs=8, kwargs=dict(ent_coef=0.0)),
        "Acrobot-v1": dict(n_envs=16, normalize=True, kwargs=dict(ent_coef=0.0)),
    },
    "sb3_ppo": {
        "CartPole-v1": dict(n_envs=8, kwargs=dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                                                  n_epochs=20, ent_coef=0.0, learning_rate="lin_0.001",
                                                  clip_range="lin_0.2")),
        "Acrobot-v1": dict(n_envs=16, normalize=True, kwargs=dict(n_steps=256, gae_lambda=0.94, gamma=0.99,
                                                                  n_epochs=4, ent_coef=0.0)),
    },
}


class Protocol:
    """The shared solved-check: gate on training returns, 100-episode sampled evaluation, timing."""

    def __init__(self, env_id: str, seed: int, eval_gap: int, max_seconds: float | None):
        self.env_id, self.seed, self.eval_gap, self.max_seconds = env_id, seed, eval_gap, max_seconds
        self.threshold = THRESHOLDS[env_id]
        self.start = time.perf_counter()
        self.eval_seconds = 0.0
        self.last_eval_step = -10**12
        self.solved = False
        self.steps = None
        self.seconds = None
        self.evals = 0

    def train_seconds(self) -> float:
        return time.perf_counter() - self.start - self.eval_seconds

    def check(self, env_steps: int, recent_mean: float, evaluate_fn) -> bool:
        """Return True when training must stop (solved, or out of time)."""
        if self.max_seconds is not None and self.train_seconds() > self.max_seconds:
            return True
        if not (recent_mean >= self.threshold) or env_steps - self.last_eval_step < self.eval_gap:
            return False
        tic = time.perf_counter()
        train_s = tic - self.start - self.eval_seconds
        mean = float(np.mean(evaluate_fn()))
        self.eval_seconds += time.perf_counter() - tic
        self.last_eval_step = env_steps
        self.evals += 1
        if mean >= self.threshold:
            self.solved, self.steps, self.seconds = True, int(env_steps), train_s
            return True
        return False


def _eval_seed(proto: Protocol) -> int:
    return 10_000 + 97 * proto.seed + proto.evals


def run_ours(algo: str, env_id: str, seed: int, budget: int, proto: Protocol) -> None:
    if algo.startswith("reinforce"):
        config = rl.ReinforceConfig(env_id=env_id, seed=seed, total_steps=budget, progress=False, **OURS[algo][env_id])

        def callback(policy, history):
            return proto.check(history["env_steps"][-1], history["mean_return"][-1],
                               lambda: rl.evaluate(policy, env_id, EVAL_EPISODES, seed=_eval_seed(proto)))

        rl.train_reinforce(config, callback=callback)
        return
    config = rl.ActorCriticConfig(env_id=env_id, seed=seed, total_steps=budget, progress=False, **OURS[algo][env_id])

    def callback(policy, history):
        return proto.check(history["env_steps"][-1], history["mean_return"][-1],
                           lambda: rl.evaluate(policy, env_id, EVAL_EPISODES, seed=_eval_seed(proto)))

    rl.train_actor_critic(config, callback=callback)


def _sb3_evaluate(model, env_id: str, seed: int, obs_normalizer=None) -> np.ndarray:
    """100 episodes with sampled actions (``deterministic=False``), vectorized like :func:`rl.evaluate`."""
    envs = rl.make_vec_env(env_id, EVAL_EPISODES)
    try:
        obs, _ = envs.reset(seed=seed)
        model.policy.set_training_mode(False)
        done_once = np.zeros(EVAL_EPISODES, dtype=bool)
        ret = np.zeros(EVAL_EPISODES)
        results = np.zeros(EVAL_EPISODES)
        torch.manual_seed(seed)  # SB3 samples with the global torch RNG
        while not done_once.all():
            o = obs_normalizer(obs) if obs_normalizer is not None else obs
            actions, _ = model.predict(o, deterministic=False)
            obs, reward, terminated, truncated, _ = envs.step(actions)
            ret += reward
            ended = (terminated | truncated) & ~done_once
            results[ended] = ret[ended]
            done_once |= terminated | truncated
            ret[terminated | truncated] = 0.0
    finally:
        envs.close()
    return results


def run_sb3(algo: str, env_id: str, seed: int, budget: int, proto: Protocol) -> None:
    import stable_baselines3 as sb3
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    spec = ZOO[algo][env_id]
    kwargs = dict(spec["kwargs"])
    for key in ("learning_rate", "clip_range"):
        if isinstance(kwargs.get(key), str) and kwargs[key].startswith("lin_"):
            start = float(kwargs[key][4:])
            kwargs[key] = lambda progress, start=start: progress * start  # zoo's linear schedule
    env = sb3_make_vec_env(env_id, n_envs=spec["n_envs"], seed=seed)
    if spec.get("normalize"):
        env = VecNormalize(env, norm_obs=True, norm_reward=False)
    cls = sb3.A2C if algo == "sb3_a2c" else sb3.PPO
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)

    class Check(BaseCallback):
        def _on_step(self) -> bool:
            return True

        def _on_rollout_end(self) -> None:
            infos = list(self.model.ep_info_buffer)[-20:]
            recent = float(np.mean([i["r"] for i in infos])) if infos else -math.inf
            norm = env.normalize_obs if spec.get("normalize") else None
            stop = proto.check(self.model.num_timesteps, recent,
                               lambda: _sb3_evaluate(self.model, env_id, _eval_seed(proto), norm))
            self.model._stop = stop

    class Stopper(Check):
        def _on_step(self) -> bool:
            return not getattr(self.model, "_stop", False)

    model.learn(total_timesteps=budget, callback=Stopper())
    env.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=("small", "full"), default=None, help="default: course_lib.profile()")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--algos", default=",".join(ALGOS), help="comma-separated subset of " + ",".join(ALGOS))
    parser.add_argument("--envs", default="CartPole-v1,Acrobot-v1")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="total time budget; each run gets an equal share of training seconds")
    parser.add_argument("--eval-gap", type=int, default=2_000, help="least training steps between evaluations")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    profile = args.profile or course_lib.profile()
    threads = course_lib.set_num_threads(args.threads)
    algos = [a for a in args.algos.split(",") if a]
    envs = [e for e in args.envs.split(",") if e]
    for a in algos:
        if a not in ALGOS:
            parser.error(f"unknown algo {a!r}; choose from {ALGOS}")
    for e in envs:
        if e not in THRESHOLDS:
            parser.error(f"unknown env {e!r}; choose from {tuple(THRESHOLDS)}")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    try:
        import stable_baselines3  # noqa: F401
        have_sb3 = True
    except ImportError:
        have_sb3 = False
    # torch.optim imports torch._dynamo lazily on the first optimizer (seconds): pay it
    # before any timing, so that no algorithm's first seed is charged for it
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    share = None if args.max_seconds is None else args.max_seconds / (len(algos) * len(envs) * args.seeds)
    print(f"profile={profile} threads={threads} seeds={args.seeds} per_run_seconds={share} "
          f"torch={torch.__version__} sb3={'yes' if have_sb3 else 'no'}", flush=True)

    results = {}
    t0 = time.perf_counter()
    for env_id in envs:
        budget = BUDGETS[profile][env_id]
        for algo in algos:
            if algo.startswith("sb3") and not have_sb3:
                print(f"# {algo} skipped: stable-baselines3 is not installed (pip install --no-deps stable-baselines3)")
                continue
            records = []
            for seed in range(args.seeds):
                proto = Protocol(env_id, seed, args.eval_gap, share)
                if seed > 0 and args.max_seconds is not None and time.perf_counter() - t0 > args.max_seconds:
                    print(f"# algo={algo} env={env_id} seed={seed} not run: --max-seconds spent (counts as unsolved)")
                    records.append(proto)
                    continue
                try:
                    (run_sb3 if algo.startswith("sb3") else run_ours)(algo, env_id, seed, budget, proto)
                except RuntimeError as err:
                    print(f"# {algo} skipped: {err}")
                    break
                records.append(proto)
                print(f"# algo={algo} env={env_id} seed={seed} solved={proto.solved} steps={proto.steps} "
                      f"seconds={proto.seconds if proto.seconds is None else round(proto.seconds, 3)} "
                      f"evals={proto.evals}", flush=True)
            if not records:
                continue
            solved = [p for p in records if p.solved]
            steps = int(statistics.median([p.steps for p in solved])) if solved else -1
            seconds = statistics.median([p.seconds for p in solved]) if solved else -1.0
            results[(algo, env_id)] = (steps, seconds, len(solved), len(records))
            print(f"algo={algo} env={env_id} solved_median_steps={steps} solved_median_seconds={seconds:.3f} "
                  f"seeds_solved={len(solved)}/{len(records)}", flush=True)

    def ratio(a, b, i):
        ra, rb = results.get((a, "CartPole-v1")), results.get((b, "CartPole-v1"))
        if not ra or not rb or ra[2] == 0 or rb[2] == 0:
            return float("nan")
        return ra[i] / rb[i]

    print(f"ratio_steps_ours_a2c_vs_sb3_a2c={ratio('a2c', 'sb3_a2c', 0):.3f} "
          f"ratio_seconds_ours_a2c_vs_sb3_a2c={ratio('a2c', 'sb3_a2c', 1):.3f}")
    # the target: one of our methods (solving most seeds) within 0.8x SB3 PPO's
    # median steps *and* 0.25x its median seconds on CartPole-v1, in this run
    ours = [a for a in OURS_ALGOS
            if results.get((a, "CartPole-v1"), (0, 0, 0, 1))[2] * 2 > results.get((a, "CartPole-v1"), (0, 0, 0, 1))[3]]
    if ours and ("sb3_ppo", "CartPole-v1") in results:
        ratios = {a: (ratio(a, "sb3_ppo", 0), ratio(a, "sb3_ppo", 1)) for a in ours}
        for a, (rs, rt) in ratios.items():
            print(f"algo={a} env=CartPole-v1 ratio_steps_vs_sb3_ppo={rs:.3f} ratio_seconds_vs_sb3_ppo={rt:.3f}")
        meeting = [a for a, (rs, rt) in ratios.items() if rs <= 0.8 and rt <= 0.25]
        # best: the fastest method that meets both; if none does, the one with the fewest steps
        best = min(meeting, key=lambda a: ratios[a][1]) if meeting else min(ours, key=lambda a: ratios[a][0])
        rs, rt = ratios[best]
        print(f"target env=CartPole-v1 best={best} ratio_steps_vs_sb3_ppo={rs:.3f} "
              f"ratio_seconds_vs_sb3_ppo={rt:.3f} met={bool(meeting)}")


if __name__ == "__main__":
    main()
