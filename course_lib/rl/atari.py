"""Chapter 7: the Atari pipeline of DQN (ale-py ships the ROMs).

:func:`make_atari_env` builds ``ALE/<Game>-v5`` with ``frameskip=1`` and wraps it
in gymnasium's ``AtariPreprocessing`` (no-op starts, max-pooled frame skip of 4,
grayscale, 84x84) and ``FrameStackObservation`` (the last 4 frames are the
state, so that velocities can be seen). Observations are uint8 ``(4, 84, 84)``.

Training uses sticky actions (``repeat_action_probability=0.25``) and the life-loss
signal is *not* used as an episode end, as Machado et al. (2018) recommend for
evaluation; the same setting is used for training here, for simplicity.

The emulator prints a banner ("A.L.E: Arcade Learning Environment ... [Powered by
Stella]") on C++'s stderr when the first game is loaded; :func:`make_atari_env` sets
ale-py's logger to errors only (``ALEInterface.setLoggerMode(LoggerMode.Error)``,
process-wide), so a notebook's output has no stderr box and errors still print.

References:
    M. G. Bellemare et al., "The Arcade Learning Environment", JAIR 47, 2013.
    M. C. Machado et al., "Revisiting the Arcade Learning Environment", JAIR 61, 2018
    (section 5: sticky actions, no life-loss signal).
    V. Mnih et al. 2015, Methods ("Preprocessing") and Extended Data Table 1.
"""

from __future__ import annotations

import gymnasium as gym

from course_lib import checks

__all__ = ["make_atari_env"]


def _quiet_ale(ale_py) -> None:
    """Let the emulator print errors only: no version banner on C++'s stderr (process-wide).

    Args:
        ale_py: the imported ``ale_py`` module.

    References:
        ale-py's ``ALEInterface.setLoggerMode`` and ``LoggerMode`` (Info, Warning, Error).
    """
    set_mode = getattr(getattr(ale_py, "ALEInterface", None), "setLoggerMode", None)
    mode = getattr(getattr(ale_py, "LoggerMode", None), "Error", None)
    if set_mode is not None and mode is not None:  # older ale-py without it: the banner stays
        set_mode(mode)


def make_atari_env(env_id: str = "ALE/Pong-v5", *, frame_stack: int = 4, evaluation: bool = False,
                   repeat_action_probability: float = 0.25, noop_max: int = 30, screen_size: int = 84,
                   render_mode: str | None = None) -> gym.Env:
    """One Atari env with the Nature DQN preprocessing; observations uint8 ``(frame_stack, 84, 84)``.

    Args:
        env_id: an ``ALE/...-v5`` id (``"ALE/Pong-v5"``, ``"ALE/Breakout-v5"``).
        frame_stack: frames stacked into one state (4 in the paper).
        evaluation: kept for symmetry (the settings are the same: sticky actions, no
            life-loss episode ends).
        repeat_action_probability: sticky actions (0.25, Machado et al. 2018).
        noop_max: random no-ops at reset (30 in the paper).
        screen_size: side of the square frame (84).
        render_mode: passed to ``gym.make`` (``"rgb_array"`` to get the raw frames).

    Raises:
        ValueError: naming the argument; ImportError (with the fix) when ale-py is missing.

    References:
        Mnih et al. 2015, Methods ("Preprocessing": max over 2 frames, 84x84 luminance, m = 4);
        Machado et al. 2018, section 5.
    """
    if not isinstance(env_id, str) or not env_id.startswith("ALE/"):
        raise ValueError(f"env_id must be an 'ALE/<Game>-v5' id, got {env_id!r}")
    frame_stack = checks.positive_int("frame_stack", frame_stack)
    checks.unit_interval("repeat_action_probability", repeat_action_probability)
    checks.nonnegative_int("noop_max", noop_max)
    checks.positive_int("screen_size", screen_size)
    try:
        import ale_py
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError("the Atari pipeline needs ale-py (it ships the ROMs): pip install ale-py") from err
    _quiet_ale(ale_py)
    gym.register_envs(ale_py)
    env = gym.make(env_id, frameskip=1, repeat_action_probability=repeat_action_probability,
                   render_mode=render_mode)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=noop_max, frame_skip=4, screen_size=screen_size,
                                          terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    return gym.wrappers.FrameStackObservation(env, frame_stack)
