"""Benchmark: our DQN against Stable-Baselines3's DQN on CartPole-v1, side by side in one run.

Protocol, the same for both, per seed (``seed = 0, 1, ..., n-1``):

- every 1,000 training environment steps, a 100-episode **greedy** (epsilon = 0)
  evaluation with :func:`course_lib.rl.evaluate_greedy` (gymnasium's vectorized
  CartPole, seeded apart from training); *solved* = mean undiscounted return >= 475;
  training stops at the first pass;
- ``steps``: training env steps at the passing evaluation (evaluation steps are not
  counted); ``seconds``: wall time from the start of training to the pass, including
  the evaluations (same evaluation code for both, so it costs both the same);
- a seed not solved within ``--budget`` steps (or cut by ``--max-seconds``) counts as
  unsolved and enters the medians with ``steps = budget`` and its seconds.

Ours: :class:`course_lib.rl.DQNConfig` defaults (exploration over 6,000 steps).
SB3: ``stable_baselines3.DQN`` with the rl-baselines3-zoo hyperparameters for
CartPole-v1 (``hyperparams/dqn.yml``: lr 2.3e-3, batch 64, buffer 100,000,
learning_starts 1,000, gamma 0.99, target_update_interval 10, train_freq 256,
gradient_steps 128, exploration over 0.16 x 50,000 steps to 0.04, net_arch [256, 256]).
SB3 is a benchmark-only optional extra: ``pip install --no-deps stable-baselines3``
(it must not replace torch); without it only ``ours`` runs and the ratio line says so.

Threads: ``--threads`` (default 1) via :func:`course_lib.set_num_threads`, printed.

Profiles: ``small`` (5 seeds, 50,000-step budget) and ``full`` (10 seeds, 100,000);
``--seeds``/``--budget`` override. ``--max-seconds`` caps each algorithm's total
training time (each seed gets what is left), so ``--profile full --max-seconds 5``
finishes anywhere.

Usage::

    python benchmarks/dqn_cartpole.py [--profile small|full] [--seeds 5] [--budget 50000]
        [--max-seconds S] [--threads 1] [--only ours|sb3]

Lines printed: ``threads=<int>``; one ``algo=... seed=...`` line per seed; then per algorithm
``algo=<ours|sb3> solved_median_steps=<int> solved_median_seconds=<float> seeds_solved=<k>/<n>``;
last ``ratio_steps_ours_vs_sb3=<float> ratio_seconds_ours_vs_sb3=<float>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import course_lib  # noqa: E402
from course_lib.rl import DQNConfig, evaluate_greedy, train_dqn  # noqa: E402

PROFILES = {"small": dict(seeds=5, budget=50_000), "full": dict(seeds=10, budget=100_000)}
SOLVED_RETURN = 475.0
EVAL_EVERY = 1_000
EVAL_EPISODES = 100
ZOO = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1_000, gamma=0.99,
           target_update_interval=10, train_freq=256, gradient_steps=128, exploration_final_eps=0.04)
ZOO_EXPLORATION_STEPS = 0.16 * 50_000


def run_ours(seed: int, budget: int, max_seconds: float | None) -> dict:
    base = DQNConfig()
    eps_steps = base.exploration_fraction * base.total_steps  # keep the default schedule in steps
    config = dataclasses.replace(base, seed=seed, total_steps=budget, exploration_fraction=eps_steps / budget,
                                 eval_every=EVAL_EVERY, eval_episodes=EVAL_EPISODES, stop_at_return=SOLVED_RETURN,
                                 max_seconds=max_seconds, progress=False)
    start = time.perf_counter()
    _, history = train_dqn(config)
    seconds = time.perf_counter() - start
    solved = history["stop_reason"] == "solved"
    return {"solved": solved, "steps": history["env_steps"][-1] if solved else budget, "seconds": seconds}


def run_sb3(seed: int, budget: int, max_seconds: float | None) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    class SolvedCallback(BaseCallback):
        def __init__(self):
            super().__init__()
            self.solved_at = None
            self.start = time.perf_counter()

        def _on_step(self) -> bool:
            if max_seconds is not None and time.perf_counter() - self.start >= max_seconds:
                return False
            if self.num_timesteps % EVAL_EVERY:
                return True
            returns = evaluate_greedy(self.model.q_net, "CartPole-v1", EVAL_EPISODES, seed=10_000 + seed)
            if returns.mean() >= SOLVED_RETURN:
                self.solved_at = self.num_timesteps
                return False
            return True

    start = time.perf_counter()
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, device="cpu", verbose=0,
                exploration_fraction=ZOO_EXPLORATION_STEPS / budget, policy_kwargs=dict(net_arch=[256, 256]), **ZOO)
    callback = SolvedCallback()
    model.learn(total_timesteps=budget, callback=callback)
    seconds = time.perf_counter() - start
    solved = callback.solved_at is not None
    return {"solved": solved, "steps": callback.solved_at if solved else budget, "seconds": seconds}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="small")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--budget", type=int)
    parser.add_argument("--max-seconds", type=float)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", choices=("ours", "sb3"))
    args = parser.parse_args(argv)
    prof = PROFILES[args.profile]
    seeds, budget = args.seeds or prof["seeds"], args.budget or prof["budget"]
    course_lib.set_num_threads(args.threads)
    print(f"threads={args.threads}")
    # torch.optim imports torch._dynamo lazily on the first optimizer (seconds): pay it
    # before any timing, so that neither algorithm is charged for it
    import torch
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    print(f"profile={args.profile} seeds={seeds} budget={budget} eval_every={EVAL_EVERY} "
          f"eval_episodes={EVAL_EPISODES} solved_return={SOLVED_RETURN}")
    algos = {"ours": run_ours, "sb3": run_sb3}
    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        print("sb3=not_installed (pip install --no-deps stable-baselines3)")
        algos.pop("sb3")
    if args.only:
        algos = {args.only: algos[args.only]} if args.only in algos else {}
    summary = {}
    for name, fn in algos.items():
        records, spent = [], 0.0
        for seed in range(seeds):
            left = None if args.max_seconds is None else args.max_seconds - spent
            if left is not None and left <= 0:
                break
            course_lib.seed_everything(seed)
            rec = fn(seed, budget, left)
            spent += rec["seconds"]
            records.append(rec)
            print(f"algo={name} seed={seed} solved={rec['solved']} steps={rec['steps']} seconds={rec['seconds']:.2f}",
                  flush=True)
        steps = [r["steps"] for r in records] or [budget]
        secs = [r["seconds"] for r in records] or [float("nan")]
        summary[name] = (statistics.median(steps), statistics.median(secs))
        print(f"algo={name} solved_median_steps={int(statistics.median(steps))} "
              f"solved_median_seconds={statistics.median(secs):.2f} "
              f"seeds_solved={sum(r['solved'] for r in records)}/{seeds}", flush=True)
    if "ours" in summary and "sb3" in summary:
        print(f"ratio_steps_ours_vs_sb3={summary['ours'][0] / summary['sb3'][0]:.3f} "
              f"ratio_seconds_ours_vs_sb3={summary['ours'][1] / summary['sb3'][1]:.3f}")
    else:
        print("ratio_steps_ours_vs_sb3=nan ratio_seconds_ours_vs_sb3=nan (both algorithms needed)")
    return summary


if __name__ == "__main__":
    main()
