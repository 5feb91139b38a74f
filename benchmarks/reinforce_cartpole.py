"""Benchmark: environment steps and wall time for REINFORCE to solve CartPole-v1.

*Solved* means: mean undiscounted return >= 475 over 100 evaluation episodes in
which actions are **sampled** from the learned stochastic policy at temperature 1
(the policy REINFORCE learns is the stochastic one; greedy evaluation would be
easier and is not used).

Protocol, per seed (``ReinforceConfig`` defaults, ``seed = 0, 1, ..., n-1``):

- train with :func:`course_lib.rl.train_reinforce`; after every update whose
  training batch had a mean return >= ``--check-threshold`` (default 400), run the
  100-episode evaluation on the updated policy; stop at the first pass;
- ``steps``: training environment steps up to and including the passing update
  (evaluation steps are *not* counted: they do not feed the learner);
- ``seconds``: wall time from the start of ``train_reinforce`` to the pass,
  *including* the time spent in the evaluations;
- a seed that does not pass within ``--budget`` steps counts as unsolved, and
  enters the medians with ``steps = budget`` (a lower bound, so the medians are
  optimistic only if more than half the seeds fail, which the output then shows).

Evaluation uses its own RNG (``evaluate`` seeds a private generator and the envs),
so checking does not change the training run: ``steps`` is a deterministic function
of the seed on a given machine. Because the first passing check out of several is
taken, a fresh 100-episode evaluation with another seed is also printed
(``confirm``) to show the pass is not a fluke.

Threads: ``--threads`` (default 1), set with :func:`course_lib.set_num_threads`
and printed as ``threads=<int>``: the policy is a tiny MLP, for which one thread is
fastest, and on a shared machine more threads than free cores can make it tens of
times slower.

Profiles: ``--profile small`` (default: 3 seeds, 150,000-step budget) or ``full``
(10 seeds, 300,000 steps); ``--seeds``/``--budget`` override them.
``--max-seconds`` caps the whole benchmark's training time: each seed gets what is
left (``ReinforceConfig.max_seconds``), a seed cut by it counts as unsolved and the
remaining seeds are skipped, so ``--profile full --max-seconds 5`` finishes on any CPU.

Usage::

    python benchmarks/reinforce_cartpole.py [--profile small|full] [--seeds 5] [--budget 300000]
        [--max-seconds S] [--threads 1]

Lines printed (machine-readable ``key=value`` pairs): ``threads=<int>``; the config;
one ``seed=...`` line per seed; and last
``solved_median_steps=<int> solved_median_seconds=<float> seeds_solved=<k>/<n>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import course_lib  # noqa: E402
from course_lib.rl import ReinforceConfig, evaluate, train_reinforce  # noqa: E402

PROFILES = {"small": dict(seeds=3, budget=150_000), "full": dict(seeds=10, budget=300_000)}

SOLVED_RETURN = 475.0
EVAL_EPISODES = 100


def solve(config: ReinforceConfig, budget: int, check_threshold: float, max_seconds: float | None = None) -> dict:
    """Train until solved, ``budget`` steps or ``max_seconds``; return the per-seed record."""
    config = dataclasses.replace(config, total_steps=budget, max_seconds=max_seconds)
    state = {"solved": False, "checks": 0, "eval_mean": float("nan")}
    start = time.perf_counter()

    def callback(policy, history) -> bool:
        if history["mean_return"][-1] < check_threshold:
            return False
        state["checks"] += 1
        returns = evaluate(policy, config.env_id, EVAL_EPISODES, seed=10_000 + len(history["env_steps"]))
        state["eval_mean"] = float(returns.mean())
        if state["eval_mean"] >= SOLVED_RETURN:
            state["solved"] = True
            state["seconds"] = time.perf_counter() - start
            return True
        return False

    policy, history = train_reinforce(config, callback=callback)
    seconds = state.get("seconds", time.perf_counter() - start)
    confirm = float(evaluate(policy, config.env_id, EVAL_EPISODES, seed=123_456).mean())
    return {
        "seed": config.seed,
        "solved": state["solved"],
        "steps": history["env_steps"][-1] if state["solved"] else budget,
        "seconds": seconds,
        "updates": len(history["env_steps"]),
        "checks": state["checks"],
        "eval_mean": state["eval_mean"],
        "confirm": confirm,
        "simulated_steps": history["simulated_steps"][-1],
        "stop_reason": history["stop_reason"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="small")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (0..n-1); default by profile")
    parser.add_argument("--budget", type=int, default=None, help="max training env steps per seed; default by profile")
    parser.add_argument("--max-seconds", type=float, default=None, help="training time budget for the whole run")
    parser.add_argument(
        "--check-threshold",
        type=float,
        default=400.0,
        help="evaluate after an update only if the batch's mean training return is at least this",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (course_lib.set_num_threads)")
    args = parser.parse_args(argv)
    seeds = PROFILES[args.profile]["seeds"] if args.seeds is None else args.seeds
    budget = PROFILES[args.profile]["budget"] if args.budget is None else args.budget
    if seeds < 1:
        parser.error("--seeds must be >= 1")
    if budget < 1:
        parser.error("--budget must be >= 1")
    if args.max_seconds is not None and args.max_seconds <= 0:
        parser.error("--max-seconds must be > 0")
    print(f"threads={course_lib.set_num_threads(args.threads)}", flush=True)

    base = ReinforceConfig(progress=False)
    print(
        f"profile={args.profile} seeds={seeds} budget={budget} max_seconds={args.max_seconds} "
        f"num_envs={base.num_envs} batch_size={base.batch_size} lr={base.learning_rate} "
        f"gamma={base.gamma} hidden={base.hidden_sizes} baseline={base.baseline}; "
        f"solved = mean return >= {SOLVED_RETURN:g} over {EVAL_EPISODES} sampled-action episodes",
        flush=True,
    )
    records = []
    start = time.perf_counter()
    for seed in range(seeds):
        left = None if args.max_seconds is None else args.max_seconds - (time.perf_counter() - start)
        if left is not None and left <= 0:
            print(f"time budget spent: seeds {seed}..{seeds - 1} skipped", flush=True)
            break
        rec = solve(dataclasses.replace(base, seed=seed), budget, args.check_threshold, left)
        records.append(rec)
        print(
            f"seed={rec['seed']} solved={rec['solved']} steps={rec['steps']} "
            f"seconds={rec['seconds']:.1f} updates={rec['updates']} checks={rec['checks']} "
            f"eval_mean={rec['eval_mean']:.1f} confirm={rec['confirm']:.1f} "
            f"simulated_steps={rec['simulated_steps']} stop_reason={rec['stop_reason']}",
            flush=True,
        )
    steps = [r["steps"] for r in records]
    seconds = [r["seconds"] for r in records]
    k = sum(r["solved"] for r in records)
    print(
        f"solved_median_steps={int(np.median(steps))} "
        f"solved_median_seconds={statistics.median(seconds):.1f} seeds_solved={k}/{seeds}"
    )


if __name__ == "__main__":
    main()
