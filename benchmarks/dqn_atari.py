"""Benchmark: DQN on Atari Pong and Breakout (Nature DQN network, the gymnasium/ale-py pipeline).

Per game: :func:`course_lib.rl.train_dqn` with ``env_id="ALE/<Game>-v5"``
(:func:`course_lib.rl.make_atari_env`: no-op starts, frame skip 4 with max-pooling,
84x84 grayscale, 4 stacked frames, sticky actions 0.25, no life-loss episode ends),
then a greedy evaluation (epsilon = 0.01 as in Mnih et al. 2015, ``--eval-episodes``
episodes) of the final network.

Profiles:

- ``small`` (CPU, proves the pipeline runs end to end): Pong only, 3,000 env steps,
  buffer 3,000, learning starts at 1,000. The return stays at the random level (-21).
- ``full`` (one GPU): Pong and Breakout, 2,000,000 env steps each (8M frames),
  Nature hyperparameters with the faster schedule of the DQN "zoo" settings: lr 1e-4,
  batch 32, buffer 100,000, learning starts 50,000 (Pong: 20,000), train every 4 steps,
  target update every 1,000 steps, epsilon 1 -> 0.01 over 10 % of training, Huber loss.
  Expected (not measured on this machine): a few hours of GPU time per game, the
  environment stepping on one CPU core dominating; Pong reaches about +20.

``--max-seconds`` caps each game's training (CI runs ``--profile full --max-seconds 5``
on a CPU: a few hundred steps, nothing learned, every code path exercised).

Usage::

    python benchmarks/dqn_atari.py [--profile small|full] [--games Pong Breakout]
        [--max-seconds S] [--threads 1] [--eval-episodes 3]

Lines printed: ``threads=<int>``; one
``game=<id> env_steps=<int> gradient_steps=<int> seconds=<float> eval_return_mean=<float> stop_reason=<str>``
per game.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import course_lib  # noqa: E402
from course_lib.rl import DQNConfig, evaluate_greedy, train_dqn  # noqa: E402

FULL = dict(total_steps=2_000_000, buffer_size=100_000, learning_starts=50_000, batch_size=32, train_frequency=4,
            gradient_steps=1, target_update_interval=1_000, learning_rate=1e-4, epsilon_end=0.01,
            exploration_fraction=0.1, gamma=0.99, loss="huber", max_grad_norm=10.0, log_every=10_000)
PROFILES = {
    "small": dict(games=("Pong",), config=dict(total_steps=3_000, buffer_size=3_000, learning_starts=1_000,
                                               batch_size=32, train_frequency=4, gradient_steps=1,
                                               target_update_interval=500, learning_rate=1e-4,
                                               epsilon_end=0.01, exploration_fraction=0.5, log_every=1_000)),
    "full": dict(games=("Pong", "Breakout"), config=FULL),
}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=tuple(PROFILES), default="small")
    parser.add_argument("--games", nargs="+")
    parser.add_argument("--max-seconds", type=float)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    course_lib.set_num_threads(args.threads)
    print(f"threads={args.threads}")
    prof = PROFILES[args.profile]
    device = args.device or str(course_lib.get_device())
    results = []
    for game in args.games or prof["games"]:
        env_id = f"ALE/{game}-v5"
        extra = {"learning_starts": 20_000} if (args.profile == "full" and game == "Pong") else {}
        config = DQNConfig(env_id=env_id, device=device, max_seconds=args.max_seconds, progress=False,
                           **{**prof["config"], **extra})
        if args.max_seconds is not None:  # a tiny budget: make sure the update path still runs
            config = dataclasses.replace(config, learning_starts=min(config.learning_starts, 64),
                                         buffer_size=min(config.buffer_size, 5_000))
        start = time.perf_counter()
        q, history = train_dqn(config)
        seconds = time.perf_counter() - start
        returns = evaluate_greedy(q, env_id, args.eval_episodes, seed=10_000, epsilon=0.01,
                                  max_steps=200 if args.max_seconds is not None else 100_000)  # tiny budget: partial episodes
        line = dict(game=env_id, env_steps=history["env_steps"][-1] if history["env_steps"] else 0,
                    gradient_steps=history["gradient_steps"][-1] if history["gradient_steps"] else 0,
                    seconds=round(seconds, 2), eval_return_mean=float(returns.mean()),
                    stop_reason=history["stop_reason"])
        print(" ".join(f"{k}={v}" for k, v in line.items()), flush=True)
        results.append(line)
    return results


if __name__ == "__main__":
    main()
