"""The numeric checks of Chapter 1 catch the wrong formulas their sentences name.

CHAPTER_STANDARD: a check is *proven falsifiable* by a test that feeds it the wrong
formula its sentence names and asserts that it fails. Each check cell of the master
notebook starts with a marker line ``# CHECK: <label>`` and defines the check as a
function of the implementation under test. These tests read that cell from the
notebook, execute only its imports and ``def`` statements (nothing that trains or
plots), and call the check with the right implementation (it must pass) and with
each wrong one (it must raise ``AssertionError``). The helpers are those of
``tests/test_chapter_checks_rl.py``.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import course_lib
from course_lib import image_flows

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CH1 = "01_change_of_variables_nice.ipynb"


def check_cell(notebook: str, label: str) -> str:
    """The source of the code cell of ``notebook`` that carries the line ``# CHECK: label``."""
    nb = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))
    marker = f"# CHECK: {label}"
    hits = [
        "".join(cell["source"])
        for cell in nb["cells"]
        if cell["cell_type"] == "code" and marker in [line.strip() for line in "".join(cell["source"]).splitlines()]
    ]
    assert len(hits) == 1, f"{notebook}: {len(hits)} code cells carry {marker!r}"
    return hits[0]


def load_check(notebook: str, label: str, **extra_globals) -> dict:
    """Execute only the imports and ``def`` statements of the check cell; return its namespace."""
    tree = ast.parse(check_cell(notebook, label))
    kept = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
    assert any(isinstance(node, ast.FunctionDef) for node in kept), f"{label}: the cell defines no function"
    namespace = {"torch": torch, "np": np, "math": math, "course_lib": course_lib, **extra_globals}
    exec(compile(ast.Module(body=kept, type_ignores=[]), f"{notebook}:{label}", "exec"), namespace)
    return namespace


def fails(check, *args, **kwargs) -> bool:
    """True when the check raises AssertionError (a wrong formula caught)."""
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


# --------------------------------------------------------------------------------------
# eq1-cov-2d: the change of variables in 2-D, x1 = z1, x2 = exp(z1 / 2) z2 + z1^2
# --------------------------------------------------------------------------------------
def _bent_gaussian_samples(n: int, seed: int) -> np.ndarray:
    z = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return torch.stack([z[:, 0], torch.exp(z[:, 0] / 2) * z[:, 1] + z[:, 0] ** 2], dim=1).numpy()


def _p_z_of_f(x1, x2):
    """p_Z(f(x)) with f(x) = (x1, (x2 - x1^2) exp(-x1 / 2)), standard normal p_Z."""
    z2 = (x2 - x1**2) * np.exp(-x1 / 2)
    return np.exp(-0.5 * (x1**2 + z2**2)) / (2 * np.pi)


COV_FORMULAS = {
    "right": lambda x1, x2: _p_z_of_f(x1, x2) * np.exp(-x1 / 2),            # times |det df/dx|
    "without the Jacobian": _p_z_of_f,
    "times |det dx/dz| instead of divided": lambda x1, x2: _p_z_of_f(x1, x2) * np.exp(x1 / 2),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eq1_cov_2d_catches_a_missing_or_inverted_jacobian(seed):
    check = load_check(CH1, "eq1-cov-2d")["check_cov_2d"]
    samples = _bent_gaussian_samples(400_000, seed)
    check(COV_FORMULAS["right"], samples)
    for name in ("without the Jacobian", "times |det dx/dz| instead of divided"):
        assert fails(check, COV_FORMULAS[name], samples), name


def test_eq1_cov_2d_margins_are_wide():
    """The right formula passes with room (under half the tolerance), the wrong one fails by a factor of 3 or more."""
    ns = load_check(CH1, "eq1-cov-2d")
    samples = _bent_gaussian_samples(400_000, 3)
    right = ns["histogram_distance"](COV_FORMULAS["right"], samples)[2]
    wrong = ns["histogram_distance"](COV_FORMULAS["without the Jacobian"], samples)[2]
    assert right < 0.05 and wrong > 0.3, (right, wrong)


# --------------------------------------------------------------------------------------
# eq1-deq-k-draws: the K-draw dequantization bound
# --------------------------------------------------------------------------------------
A, D = 0.9, 4


def _wiggle_log_prob(v):
    """log prod_d [1 + A sin(2 pi 256 v_d)]: P(x) = 256^-D exactly for every 8-bit x."""
    return torch.log1p(A * torch.sin(2 * math.pi * 256 * v.double())).sum(1)


def _draws(log_prob, x, num_draws, generator):
    """(K, B) log-densities at (x + u_k) / 256, drawing u as dequantized_log_likelihood does."""
    out = []
    for _ in range(num_draws):
        u = torch.rand(x.shape, generator=generator)
        out.append(log_prob((x.double() + u.double()).float() / 256.0).double())
    return torch.stack(out)


def averages_log_densities(log_prob, x, num_draws, generator=None):
    """The wrong formula: mean_k log p((x + u_k) / 256) - D log 256 (no gain from more draws)."""
    return _draws(log_prob, x, num_draws, generator).mean(0) - x.shape[1] * math.log(256)


def forgets_log_k(log_prob, x, num_draws, generator=None):
    """The wrong formula: log sum_k p(...) - D log 256, without the - log K (above log P(x) for K > 1)."""
    return torch.logsumexp(_draws(log_prob, x, num_draws, generator), 0) - x.shape[1] * math.log(256)


def _deq_args(seed: int):
    pixels = torch.randint(0, 256, (2000, D), generator=torch.Generator().manual_seed(seed))
    return dict(log_prob=_wiggle_log_prob, pixels=pixels, exact_log_P=-D * math.log(256),
                expected_gap_1=D * math.log(2 / (1 + math.sqrt(1 - A**2))))


@pytest.mark.parametrize("seed", range(5))
def test_eq1_deq_k_draws_catches_averaged_log_densities(seed):
    check = load_check(CH1, "eq1-deq-k-draws")["check_k_draws"]
    args = _deq_args(seed)
    check(image_flows.dequantized_log_likelihood, **args)
    assert fails(check, averages_log_densities, **args)
    assert fails(check, forgets_log_k, **args)


def test_eq1_deq_k_draws_averaged_log_densities_never_pass():
    """The issue's failure mode: the old check passed the averaged-log-density estimator in 21 of 30 seeds."""
    check = load_check(CH1, "eq1-deq-k-draws")["check_k_draws"]
    passed = sum(not fails(check, averages_log_densities, **_deq_args(seed)) for seed in range(100, 130))
    assert passed == 0
