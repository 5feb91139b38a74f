"""Chapter 6's numeric checks added in issue 23 catch the wrong formulas their sentences name.

Same pattern as ``tests/test_chapter_checks_rl.py`` (whose helpers are imported): each check
cell of ``notebooks/06_q_iteration.ipynb`` carries ``# CHECK: <label>``; only its imports and
``def`` statements are executed here, then the check is called with the right implementation
(it passes) and with the wrong one its sentence names (it raises ``AssertionError``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_chapter_checks_rl import fails, load_check  # noqa: E402

from course_lib import rl  # noqa: E402
from course_lib.rl import value_based  # noqa: E402

CH6 = "06_q_iteration.ipynb"
torch.set_num_threads(1)


# --------------------------------------------------------------------------------------
# Baird's counterexample with a target network (section 6.7)
# --------------------------------------------------------------------------------------


def test_baird_target_period_catches_a_target_that_ignores_its_period():
    ns = load_check(CH6, "baird-target-period")
    periods, sweeps = (1, 10, 100, 300), 20_000
    ns["check_target_periods"](rl.baird_target_periods, periods, sweeps)

    def refresh_every_sweep(periods, **kwargs):
        return rl.baird_target_periods([1] * len(periods), **kwargs)

    assert fails(ns["check_target_periods"], refresh_every_sweep, periods, sweeps)
