"""Value iteration and policy iteration: course_lib (vectorized torch, GPU when present) vs pymdptoolbox.

Tasks: FrozenLake 8x8 (slippery, from gymnasium's transition table) and a random MDP with
dense transitions (S = 2,000, A = 10 in the full profile; seed 0). pymdptoolbox runs on the
same arrays in the same process. Both value iterations use pymdptoolbox's stopping rule
(span of V_{k+1} - V_k below epsilon (1 - gamma) / gamma, and its iteration cap), so they
do the same number of backups and their V must agree to 1e-8.

Prints one line per (task, algorithm, implementation)::

    algo=<name> impl=<ours|pymdptoolbox> states=<int> iterations=<int> seconds=<float> max_abs_diff_V=<float>

then ``ratio_seconds_ours_vs_pymdptoolbox=<float>`` (value iteration on the random MDP; < 1 is
faster). pymdptoolbox is an optional, benchmark-only dependency (``pip install pymdptoolbox``);
without it only our lines are printed (``max_abs_diff_V=nan``) and the ratio is ``nan``.

    python benchmarks/dynamic_programming.py --profile small
    python benchmarks/dynamic_programming.py --profile full --max-seconds 60
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import course_lib  # noqa: E402
from course_lib.rl import dynamic_programming as dp  # noqa: E402

SIZES = {"small": dict(random_states=500, random_actions=10), "full": dict(random_states=2000, random_actions=10)}


def _timed(fn, repeats: int, budget: float):
    """Best wall time of ``fn()`` over up to ``repeats`` runs (fewer if the budget is spent)."""
    best, out, start = math.inf, None, time.perf_counter()
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        tic = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tic)
        if time.perf_counter() - start > budget:
            break
    return best, out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("small", "full"), default=None)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="rough time budget of the whole run")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: COURSE_NUM_THREADS or torch's)")
    parser.add_argument("--epsilon", type=float, default=1e-10, help="pymdptoolbox's epsilon (sets the span threshold)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    profile = args.profile or course_lib.profile()
    threads = course_lib.set_num_threads(args.threads)
    device = course_lib.get_device()
    device = device if device.type == "cuda" else torch.device("cpu")
    print(f"profile={profile} threads={threads} device={device}")
    try:
        import mdptoolbox.mdp as toolbox
    except Exception as err:  # ImportError, or a numpy incompatibility inside the package
        toolbox = None
        print(f"pymdptoolbox unavailable ({type(err).__name__}: {err}); printing our lines only")

    sizes = SIZES[profile]
    tasks = [
        ("frozenlake8x8", dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")),
        ("random", dp.random_mdp(sizes["random_states"], sizes["random_actions"], gamma=0.95, seed=0)),
    ]
    budget = args.max_seconds / (2 * len(tasks) * 2)
    ratio = float("nan")
    for task, mdp in tasks:
        P_np = mdp.transitions.permute(1, 0, 2).contiguous().numpy()  # pymdptoolbox wants (A, S, S)
        R_np = mdp.rewards.numpy()
        gamma, S = mdp.gamma, mdp.num_states
        thresh = args.epsilon * (1 - gamma) / gamma
        mdp_dev = mdp.to(device)
        V_ref = {}
        max_iter = 100_000
        if toolbox is not None:
            def tb_vi():
                vi = toolbox.ValueIteration(P_np, R_np, gamma, epsilon=args.epsilon, max_iter=100_000)
                vi.run()
                return vi
            sec_tb_vi, vi = _timed(tb_vi, args.repeats, budget)
            V_ref["vi"], max_iter = np.asarray(vi.V), vi.max_iter
            tb_vi_iters = vi.iter

            def tb_pi():
                pi = toolbox.PolicyIteration(P_np, R_np, gamma, eval_type=0, max_iter=10_000)
                pi.run()
                return pi
            sec_tb_pi, pi = _timed(tb_pi, args.repeats, budget)
            V_ref["pi"] = np.asarray(pi.V)
        sec_vi, (V, _, hist) = _timed(lambda: dp.value_iteration(mdp_dev, tol=thresh, max_iterations=max_iter, stopping="span"),
                                      args.repeats, budget)
        sec_pi, (V_pi, _, hist_pi) = _timed(lambda: dp.policy_iteration(mdp_dev), args.repeats, budget)
        for algo, impl, iters, sec, values, key in (
            ("value_iteration", "ours", len(hist), sec_vi, V, "vi"),
            ("policy_iteration", "ours", len(hist_pi), sec_pi, V_pi, "pi"),
        ):
            diff = float(np.abs(values.cpu().numpy() - V_ref[key]).max()) if key in V_ref else float("nan")
            print(f"algo={algo}_{task} impl={impl} states={S} iterations={iters} seconds={sec:.6f} max_abs_diff_V={diff:.3e}")
        if toolbox is not None:
            print(f"algo=value_iteration_{task} impl=pymdptoolbox states={S} iterations={tb_vi_iters} seconds={sec_tb_vi:.6f} "
                  f"max_abs_diff_V={float(np.abs(V.cpu().numpy() - V_ref['vi']).max()):.3e}")
            print(f"algo=policy_iteration_{task} impl=pymdptoolbox states={S} iterations={pi.iter} seconds={sec_tb_pi:.6f} "
                  f"max_abs_diff_V={float(np.abs(V_pi.cpu().numpy() - V_ref['pi']).max()):.3e}")
            if task == "random":
                ratio = sec_vi / sec_tb_vi
    print(f"ratio_seconds_ours_vs_pymdptoolbox={ratio:.4f}")


if __name__ == "__main__":
    main()
