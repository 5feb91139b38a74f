"""Benchmark (Chapter 6): value iteration and policy iteration, course_lib against pymdptoolbox, both on the CPU.

What is measured: the wall time of each solver **from the same NumPy arrays**
(``P`` of shape ``(A, S, S)``, pymdptoolbox's layout, and ``R`` of shape ``(S, A)``),
with the construction inside both timers: pymdptoolbox's ``ValueIteration(...)`` /
``PolicyIteration(...)`` constructor (its checks and its iteration bound) and
``run()``; ours, ``FiniteMDP(...)`` built from those arrays (the ``(A, S, S)`` array
seen as ``(S, A, S)`` through a transpose, without a copy, and its checks) and :func:`~course_lib.rl.dynamic_programming.value_iteration` /
``policy_iteration``. The best of ``--repeats`` runs of each; one thread for both
(torch via :func:`course_lib.set_num_threads`, NumPy's BLAS through threadpoolctl
when installed; both printed). Both value iterations use pymdptoolbox's stopping
rule (span of ``V_{k+1} - V_k`` below ``epsilon (1 - gamma) / gamma`` and its
iteration cap), so they do the same number of backups and their ``V`` must agree
to 1e-8; both policy iterations evaluate exactly (a linear solve) and start from
pymdptoolbox's default policy, greedy with respect to ``V = 0``.

Tasks: FrozenLake 8x8 (slippery, gymnasium's transition table) and a random MDP
with dense transitions (``S = 2,000, A = 10`` in the full profile, 500 in the small
one; seed 0). Target (issue 20, random MDP, full profile): value iteration >= 5x
faster than pymdptoolbox with ``max_abs_diff_V <= 1e-8``; policy iteration no slower.

pymdptoolbox is an optional extra (``pip install pymdptoolbox``; ``make
bench-setup``); without it only our lines are printed and the ratios are ``nan``.
The protocol of the RL benchmarks (seeds, steps) does not apply here: these are
deterministic solvers (``benchmarks/README.md``).

Usage::

    python benchmarks/dynamic_programming.py --profile full      # the target's size
    python benchmarks/dynamic_programming.py --profile small --max-seconds 5

Lines: ``threads=... blas_threads=...`` first; one
``algo=<name>_<task> impl=<ours|pymdptoolbox> states=<int> actions=<int> iterations=<int> seconds=<float> max_abs_diff_V=<float>``
per solver; ``ratio_seconds_value_iteration_ours_vs_pymdptoolbox=<float>`` and the policy-iteration
ratio (random MDP; < 1: ours is faster); ``floor_value_iteration_random ... max_speedup_value_iteration=<float>``:
the time of pymdptoolbox's number of backups as bare matrix-vector products over the dense table,
and pymdptoolbox's time divided by it, the largest speedup any value iteration that reproduces its
``V`` could reach on this machine; the ``target`` line.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import course_lib  # noqa: E402
import protocol  # noqa: E402
from course_lib.rl import dynamic_programming as dp  # noqa: E402

SIZES = {"small": dict(random_states=500, random_actions=10), "full": dict(random_states=2000, random_actions=10)}


def _timed(fn, repeats: int, budget: float):
    """Best wall time of ``fn()`` over up to ``repeats`` runs (at least one; fewer if the budget is spent)."""
    best, out, start = math.inf, None, time.perf_counter()
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - tic)
        if time.perf_counter() - start > budget:
            break
    return best, out


def _blas_limit(threads: int):
    """Limit NumPy's BLAS to ``threads`` (threadpoolctl); returns (context, the BLAS thread count in force)."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), "unknown(no threadpoolctl)"
    ctx = threadpool_limits(limits=threads, user_api="blas")
    counts = sorted({i["num_threads"] for i in threadpool_info() if i.get("user_api") == "blas"})
    return ctx, ",".join(map(str, counts)) or "none"


def ours_mdp(P: np.ndarray, R: np.ndarray, gamma: float) -> dp.FiniteMDP:
    """Our MDP from pymdptoolbox's arrays, checked: ``P`` (A, S, S) seen as (S, A, S) without a copy.

    The backups recognise that layout and multiply on the (A, S, S) storage (a copy of
    the transpose took 0.05 s at S = 2,000, A = 10 on the reference machine, a quarter
    of our value iteration's time).
    """
    return dp.FiniteMDP(torch.from_numpy(P).transpose(0, 1), torch.from_numpy(R), gamma)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("small", "full"), default=None, help="default: course_lib.profile()")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="rough time budget of the whole run")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: COURSE_NUM_THREADS, else 1)")
    parser.add_argument("--epsilon", type=float, default=1e-10, help="pymdptoolbox's epsilon (sets the span threshold)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    profile = args.profile or course_lib.profile()
    threads = protocol.set_threads(args.threads)
    limit, blas = _blas_limit(threads)
    with limit:
        protocol.header("dynamic_programming", threads, solved_protocol=False, blas_threads=blas, profile=profile,
                        device="cpu")
        return _run(args, profile)


def _run(args, profile: str) -> dict:
    try:
        import mdptoolbox.mdp as toolbox
    except Exception as err:  # ImportError, or a numpy incompatibility inside the package
        toolbox = None
        print(f"# pymdptoolbox unavailable ({type(err).__name__}: {err}); printing our lines only")

    sizes = SIZES[profile]
    tasks = [
        ("frozenlake8x8", dp.FiniteMDP.from_gymnasium("FrozenLake-v1", gamma=0.99, map_name="8x8")),
        ("random", dp.random_mdp(sizes["random_states"], sizes["random_actions"], gamma=0.95, seed=0)),
    ]
    budget = args.max_seconds / (2 * len(tasks) * 2)
    results, arrays = {}, {}
    for task, mdp in tasks:
        # The same arrays for both: pymdptoolbox's (A, S, S) layout, float64, C-contiguous.
        P = np.ascontiguousarray(mdp.transitions.permute(1, 0, 2).numpy())
        R = np.ascontiguousarray(mdp.rewards.numpy())
        gamma, S, A = mdp.gamma, mdp.num_states, mdp.num_actions
        thresh = args.epsilon * (1 - gamma) / gamma
        arrays[task] = P
        del mdp
        max_iter, lines = 100_000, []
        V_ref = {}
        if toolbox is not None:
            def tb_vi():
                vi = toolbox.ValueIteration(P, R, gamma, epsilon=args.epsilon, max_iter=100_000)
                vi.run()
                return vi

            def tb_pi():
                pi = toolbox.PolicyIteration(P, R, gamma, eval_type=0, max_iter=10_000)
                pi.run()
                return pi

            sec_tb_vi, vi = _timed(tb_vi, args.repeats, budget)
            sec_tb_pi, pi = _timed(tb_pi, args.repeats, budget)
            V_ref = {"vi": np.asarray(vi.V), "pi": np.asarray(pi.V)}
            max_iter = vi.max_iter  # pymdptoolbox's bound on the iterations: ours obeys the same cap
            results[(task, "value_iteration", "pymdptoolbox")] = (vi.iter, sec_tb_vi, V_ref["vi"])
            results[(task, "policy_iteration", "pymdptoolbox")] = (pi.iter, sec_tb_pi, V_ref["pi"])

        sec_vi, (V, _, hist) = _timed(
            lambda: dp.value_iteration(ours_mdp(P, R, gamma), tol=thresh, max_iterations=max_iter, stopping="span"),
            args.repeats, budget)
        # Both policy iterations start from the same policy: pymdptoolbox's default, greedy
        # with respect to V = 0 (argmax_a R(s, a)), computed inside our timer too.
        sec_pi, (V_pi, _, hist_pi) = _timed(
            lambda: dp.policy_iteration(ours_mdp(P, R, gamma), policy0=torch.from_numpy(R.argmax(1))),
            args.repeats, budget)
        results[(task, "value_iteration", "ours")] = (len(hist), sec_vi, V.numpy())
        results[(task, "policy_iteration", "ours")] = (len(hist_pi), sec_pi, V_pi.numpy())
        for algo, key in (("value_iteration", "vi"), ("policy_iteration", "pi")):
            for impl in ("ours", "pymdptoolbox"):
                if (task, algo, impl) not in results:
                    continue
                iters, sec, values = results[(task, algo, impl)]
                other = results.get((task, algo, "pymdptoolbox" if impl == "ours" else "ours"))
                diff = float(np.abs(values - other[2]).max()) if other is not None else float("nan")
                lines.append(f"algo={algo}_{task} impl={impl} states={S} actions={A} iterations={iters} "
                             f"seconds={sec:.6f} max_abs_diff_V={diff:.3e}")
        print("\n".join(lines), flush=True)

    def ratio(algo):
        ours, peer = results.get(("random", algo, "ours")), results.get(("random", algo, "pymdptoolbox"))
        return (ours[1] / peer[1], float(np.abs(ours[2] - peer[2]).max())) if ours and peer else (math.nan, math.nan)

    (r_vi, d_vi), (r_pi, _) = ratio("value_iteration"), ratio("policy_iteration")
    print(f"ratio_seconds_value_iteration_ours_vs_pymdptoolbox={r_vi:.4f} "
          f"ratio_seconds_policy_iteration_ours_vs_pymdptoolbox={r_pi:.4f}")
    S = sizes["random_states"]
    if ("random", "value_iteration", "pymdptoolbox") in results:
        # The floor of any value iteration that agrees with pymdptoolbox's V: its backups, each
        # one pass over the dense (A, S, S) table (a matrix-vector product, memory-bound), and
        # nothing else: no construction, no checks, no greedy policy.
        iters, sec_peer, _ = results[("random", "value_iteration", "pymdptoolbox")]
        P_flat = arrays["random"].reshape(-1, S)  # (A*S, S)
        V0 = np.zeros(S)
        sec_matvec, _ = _timed(lambda: P_flat @ V0, 5, budget)
        floor = iters * sec_matvec
        print(f"floor_value_iteration_random backups={iters} seconds_per_backup_matvec={sec_matvec:.6f} "
              f"floor_seconds={floor:.6f} max_speedup_value_iteration={sec_peer / floor:.3f}")
    protocol.print_target("ch6_dp_vs_pymdptoolbox",
                          [("speedup_value_iteration", 1 / r_vi if r_vi else math.nan, ">=", 5.0),
                           ("max_abs_diff_V", d_vi, "<=", 1e-8),
                           ("ratio_seconds_policy_iteration", r_pi, "<=", 1.0),
                           ("states", S, ">=", 2000)],
                          task="random", actions=sizes["random_actions"])
    return results


if __name__ == "__main__":
    main()
