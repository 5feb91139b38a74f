"""Policy snapshots at fractions of the training budget, shared by the RL trainers (REINFORCE, ES, A2C/PPO, DQN).

Chapter 4's widget replays the policy at 0 %, 25 %, 50 % and 100 % of training: a
trainer given ``checkpoint_fractions=(0.0, 0.25, 0.5, 1.0)`` keeps a copy of the
policy's ``state_dict`` the first time ``env_steps >= f * total_steps`` for each
``f``. These in-memory snapshots are *not* the resumable checkpoint file of
:mod:`course_lib.training` (that one is ``checkpoint_path``).
"""

from __future__ import annotations

from torch import nn

__all__: list[str] = []  # private helpers of the trainers


def take_snapshots(
    snapshots: list,
    policy: nn.Module | dict[str, nn.Module],
    fractions: tuple[float, ...],
    next_index: int,
    env_steps: int,
    total_steps: int,
    force: bool = False,
) -> int:
    """Append ``{"fraction", "env_steps", "state_dict"}`` for every fraction reached; return the next index.

    Args:
        snapshots: the list to append to (``history["checkpoints"]``).
        policy: the module whose ``state_dict`` is copied (to the CPU), or a dict
            ``{key: module}`` whose state dicts are stored under those keys instead of
            ``"state_dict"`` (A2C keeps ``"policy"`` and ``"value"``, DQN ``"q_network"``).
        fractions: strictly increasing floats in ``[0, 1]``.
        next_index: index of the first fraction not yet saved.
        env_steps: environment steps so far.
        total_steps: the training budget in environment steps.
        force: save every remaining fraction now (training stopped before the budget).
    """
    modules = policy if isinstance(policy, dict) else {"state_dict": policy}
    while next_index < len(fractions) and (force or env_steps >= fractions[next_index] * total_steps):
        snapshots.append(
            {
                "fraction": fractions[next_index],
                "env_steps": int(env_steps),
                **{key: {k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for key, m in modules.items()},
            }
        )
        next_index += 1
    return next_index


def end_update(run, state: dict, *, policy: nn.Module, snapshots: list, fractions: tuple[float, ...],
               total_steps: int, checkpoint_every: int, steps_this_update: int, callback=None) -> bool:
    """The end of one update of REINFORCE or ES, shared by both loops; returns whether to stop.

    In order: take the policy snapshots now reached; end the training step at a
    consistent boundary (counters, bar, time budget, Ctrl-C), advancing the bar by
    the env steps of this update (capped at ``total_steps``); write the checkpoint
    every ``checkpoint_every`` updates; then ask ``callback(policy, history)``,
    whose true answer stops the run with ``stop_reason == "callback"``.

    Args:
        run: the loop's :class:`course_lib.training.TrainingRun` (its last history
            entry has ``mean_return``).
        state: the loop's state dict (``env_steps`` already counts this update;
            ``next_snapshot`` is updated here).
        steps_this_update: env steps that this update counted in ``state["env_steps"]``.
    """
    state["next_snapshot"] = take_snapshots(
        snapshots, policy, fractions, state["next_snapshot"], state["env_steps"], total_steps
    )
    before = state["env_steps"] - steps_this_update
    stop = run.end_step(  # a consistent boundary: counters, bar, time budget, Ctrl-C
        state,
        advance=max(min(state["env_steps"], total_steps) - before, 0),
        mean_return=run.history["mean_return"][-1],
    )
    if run.step % checkpoint_every == 0:
        run.save(state)
    if callback is not None and callback(policy, run.history) and not stop:
        run.stop("callback")
        stop = True
    return stop
