"""Tests for course_lib.image_flows: checkerboard masks, logit preprocessing, ImageRealNVP, the dequantization bound."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks, flows, image_flows

torch.set_num_threads(1)


@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([0, 1]))
@settings(max_examples=40, deadline=None)
def test_checkerboard_neighbours_differ(h, w, parity):
    if h * w < 2:
        return
    grid = image_flows.checkerboard_mask(h, w, parity).reshape(h, w)
    assert grid[0, 0].item() == (parity == 0)
    if w > 1:
        assert torch.all(grid[:, 1:] != grid[:, :-1])  # horizontal neighbours alternate
    if h > 1:
        assert torch.all(grid[1:] != grid[:-1])  # vertical neighbours alternate
    assert torch.equal(image_flows.checkerboard_mask(h, w, 1 - parity), ~grid.flatten())


@given(st.integers(1, 4), st.integers(1, 6), st.floats(0.001, 0.45))
@settings(max_examples=25, deadline=None)
def test_logit_log_det_matches_autograd_and_inverse(B, D, alpha):
    gen = torch.Generator().manual_seed(B * 10 + D)
    x = torch.rand(B, D, generator=gen, dtype=torch.float64)
    y, log_det = image_flows.logit_transform(x, alpha)
    for b in range(B):
        J = torch.autograd.functional.jacobian(lambda v: image_flows.logit_transform(v[None], alpha)[0][0], x[b])
        assert torch.allclose(log_det[b], torch.linalg.slogdet(J).logabsdet, atol=1e-8)
    layer = image_flows.LogitTransform(alpha)
    x_back, log_det_inv = layer.inverse(y)
    assert torch.allclose(x_back, x, atol=1e-9)
    assert torch.allclose(log_det + log_det_inv, torch.zeros(B, dtype=torch.float64), atol=1e-8)


def test_logit_worked_example():
    _, log_det = image_flows.logit_transform(torch.tensor([[0.5]]), 0.05)
    assert abs(log_det.item() - (math.log(0.9) + 2 * math.log(2))) < 1e-5


def test_image_realnvp_log_prob_is_change_of_variables():
    torch.manual_seed(0)
    model = image_flows.ImageRealNVP(4, 4, num_coupling=2, hidden_dim=8, num_hidden=1).double()
    with torch.no_grad():
        for layer in model.layers[1:]:
            for p in layer.net[-1].parameters():
                p.normal_(std=0.3)
    x = torch.rand(3, 16, dtype=torch.float64) * 0.9 + 0.05
    J = torch.autograd.functional.jacobian(lambda v: model(v[None])[0][0], x[0])
    z, _ = model(x)
    expected = flows.standard_normal_log_prob(z[0]).sum() + torch.linalg.slogdet(J).logabsdet
    assert torch.allclose(model.log_prob(x)[0], expected, atol=1e-8)
    assert torch.allclose(model.inverse(z), x, atol=1e-8)
    assert isinstance(model.layers[1], flows.AffineCoupling) and torch.equal(model.layers[1].mask, image_flows.checkerboard_mask(4, 4, 0))


def test_dequantized_bound_uniform_is_8_bits_and_k_tightens():
    x = torch.randint(0, 256, (5, 7))
    zero = lambda b: torch.zeros(len(b))
    for K in (1, 3):
        ll = image_flows.dequantized_log_likelihood(zero, x, K)
        assert torch.allclose(-ll / (7 * math.log(2)), torch.full((5,), 8.0, dtype=torch.float64), atol=1e-12)
    # a density that is not constant inside a cell: the K-draw estimate is larger on average (Jensen)
    bumpy = lambda b: (20 * torch.sin(b * 256 * 2 * math.pi)).sum(1)
    one = torch.stack([image_flows.dequantized_log_likelihood(bumpy, x, 1, torch.Generator().manual_seed(s)) for s in range(20)]).mean()
    many = torch.stack([image_flows.dequantized_log_likelihood(bumpy, x, 32, torch.Generator().manual_seed(s)) for s in range(20)]).mean()
    assert many > one + 1.0


@pytest.mark.parametrize("call, exc, name", [
    (lambda: image_flows.checkerboard_mask(0, 3, 0), ValueError, "height"),
    (lambda: image_flows.checkerboard_mask(3, 2.5, 0), ValueError, "width"),
    (lambda: image_flows.checkerboard_mask(3, 3, 2), ValueError, "parity"),
    (lambda: image_flows.checkerboard_mask(1, 1, 0), ValueError, "height * width"),
    (lambda: image_flows.logit_transform(torch.rand(2, 3), 0.5), ValueError, "alpha"),
    (lambda: image_flows.logit_transform(torch.rand(2, 3), -0.1), ValueError, "alpha"),
    (lambda: image_flows.logit_transform(torch.rand(2, 3) + 1.5), ValueError, "x"),
    (lambda: image_flows.logit_transform(torch.rand(3)), ValueError, "x"),
    (lambda: image_flows.logit_transform([[0.5]]), checks.ArgumentTypeError, "x"),
    (lambda: image_flows.logit_transform(torch.tensor([[0.5, float("nan")]])), ValueError, "^x contains 1 NaN"),
    (lambda: image_flows.logit_transform(torch.tensor([[float("inf"), 0.5]])), ValueError, "^x contains 0 NaN and 1 inf"),
    (lambda: image_flows.LogitTransform().inverse(torch.tensor([[float("nan"), 0.5]])), ValueError, "^y contains 1 NaN"),
    (lambda: image_flows.LogitTransform(0.7), ValueError, "alpha"),
    (lambda: image_flows.ImageRealNVP(28, 28, num_coupling=0), ValueError, "num_coupling"),
    (lambda: image_flows.dequantized_log_likelihood(lambda b: torch.zeros(len(b)), torch.rand(2, 3), 1), ValueError, "x"),
    (lambda: image_flows.dequantized_log_likelihood(lambda b: torch.zeros(len(b)), torch.full((2, 3), 300), 1), ValueError, "x"),
    (lambda: image_flows.dequantized_log_likelihood(lambda b: torch.zeros(len(b)), torch.zeros(2, 3, dtype=torch.long), 0), ValueError, "num_draws"),
    (lambda: image_flows.dequantized_log_likelihood(lambda b: torch.zeros(3), torch.zeros(2, 3, dtype=torch.long), 1), ValueError, "log_prob"),
    (lambda: image_flows.dequantized_log_likelihood(5, torch.zeros(2, 3, dtype=torch.long), 1), TypeError, "log_prob"),
    (lambda: image_flows.dequantized_log_likelihood(lambda b: torch.full((2,), float("nan")), torch.zeros(2, 3, dtype=torch.long), 1),
     ValueError, "^log_prob returned 2 NaN"),
])
def test_bad_inputs(call, exc, name):
    with pytest.raises(exc, match=name.replace("*", r"\*")):
        call()


def test_logit_transform_accepts_the_closed_interval_and_minus_inf_log_prob():
    """The new checks refuse NaN, not valid edge values: x = 0 and 1, and a zero density (-inf)."""
    y, log_det = image_flows.logit_transform(torch.tensor([[0.0, 1.0], [0.5, 0.25]]))
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all()
    x, _ = image_flows.LogitTransform().inverse(torch.tensor([[math.inf, -math.inf]]))
    assert torch.allclose(x, torch.tensor([[0.95 / 0.9, -0.05 / 0.9]]))
    ll = image_flows.dequantized_log_likelihood(lambda b: torch.full((len(b),), -math.inf), torch.zeros(2, 3, dtype=torch.long), 1)
    assert torch.equal(ll, torch.full((2,), -math.inf, dtype=torch.float64))
