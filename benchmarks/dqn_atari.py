"""Benchmark (Chapter 7): DQN on Atari Pong and Breakout (Nature DQN network, the gymnasium/ale-py pipeline).

What is measured, per game and seed: :func:`course_lib.rl.train_dqn` with
``env_id="ALE/<Game>-v5"`` (:func:`course_lib.rl.make_atari_env`: no-op starts,
frame skip 4 with max-pooling, 84x84 grayscale, 4 stacked frames, sticky actions
0.25, no life-loss episode ends), then an evaluation of the final network with
**epsilon = 0.05** (Mnih et al. 2015, Methods; its own generator and envs) over
``--eval-episodes`` episodes. ``env_steps`` are agent steps (every one simulated;
``frames`` = 4 x that); ``seconds`` the training wall time (the evaluation comes
after it and is excluded); the Q-network's parameter count is printed.

Protocol: the held-out seeds of ``benchmarks/protocol.py`` (``--seeds 1``: seed 100),
one torch thread unless ``--threads``/``COURSE_NUM_THREADS`` (``benchmarks/README.md``).
There is no peer and no solved threshold: this is the pipeline's run, not a race.

Profiles:

- ``small`` (CPU, proves the pipeline runs end to end): Pong only, 3,000 env steps,
  buffer 3,000, learning starts at 1,000. The return stays at the random level (-21).
- ``full`` (one GPU): Pong and Breakout, 2,000,000 env steps each (8M frames),
  Nature hyperparameters with the faster schedule of the DQN "zoo" settings: lr 1e-4,
  batch 32, buffer 100,000, learning starts 50,000 (Pong: 20,000), train every 4 steps,
  target update every 1,000 steps, epsilon 1 -> 0.01 over 10 % of training, Huber loss.
  Expected (not measured on this project's machines): a few hours of GPU time per game,
  the environment stepping on one CPU core dominating; Pong reaches about +20.

``--max-seconds`` caps each game's training (CI runs ``--profile full --max-seconds 5``
on a CPU: a few hundred steps, nothing learned, every code path exercised).

Usage::

    python benchmarks/dqn_atari.py [--profile small|full] [--games Pong Breakout] [--seeds 1]
        [--max-seconds S] [--threads 1] [--eval-episodes 3]

Lines printed: ``threads=<int>`` first; one
``game=<id> seed=<int> env_steps=<int> frames=<int> gradient_steps=<int> seconds=<float> params=<int>
eval_epsilon=0.05 eval_return_mean=<float> stop_reason=<str>`` per game and seed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import course_lib  # noqa: E402
import protocol  # noqa: E402
from course_lib.rl import DQNConfig, evaluate_greedy, train_dqn  # noqa: E402

FULL = dict(total_steps=2_000_000, buffer_size=100_000, learning_starts=50_000, batch_size=32, train_frequency=4,
            gradient_steps=1, target_update_interval=1_000, learning_rate=1e-4, epsilon_end=0.01,
            exploration_fraction=0.1, gamma=0.99, loss="huber", max_grad_norm=10.0, log_every=10_000)
#: Epsilon of the evaluation (Mnih et al. 2015, Methods: "epsilon-greedy policy with epsilon = 0.05").
EVAL_EPSILON = 0.05
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
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_NUM_THREADS, else 1)")
    parser.add_argument("--seeds", type=int, default=1, help="how many of the held-out seeds 100.. (default 1)")
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    threads = protocol.set_threads(args.threads)
    prof = PROFILES[args.profile]
    device = args.device or str(course_lib.get_device())
    protocol.header("dqn_atari", threads, solved_protocol=False, profile=args.profile, device=device, eval_epsilon=EVAL_EPSILON,
                    eval_episodes=args.eval_episodes)
    protocol.warm_up()
    results = []
    for seed, game in [(s, g) for s in protocol.seeds(args.seeds) for g in (args.games or prof["games"])]:
        env_id = f"ALE/{game}-v5"
        extra = {"learning_starts": 20_000} if (args.profile == "full" and game == "Pong") else {}
        config = DQNConfig(env_id=env_id, seed=seed, device=device, max_seconds=args.max_seconds, progress=False,
                           **{**prof["config"], **extra})
        if args.max_seconds is not None:  # a tiny budget: make sure the update path still runs
            config = dataclasses.replace(config, learning_starts=min(config.learning_starts, 64),
                                         buffer_size=min(config.buffer_size, 5_000))
        clock = protocol.Clock()
        q, history = train_dqn(config)
        seconds = clock.seconds
        returns = evaluate_greedy(q, env_id, args.eval_episodes, seed=protocol.EVAL_SEED_BASE + 1_000 * seed,
                                  epsilon=EVAL_EPSILON,
                                  max_steps=200 if args.max_seconds is not None else 100_000)  # tiny budget: partial episodes
        steps = history["simulated_steps"][-1] if history["simulated_steps"] else 0
        line = dict(game=env_id, seed=seed, env_steps=steps, frames=4 * steps,
                    gradient_steps=history["gradient_steps"][-1] if history["gradient_steps"] else 0,
                    seconds=round(seconds, 2), params=protocol.params(q), eval_epsilon=EVAL_EPSILON,
                    eval_return_mean=float(returns.mean()), stop_reason=history["stop_reason"])
        print(" ".join(f"{k}={v}" for k, v in line.items()), flush=True)
        results.append(line)
    return results


if __name__ == "__main__":
    main()
