"""The decoder likelihoods for grey-level pixels (issue 22 §4): ``vae.discretized_logistic_log_prob``
and ``vae.GreyVAE`` (Gaussian or discretized-logistic decoder). Each test fails when the formula,
the sampler or the data path is wrong."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import vae

LEVELS = torch.arange(256, dtype=torch.float64) / 255


def _probs(loc: float, log_scale: float, num_bins: int = 256) -> torch.Tensor:
    levels = torch.arange(num_bins, dtype=torch.float64) / (num_bins - 1)
    lp = vae.discretized_logistic_log_prob(levels[:, None], torch.tensor([[loc]], dtype=torch.float64),
                                           torch.tensor([[log_scale]], dtype=torch.float64), num_bins=num_bins)
    return lp.exp()


@pytest.mark.parametrize("loc, log_scale", [(0.0, -3.0), (1.0, -2.0), (0.5, -9.0), (0.3, 0.5), (0.02, -6.5),
                                            (3.0, -4.0), (-2.0, 1.0), (100 / 255, -8.0)])
def test_discretized_logistic_sums_to_one_over_the_levels(loc, log_scale):
    p = _probs(loc, log_scale)
    assert (p >= 0).all() and abs(p.sum().item() - 1) < 1e-12


def test_discretized_logistic_two_levels_is_the_logistic_cdf_at_the_midpoint():
    """num_bins = 2: P(0) = sigmoid((1/2 - loc) / s), the whole mass below the midpoint."""
    for loc, log_scale in [(0.2, -1.0), (0.9, 0.3), (0.5, -2.0)]:
        p = _probs(loc, log_scale, num_bins=2)
        assert p[0].item() == pytest.approx(1 / (1 + math.exp(-(0.5 - loc) / math.exp(log_scale))), abs=1e-12)


def test_discretized_logistic_interior_level_is_the_bin_mass_and_the_edges_take_the_tails():
    loc, s = 0.4, 0.05
    p = _probs(loc, math.log(s))
    sig = lambda t: 1 / (1 + math.exp(-t))
    h = 0.5 / 255
    for k in (1, 50, 102, 200, 254):
        assert p[k].item() == pytest.approx(sig((k / 255 + h - loc) / s) - sig((k / 255 - h - loc) / s), abs=1e-14)
    assert p[0].item() == pytest.approx(sig((h - loc) / s), abs=1e-14)
    assert p[255].item() == pytest.approx(1 - sig((1 - h - loc) / s), abs=1e-14)


def test_discretized_logistic_float32_stays_finite_with_finite_gradients():
    loc = torch.tensor([[-5.0, 0.0, 0.5, 1.0, 6.0]], requires_grad=True)
    log_scale = torch.tensor([[-7.0, -7.0, -7.0, 2.0, -3.0]], requires_grad=True)
    x = torch.tensor([[1.0, 1.0, 0.0, 128 / 255, 0.0]])             # far in every tail
    lp = vae.discretized_logistic_log_prob(x, loc, log_scale)
    lp.backward()
    assert torch.isfinite(lp).all() and torch.isfinite(loc.grad).all() and torch.isfinite(log_scale.grad).all()
    assert lp.item() < -100                                          # tails this far are very improbable


@pytest.mark.parametrize("bad, match", [(torch.tensor([[0.5 / 255]]), "grey levels"), (torch.tensor([[1.5]]), "grey levels"),
                                        (torch.tensor([[float("nan")]]), "NaN")])
def test_discretized_logistic_refuses_values_off_the_grid(bad, match):
    with pytest.raises(ValueError, match=match):
        vae.discretized_logistic_log_prob(bad, torch.zeros(1, 1), torch.zeros(1, 1))


def test_discretized_logistic_refuses_bad_shapes_and_bins():
    with pytest.raises(ValueError, match="broadcast"):
        vae.discretized_logistic_log_prob(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="num_bins"):
        vae.discretized_logistic_log_prob(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), num_bins=1)


def _tiny(likelihood, **kw):
    torch.manual_seed(0)
    return vae.GreyVAE(12, 3, (16,), likelihood=likelihood, **kw).double()


def test_logistic_draws_follow_the_model_probabilities():
    """sample_pixels draws each level with the probability log_px_given_z gives it (frequencies within 5 s.e.)."""
    model = _tiny("logistic")
    with torch.no_grad():
        model.decoder[-1].bias[12:] = math.log(0.02)                     # narrow scales: a few levels matter
    z = torch.zeros(1, 3, dtype=torch.float64)
    n = 20_000
    draws = model.sample_pixels(z.expand(n, 3), torch.Generator().manual_seed(0))  # (n, 12)
    assert torch.equal(draws, (draws * 255).round() / 255) and draws.min() >= 0 and draws.max() <= 1
    loc, log_scale = model._params(z)
    for d in (0, 5):
        probs = vae.discretized_logistic_log_prob(LEVELS[:, None], loc[:, d:d + 1], log_scale[:, d:d + 1]).exp()
        freq = torch.bincount((draws[:, d] * 255).round().long(), minlength=256).double() / n
        top = probs.argsort(descending=True)[:5]
        se = (probs[top] * (1 - probs[top]) / n).sqrt()
        assert ((freq[top] - probs[top]).abs() < 5 * se + 1e-4).all(), (freq[top], probs[top])


def test_gaussian_decoder_draws_and_likelihood():
    """Fixed sigma: log p(x | z) is eq-vae-gaussian-decoder, and draws have mean mu(z) and std sigma."""
    model = _tiny("gaussian", sigma=0.2)
    z = torch.randn(1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(2)).double() / 255
    mu = model.decode(z)
    by_hand = -((x - mu) ** 2).sum() / (2 * 0.04) - 12 * math.log(0.2 * math.sqrt(2 * math.pi))
    assert model.log_px_given_z(z, x).item() == pytest.approx(by_hand.item(), abs=1e-9)
    draws = model.sample_pixels(z.expand(20_000, 3), torch.Generator().manual_seed(3))
    assert (draws.mean(0) - mu[0]).abs().max() < 0.01 and (draws.std(0) - 0.2).abs().max() < 0.01
    assert model.mean_image(z).min() >= 0 and model.mean_image(z).max() <= 1


def test_learned_sigma_trains_and_the_elbo_rises():
    """train_vae on 8-bit digits feeds a GreyVAE the grey levels; sigma gets gradients and the bound improves."""
    g = torch.Generator().manual_seed(0)
    prototypes = torch.tensor([[0, 200] * 6, [255, 0, 0] * 4], dtype=torch.uint8)   # two "digits"
    images = prototypes[torch.randint(0, 2, (64,), generator=g)]
    for likelihood in ("gaussian", "logistic"):
        torch.manual_seed(0)
        model = vae.GreyVAE(12, 3, (16,), likelihood=likelihood)
        sigma0 = model.log_sigma.item() if likelihood == "gaussian" else None
        model, hist = vae.train_vae(model, images, vae.VAEConfig(epochs=30, batch_size=16, lr=1e-2, seed=0, progress=False))
        assert hist["train_bound"][-1] > hist["train_bound"][0] + 3, (likelihood, hist["train_bound"])
        if likelihood == "gaussian":
            assert model.log_sigma.item() != sigma0
        bound = vae.evaluate_bounds(model, images[:8].double() / 255, 3, generator=torch.Generator().manual_seed(1))
        assert bound.shape == (8,) and torch.isfinite(bound).all()
        if likelihood == "logistic":
            assert (bound < 0).all()                                   # a probability of discrete pixels


def test_grey_vae_refuses_bad_arguments_and_data():
    with pytest.raises(ValueError, match="likelihood"):
        vae.GreyVAE(12, 3, (16,), likelihood="poisson")
    with pytest.raises(ValueError, match="sigma"):
        vae.GreyVAE(12, 3, (16,), likelihood="logistic", sigma=0.1)
    with pytest.raises(ValueError, match="sigma"):
        vae.GreyVAE(12, 3, (16,), likelihood="gaussian", sigma=0.0)
    model = _tiny("logistic")
    with pytest.raises(ValueError, match="grey levels"):
        model.elbo(torch.full((2, 12), 3.0, dtype=torch.float64))     # raw 0..255 pixels, not divided by 255
    with pytest.raises(ValueError, match="0..255"):
        vae.train_vae(vae.GreyVAE(12, 3, (16,)), torch.full((4, 12), 300, dtype=torch.int16),
                      vae.VAEConfig(epochs=1, progress=False))
    with pytest.raises(ValueError, match="0 and 1"):                   # a binary VAE still refuses grey levels
        vae.evaluate_bounds(vae.VAE(12, 3, (16,)), torch.full((2, 12), 0.5), 1)
