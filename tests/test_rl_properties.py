"""Property tests (hypothesis) for the RL math: ``reward_to_go`` against a naive double loop."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from course_lib import rl


def naive_reward_to_go(rewards: np.ndarray, gamma: float, dones: np.ndarray | None) -> np.ndarray:
    """G_t = sum_{k=t}^{end(t)} gamma^(k-t) r_k, end(t) = the first k >= t with dones[k], else T-1."""
    rows = np.atleast_2d(rewards)
    done_rows = np.zeros_like(rows, dtype=bool) if dones is None else np.atleast_2d(dones).astype(bool)
    out = np.zeros_like(rows, dtype=np.float64)
    for i in range(rows.shape[0]):
        T = rows.shape[1]
        for t in range(T):
            total, discount = 0.0, 1.0
            for k in range(t, T):
                total += discount * rows[i, k]
                discount *= gamma
                if done_rows[i, k]:
                    break
            out[i, t] = total
    return out.reshape(rewards.shape)


@st.composite
def episodes(draw):
    shape = draw(st.one_of(st.tuples(st.integers(1, 25)), st.tuples(st.integers(1, 4), st.integers(1, 25))))
    rewards = draw(hnp.arrays(np.float64, shape, elements=st.floats(-100, 100, allow_nan=False)))
    gamma = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
    dones = draw(st.one_of(st.none(), hnp.arrays(np.bool_, shape)))
    return rewards, gamma, dones


@settings(max_examples=200, deadline=None)
@given(episodes(), st.sampled_from(["tensor", "numpy", "float-dones"]))
def test_reward_to_go_matches_naive_loop(case, form):
    rewards, gamma, dones = case
    expected = naive_reward_to_go(rewards, gamma, dones)
    if form == "tensor":
        args = (torch.from_numpy(rewards), gamma, None if dones is None else torch.from_numpy(dones))
    elif form == "numpy":
        args = (rewards, gamma, dones)
    else:  # 0.0/1.0 float flags mean the same as booleans
        args = (torch.from_numpy(rewards), gamma, None if dones is None else torch.from_numpy(dones.astype(np.float32)))
    got = rl.reward_to_go(*args)
    assert got.shape == rewards.shape and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(episodes())
def test_reward_to_go_splits_exactly_at_dones(case):
    """Cutting a row after each done and computing each piece alone gives the same G."""
    rewards, gamma, dones = case
    if dones is None or rewards.ndim != 1:
        return
    whole = rl.reward_to_go(rewards, gamma, dones).numpy()
    pieces, start = [], 0
    for end in [*np.flatnonzero(dones), len(rewards) - 1]:
        if end >= start:
            pieces.append(rl.reward_to_go(rewards[start : end + 1], gamma).numpy())
            start = end + 1
    np.testing.assert_allclose(whole, np.concatenate(pieces), rtol=1e-12, atol=1e-9)
