"""The one protocol of the reinforcement-learning benchmarks, written once (issue 20).

Every RL benchmark (``reinforce_cartpole.py``, ``policy_gradient_cartpole.py``,
``dqn_cartpole.py``, ``dqn_atari.py``) imports this module for its seeds, its
solved check, its clock, its evaluation, its medians and its ratio and target
lines, so that ours and the peers' are measured by the same code.
``benchmarks/README.md`` states the protocol in words; in short:

- **Seeds**: settings were tuned on seeds 0-4 (:data:`TUNING_SEEDS`); results are
  reported on the held-out seeds 100-109 (:data:`REPORT_SEEDS`), the same for
  ours and the peer's.
- **Steps**: every environment transition the method simulates, the ones it
  discards included (REINFORCE's ``simulated_steps``).
- **Solved**: the mean undiscounted return of a :data:`EVAL_EPISODES`-episode
  evaluation (:func:`evaluate`, its own envs and generator) reaches the env's
  :data:`THRESHOLDS`; an evaluation runs after the first update past every
  multiple of :data:`EVAL_EVERY` steps, when the gate (if the benchmark has one:
  the mean of the last :data:`RECENT_EPISODES` training episodes, the same rule
  for ours and the peer's) is passed.
- **Unsolved seeds** count at the budget; medians are over all seeds and the
  solved fraction is printed.
- **Time**: training wall time with the evaluations excluded (:class:`Clock`),
  one torch thread, ours and the peer's interleaved seed by seed in one process.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch

import course_lib

#: Seeds the settings were chosen on (REINFORCE, A2C, PPO and DQN defaults; see HISTORY.md).
TUNING_SEEDS = tuple(range(0, 5))
#: Held-out seeds every reported row uses: no setting was chosen on them.
REPORT_SEEDS = tuple(range(100, 110))
#: Episodes of one evaluation.
EVAL_EPISODES = 100
#: An evaluation is due after the first update past each multiple of this many steps.
EVAL_EVERY = 1_000
#: The gate (where a benchmark uses one) averages this many of the latest training episodes.
RECENT_EPISODES = 20
#: Solved: mean undiscounted evaluation return at least this.
THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}
#: Evaluation env seeds: far from the training seeds (100-109 and the envs' offsets).
EVAL_SEED_BASE = 1_000_000


# ----------------------------------------------------------------------------
# Command line, threads, warm-up
# ----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser, profile_default: str | None = "small") -> None:
    """The flags every RL benchmark takes: ``--profile``, ``--seeds``, ``--max-seconds``, ``--threads``."""
    parser.add_argument("--profile", choices=("small", "full"), default=profile_default,
                        help="accepted for a uniform command line; the protocol is the same in both")
    parser.add_argument("--seeds", type=int, default=len(REPORT_SEEDS),
                        help=f"how many of the held-out seeds {REPORT_SEEDS[0]}..{REPORT_SEEDS[-1]} (default all)")
    parser.add_argument("--max-seconds", type=float, default=None,
                        help="training-time budget of the whole benchmark, split evenly over its runs (smoke runs)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: COURSE_NUM_THREADS, else 1)")


def seeds(n: int) -> tuple[int, ...]:
    """The first ``n`` held-out seeds; ``ValueError`` for n outside 1..10."""
    if not 1 <= n <= len(REPORT_SEEDS):
        raise ValueError(f"--seeds must be in 1..{len(REPORT_SEEDS)}, got {n}")
    return REPORT_SEEDS[:n]


def set_threads(requested: int | None = None) -> int:
    """One torch thread unless ``requested`` or ``COURSE_NUM_THREADS`` says otherwise; returns the count."""
    if requested is None and not os.environ.get("COURSE_NUM_THREADS", "").strip():
        requested = 1
    return course_lib.set_num_threads(requested)


def warm_up() -> None:
    """Pay one-off import costs before any clock starts (``torch.optim`` imports ``torch._dynamo``
    lazily on the first optimizer: seconds), so no method's first seed is charged for them."""
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


def have(module: str) -> bool:
    """Whether an optional peer package imports."""
    try:
        __import__(module)
    except Exception:  # ImportError, or an incompatibility inside the package
        return False
    return True


def params(module: torch.nn.Module | None) -> int:
    """Number of parameters of a network (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


# ----------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------
Act = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


@torch.no_grad()
def evaluate(act: Act, env_id: str, seed: int, episodes: int = EVAL_EPISODES) -> np.ndarray:
    """Undiscounted returns of ``episodes`` episodes, one per parallel env (each env's first episode).

    ``act(obs, generator) -> actions`` is the method's action rule (sampled or
    greedy); ``obs`` is a float32 ``(episodes, obs_dim)`` tensor, ``generator``
    a private ``torch.Generator`` seeded with ``seed``. The envs are new, reset
    with ``seed, seed + 1, ...``: nothing here touches a global RNG or the
    training envs. CartPole-v1 uses gymnasium's numpy-vectorized env (same
    dynamics and 500-step limit), other ids a sync vector env.
    """
    import gymnasium as gym

    mode = "vector_entry_point" if gym.spec(env_id).vector_entry_point else "sync"
    envs = gym.make_vec(env_id, num_envs=episodes, vectorization_mode=mode)
    generator = torch.Generator().manual_seed(seed)
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        while running.any():
            actions = act(torch.as_tensor(np.asarray(obs), dtype=torch.float32), generator)
            obs, reward, terminated, truncated, _ = envs.step(np.asarray(actions))
            returns += np.where(running, reward, 0.0)
            running &= ~(terminated | truncated)
    finally:
        envs.close()
    return returns


def sampled(probs_fn: Callable[[torch.Tensor], torch.Tensor]) -> Act:
    """The *sampled* action rule from a function giving action probabilities ``(B, A)``."""
    return lambda obs, gen: torch.multinomial(probs_fn(obs), 1, generator=gen).squeeze(1)


def greedy(values_fn: Callable[[torch.Tensor], torch.Tensor]) -> Act:
    """The *greedy* action rule (argmax) from a function giving logits or Q-values ``(B, A)``."""
    return lambda obs, gen: values_fn(obs).argmax(1)


# ----------------------------------------------------------------------------
# The clock and the solved check
# ----------------------------------------------------------------------------
class Clock:
    """Training wall time with evaluations excluded: ``seconds`` = elapsed minus time spent in :meth:`paused`."""

    def __init__(self):
        self.start = time.perf_counter()
        self.excluded = 0.0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    def paused(self):
        clock = self

        class _Pause:
            def __enter__(self):
                self.tic = time.perf_counter()

            def __exit__(self, *exc):
                clock.excluded += time.perf_counter() - self.tic

        return _Pause()


class RecentReturns:
    """Mean of the last ``n`` training episodes, fed with per-update ``(mean, count)`` pairs
    (for trainers whose history has a per-update mean, like REINFORCE's batch mean)."""

    def __init__(self, n: int = RECENT_EPISODES):
        self.items: deque[tuple[float, int]] = deque()
        self.n = n

    def add(self, mean: float, count: int) -> float:
        if count > 0 and math.isfinite(mean):
            self.items.append((mean, count))
            while sum(c for _, c in self.items) - self.items[0][1] >= self.n:
                self.items.popleft()
        total = sum(c for _, c in self.items)
        return sum(m * c for m, c in self.items) / total if total else -math.inf


@dataclass
class Run:
    """One seed of one method: the solved check after every update, the clock, the record.

    Call :meth:`after_update` after every update (the callback of our trainers; for
    Stable-Baselines3, at the start of the next rollout and at the end of training);
    it returns True when training must stop (solved, the step budget reached, or the
    time share spent). ``evaluate_fn()`` runs the evaluation; it is only called when
    one is due, and its time is excluded from :attr:`seconds`.
    """

    algo: str
    env_id: str
    seed: int
    budget: int
    gate: float | None = None
    max_seconds: float | None = None
    clock: Clock = field(default_factory=Clock)
    solved: bool = False
    steps: int | None = None
    seconds: float | None = None
    evals: int = 0
    eval_mean: float = math.nan
    last_steps: int = 0
    stop: str = "running"
    params: int = 0
    params_detail: str = ""

    @property
    def threshold(self) -> float:
        return THRESHOLDS.get(self.env_id, math.inf)

    def eval_seed(self) -> int:
        """The k-th evaluation of a seed uses the same env seeds for every method."""
        return EVAL_SEED_BASE + 1_000 * self.seed + self.evals

    def after_update(self, steps: int, recent_mean: float, evaluate_fn: Callable[[], np.ndarray]) -> bool:
        if self.stop != "running":
            return True
        due = steps // EVAL_EVERY > self.last_steps // EVAL_EVERY
        self.last_steps = steps
        if due and steps <= self.budget and (self.gate is None or recent_mean >= self.gate):
            train_seconds = self.clock.seconds
            with self.clock.paused():
                self.eval_mean = float(np.mean(evaluate_fn()))
            self.evals += 1
            if self.eval_mean >= self.threshold:
                self.solved, self.steps, self.seconds, self.stop = True, int(steps), train_seconds, "solved"
                return True
        if steps >= self.budget:
            self.stop = "budget"
        elif self.max_seconds is not None and self.clock.seconds >= self.max_seconds:
            self.stop = "time_share"
        return self.stop != "running"

    def out_of_time(self) -> bool:
        return self.max_seconds is not None and self.clock.seconds >= self.max_seconds

    def finish(self) -> "Run":
        """After training returned: an unsolved seed counts at the budget, with its training seconds."""
        if not self.solved:
            if self.stop == "running":
                self.stop = "budget" if self.last_steps >= self.budget else "ended"
            self.steps, self.seconds = self.budget, self.clock.seconds
        return self

    def line(self) -> str:
        return (f"algo={self.algo} env={self.env_id} seed={self.seed} solved={self.solved} steps={self.steps} "
                f"seconds={self.seconds:.2f} evals={self.evals} last_eval_mean={self.eval_mean:.1f} "
                f"steps_run={self.last_steps} stop={self.stop}")


# ----------------------------------------------------------------------------
# Summaries, ratios, targets
# ----------------------------------------------------------------------------
@dataclass
class Summary:
    algo: str
    env_id: str
    median_steps: float
    median_seconds: float
    solved: int
    n: int

    @property
    def all_solved(self) -> bool:
        return self.n > 0 and self.solved == self.n


def summarize(runs: list[Run], skipped: int = 0) -> Summary:
    """Print and return the summary line of one method: medians over every seed that ran."""
    first = runs[0]
    s = Summary(first.algo, first.env_id, float(statistics.median(r.steps for r in runs)),
                float(statistics.median(r.seconds for r in runs)), sum(r.solved for r in runs), len(runs))
    print(f"algo={s.algo} env={s.env_id} median_steps={int(s.median_steps)} median_seconds={s.median_seconds:.2f} "
          f"seeds_solved={s.solved}/{s.n} solved_fraction={s.solved / s.n:.2f} budget={first.budget} "
          f"params={first.params} params_detail={first.params_detail or first.params}"
          + (f" seeds_skipped={skipped}" if skipped else ""), flush=True)
    return s


def ratio(a: float, b: float) -> float:
    return a / b if b and math.isfinite(a) and math.isfinite(b) else math.nan


def print_ratios(ours: Summary, peer: Summary) -> tuple[float, float]:
    """``ratio_steps_<ours>_vs_<peer>`` and ``ratio_seconds_...`` (medians; < 1: ours is better)."""
    rs, rt = ratio(ours.median_steps, peer.median_steps), ratio(ours.median_seconds, peer.median_seconds)
    print(f"env={ours.env_id} ratio_steps_{ours.algo}_vs_{peer.algo}={rs:.3f} "
          f"ratio_seconds_{ours.algo}_vs_{peer.algo}={rt:.3f}", flush=True)
    return rs, rt


def print_target(name: str, checks: Iterable[tuple[str, float, str, float]], note: str = "", **extra) -> bool:
    """One ``target`` line: each check is ``(label, value, op, limit)`` with op ``<=``, ``<``, ``>=`` or ``==``.

    ``met`` is True only when every check holds (NaN never does).
    """
    ops = {"<=": lambda v, l: v <= l, "<": lambda v, l: v < l, ">=": lambda v, l: v >= l, "==": lambda v, l: v == l}
    parts, met = [], True
    for label, value, op, limit in checks:
        ok = bool(ops[op](value, limit)) if not (isinstance(value, float) and math.isnan(value)) else False
        met &= ok
        parts.append(f"{label}={value:.4g} want{op}{limit:g}")
    fields = " ".join(f"{k}={v}" for k, v in extra.items())
    print(f"target {name} {fields} {' '.join(parts)} met={met}" + (f" # {note}" if note else ""), flush=True)
    return met


def header(name: str, threads: int, solved_protocol: bool = True, **fields) -> None:
    """The first line of a benchmark: its thread count first, then its settings; then the protocol in force."""
    more = " ".join(f"{k}={v}" for k, v in fields.items())
    print(f"threads={threads} benchmark={name} torch={torch.__version__} {more}".rstrip(), flush=True)
    if not solved_protocol:
        return
    print(f"# protocol: held-out seeds {REPORT_SEEDS[0]}-{REPORT_SEEDS[-1]} (tuned on {TUNING_SEEDS[0]}-"
          f"{TUNING_SEEDS[-1]}); every simulated step counted; solved = mean return of {EVAL_EPISODES} "
          f"evaluation episodes >= threshold, checked after the first update past each {EVAL_EVERY} steps; "
          f"unsolved seeds count at the budget; seconds = training wall time, evaluations excluded "
          f"(benchmarks/README.md)", flush=True)


def trainer_callback(run: Run, act_of: Callable[[torch.nn.Module], Act],
                     recent_of: Callable[[dict], float] | None = None) -> Callable[[torch.nn.Module, dict], bool]:
    """The ``callback(model, history)`` of our trainers (called after every update): :meth:`Run.after_update`
    on ``history["simulated_steps"]``, the gate on ``recent_of(history)`` (default: ``mean_return``, the
    last ``return_window`` episodes), the evaluation with the action rule ``act_of(model)``."""

    def callback(model, history) -> bool:
        recent = recent_of(history) if recent_of is not None else history["mean_return"][-1]
        return run.after_update(history["simulated_steps"][-1], recent,
                                lambda: evaluate(act_of(model), run.env_id, run.eval_seed()))

    return callback


def sb3_callback(run: Run, act: Act):
    """A Stable-Baselines3 callback that applies :meth:`Run.after_update` *after* each update.

    SB3 updates after a rollout, so the check runs at the start of the next rollout and
    at the end of training (after the last update); the gate reads the last
    :data:`RECENT_EPISODES` episodes of ``ep_info_buffer``; training stops at the next
    step once the run is over (solved, or out of its time share).
    """
    from stable_baselines3.common.callbacks import BaseCallback

    class AfterUpdate(BaseCallback):
        stop = False

        def _check(self) -> None:
            infos = list(self.model.ep_info_buffer)[-RECENT_EPISODES:]
            recent = float(np.mean([i["r"] for i in infos])) if infos else -math.inf
            self.stop = run.after_update(self.model.num_timesteps, recent,
                                         lambda: evaluate(act, run.env_id, run.eval_seed()))

        def _on_rollout_start(self) -> None:
            self._check()

        def _on_training_end(self) -> None:
            self._check()

        def _on_step(self) -> bool:
            return not (self.stop or run.out_of_time())

    return AfterUpdate()


def run_seeds(methods: list[str], seed_list: Iterable[int], run_one: Callable[[str, int, float | None], Run | None],
              max_seconds: float | None) -> tuple[dict[str, list[Run]], dict[str, int]]:
    """Run every method on every seed, interleaved seed by seed (the same process order for all).

    ``run_one(method, seed, time_share)`` trains one seed and returns its finished :class:`Run`
    (or None when the method cannot run here). With ``max_seconds``, each run gets an equal share;
    once the whole budget is spent only the first seed of each method still runs (a smoke run
    goes through every code path) and the rest are skipped (counted in ``seeds_skipped``).
    """
    seed_list = list(seed_list)
    share = None if max_seconds is None else max_seconds / (len(methods) * len(seed_list))
    runs: dict[str, list[Run]] = {m: [] for m in methods}
    skipped: dict[str, int] = {m: 0 for m in methods}
    start = time.perf_counter()
    for i, seed in enumerate(seed_list):
        for method in methods:
            if i > 0 and max_seconds is not None and time.perf_counter() - start > max_seconds:
                skipped[method] += 1
                continue
            run = run_one(method, seed, share)
            if run is not None:
                runs[method].append(run)
                print(run.line(), flush=True)
    return runs, skipped
