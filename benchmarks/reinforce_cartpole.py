"""Benchmark (Chapter 4): environment steps and seconds for REINFORCE to solve CartPole-v1.

What is measured: :func:`course_lib.rl.train_reinforce` with the
``ReinforceConfig()`` defaults, on each held-out seed, until a 100-episode
evaluation with **sampled** actions (the stochastic policy REINFORCE learns; its
own generator and envs) has a mean undiscounted return >= 475. ``steps`` are
the simulated transitions (``simulated_steps``: the ones ``collect_batch``
discards while an env waits for the others are counted); ``seconds`` the
training wall time with the evaluations excluded.

Protocol: ``benchmarks/protocol.py`` and ``benchmarks/README.md`` (held-out seeds
100-109, the defaults were tuned on seeds 0-9 of the earlier protocol, see
``benchmarks/HISTORY.md``; an evaluation after the first update past each 1,000
steps once the last 20 training episodes average >= ``--check-threshold``; an
unsolved seed counts at the budget, 500,000 steps: the CartPole budget of the
Chapter 5 benchmark, so this row is the same as its ``reinforce`` row). No peer:
Chapter 5's ``policy_gradient_cartpole.py`` compares REINFORCE with SB3.

Usage::

    python benchmarks/reinforce_cartpole.py [--seeds 10] [--budget 500000] [--max-seconds S] [--threads 1]
    python benchmarks/reinforce_cartpole.py --max-seconds 5          # smoke run (CI)

Lines: ``threads=...`` first; one ``algo=reinforce ... seed=...`` line per seed; the summary
``algo=reinforce env=CartPole-v1 median_steps=... median_seconds=... seeds_solved=k/n ...``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import protocol  # noqa: E402
from course_lib.rl import ReinforceConfig  # noqa: E402
from policy_gradient_cartpole import BUDGETS, GATES, run_reinforce  # noqa: E402

ENV = "CartPole-v1"


def main(argv=None) -> protocol.Summary:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    protocol.add_arguments(parser)
    parser.add_argument("--budget", type=int, default=BUDGETS[ENV], help="steps per seed (unsolved counts here)")
    parser.add_argument("--check-threshold", type=float, default=GATES[ENV],
                        help="the gate: evaluate only when the last 20 training episodes average at least this")
    args = parser.parse_args(argv)
    if args.budget < 1:
        parser.error("--budget must be >= 1")
    seed_list = protocol.seeds(args.seeds)
    threads = protocol.set_threads(args.threads)
    base = ReinforceConfig()
    protocol.header("reinforce_cartpole", threads, profile=args.profile, seeds=len(seed_list), budget=args.budget,
                    env=ENV, action_rule="sampled", gate=args.check_threshold, num_envs=base.num_envs,
                    batch_size=base.batch_size, lr=base.learning_rate, gamma=base.gamma,
                    hidden=",".join(map(str, base.hidden_sizes)), baseline=base.baseline)
    protocol.warm_up()
    runs, skipped = protocol.run_seeds(
        ["reinforce"], seed_list,
        lambda algo, seed, share: run_reinforce(algo, ENV, seed, args.budget, share, args.check_threshold),
        args.max_seconds)
    return protocol.summarize(runs["reinforce"], skipped["reinforce"])


if __name__ == "__main__":
    main()
