"""Learned priors of Chapter 3: MixturePriorVAE (a Gaussian mixture) and VampPriorVAE (pseudo-inputs).

Each test names the wrong formula it would catch.
"""

from __future__ import annotations

import math

import pytest
import torch

from course_lib import vae

torch.set_default_dtype(torch.float32)


def mixture(k: int = 3, z: int = 2, seed: int = 0) -> vae.MixturePriorVAE:
    """A small mixture-prior VAE with distinct, non-uniform components."""
    model = vae.MixturePriorVAE(16, z, (8,), prior_components=k)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.prior_means.copy_(3.0 * torch.randn(k, z, generator=g))
        model.prior_logvars.copy_(0.5 * torch.randn(k, z, generator=g))
        model.prior_logits.copy_(torch.randn(k, generator=g))
    return model


def binary(n: int = 6, d: int = 16, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.4).float()


def test_prior_log_prob_is_the_weighted_mixture_density():
    """Catches ignored weights (an unweighted sum), a max instead of a sum, a missing log-softmax."""
    model = mixture()
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
    pi = torch.softmax(model.prior_logits, 0)
    density = sum(pi[k] * vae.diag_gaussian_log_prob(z, model.prior_means[k], model.prior_logvars[k]).exp()
                  for k in range(3))
    torch.testing.assert_close(model.prior_log_prob(z), density.log(), rtol=1e-5, atol=1e-5)
    # the wrong formulas give other values on this mixture
    per = torch.stack([vae.diag_gaussian_log_prob(z, model.prior_means[k], model.prior_logvars[k]) for k in range(3)], -1)
    assert not torch.allclose(model.prior_log_prob(z), torch.logsumexp(per, -1) - math.log(3), atol=1e-3)
    assert not torch.allclose(model.prior_log_prob(z), per.max(-1).values, atol=1e-3)


def test_prior_density_integrates_to_one_in_one_dimension():
    """A normalized density: catches a missing 2 pi or a variance used as a standard deviation."""
    model = mixture(k=4, z=1)
    grid = torch.linspace(-30, 30, 200_001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        p = model.double().prior_log_prob(grid).exp()
    assert float(torch.trapezoid(p, grid[:, 0])) == pytest.approx(1.0, abs=1e-6)


def test_sample_prior_matches_the_mixture_moments():
    """Catches samples with the wrong component weights or the variance where the std belongs."""
    model = mixture(k=3, z=2)
    z = model.sample_prior(200_000, torch.Generator().manual_seed(0))
    pi = torch.softmax(model.prior_logits.detach(), 0)[:, None]
    m, var = model.prior_means.detach(), model.prior_logvars.detach().exp()
    mean = (pi * m).sum(0)
    second = (pi * (var + m**2)).sum(0)
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(z.var(0), second - mean**2, atol=0.1, rtol=0.01)


def test_sample_prior_uses_the_standard_deviation():
    """One component with log-variances (1, -1): catches exp(logvar) used as the standard deviation."""
    model = vae.MixturePriorVAE(16, 2, (8,), prior_components=1)
    with torch.no_grad():
        model.prior_means.copy_(torch.tensor([[1.0, -2.0]])); model.prior_logvars.copy_(torch.tensor([[1.0, -1.0]]))
    z = model.sample_prior(100_000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(z.var(0), torch.tensor([math.e, 1 / math.e]), atol=0, rtol=0.03)


def test_sample_prior_with_a_cpu_generator_is_reproducible():
    model = mixture()
    a = model.sample_prior(10, torch.Generator().manual_seed(3))
    b = model.sample_prior(10, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (10, 2)


def test_one_sample_kl_is_unbiased_for_the_closed_form():
    """With one component at N(0, I), the mean of the one-sample KL estimate is the closed form of
    gaussian_kl; an estimate with the sign of log p flipped, or log q left out, is far off."""
    model = vae.MixturePriorVAE(16, 3, (8,), prior_components=1)
    with torch.no_grad():
        model.prior_means.zero_(); model.prior_logvars.zero_()
    x = binary(4).repeat(5000, 1)
    mu, logvar = model.encode(x)
    _, kl = model.elbo_terms(x, torch.Generator().manual_seed(0))
    exact = vae.gaussian_kl(mu[:4], logvar[:4])
    estimate = kl.reshape(5000, 4).mean(0)
    torch.testing.assert_close(estimate, exact, atol=0.05, rtol=0)


def test_the_iwae_bound_uses_the_learned_prior():
    """K = 1 at N(0, I) gives the plain VAE's bound on the same draws; moving the prior changes it
    (a bound that kept N(0, I) would not move)."""
    torch.manual_seed(0)
    plain = vae.VAE(16, 3, (8,))
    mix = vae.MixturePriorVAE(16, 3, (8,), prior_components=1)
    mix.load_state_dict({**plain.state_dict(), "prior_means": torch.zeros(1, 3),
                         "prior_logvars": torch.zeros(1, 3), "prior_logits": torch.zeros(1)})
    x = binary()
    a = plain.iwae_bound(x, 20, torch.Generator().manual_seed(5))
    b = mix.iwae_bound(x, 20, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        mix.prior_means.fill_(2.0)
    c = mix.iwae_bound(x, 20, torch.Generator().manual_seed(5))
    assert (c - a).abs().min() > 0.1


def test_vamp_prior_components_are_the_encoder_at_the_pseudo_inputs():
    """Catches pseudo-inputs fed without their sigmoid, or weights that are not uniform."""
    model = vae.VampPriorVAE(16, 2, (8,), prior_components=5)
    means, logvars, log_weights = model.prior_mixture()
    mu, lv = model.encoder(torch.sigmoid(model.pseudo_logits)).chunk(2, -1)
    torch.testing.assert_close(means, mu); torch.testing.assert_close(logvars, lv)
    torch.testing.assert_close(log_weights.exp(), torch.full((5,), 0.2))
    raw_mu, _ = model.encoder(model.pseudo_logits).chunk(2, -1)
    assert not torch.allclose(means, raw_mu, atol=1e-3)


def test_vamp_prior_gradient_reaches_the_pseudo_inputs():
    model = vae.VampPriorVAE(16, 2, (8,), prior_components=5)
    model.elbo(binary(), generator=torch.Generator().manual_seed(0)).mean().backward()
    assert model.pseudo_logits.grad is not None and model.pseudo_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [vae.MixturePriorVAE, vae.VampPriorVAE])
def test_learned_prior_round_trip(tmp_path, cls):
    model = cls(16, 2, (8,), prior_components=4)
    sha = vae.save_pretrained(model, tmp_path / "m.pt", note="x")
    back, meta = vae.load_pretrained(tmp_path / "m.pt", sha)
    assert type(back) is cls and back.prior_components == 4 and meta == {"note": "x"}
    z = torch.randn(3, 2)
    # float16 weights in the file: the densities agree to float16 precision
    torch.testing.assert_close(back.prior_log_prob(z), model.prior_log_prob(z).detach(), atol=2e-2, rtol=1e-2)


def test_free_bits_is_refused_with_a_learned_prior():
    model = vae.MixturePriorVAE(16, 2, (8,), prior_components=2)
    images = torch.randint(0, 256, (20, 16), dtype=torch.uint8)
    with pytest.raises(ValueError, match="free_bits"):
        vae.train_vae(model, images, vae.VAEConfig(epochs=1, free_bits=0.5, progress=False))


def test_bad_prior_components_is_named():
    with pytest.raises(ValueError, match="prior_components"):
        vae.MixturePriorVAE(16, 2, (8,), prior_components=0)
    with pytest.raises(ValueError, match="prior_components"):
        vae.VampPriorVAE(16, 2, (8,), prior_components=-1)


def test_training_moves_the_learned_prior_towards_the_codes():
    """After training, the learned prior scores the encoder's codes higher than N(0, I) does
    (it fails if the prior's parameters get no gradient or are not in the optimizer)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    centres = torch.randint(0, 2, (4, 16), generator=g) * 255
    images = centres[torch.randint(0, 4, (400,), generator=g)].to(torch.uint8)
    model = vae.MixturePriorVAE(16, 2, (16,), prior_components=4)
    before = model.prior_means.detach().clone()
    model, _ = vae.train_vae(model, images, vae.VAEConfig(epochs=30, batch_size=50, lr=1e-2, progress=False))
    assert not torch.allclose(before, model.prior_means.detach())
    mu, _ = model.encode((images[:100] > 127).float())
    with torch.no_grad():
        assert model.prior_log_prob(mu).mean() > vae.standard_normal_log_prob(mu).mean()


SHIPPED_VAMP = "58dddd7d08708dddfaa724a93820da847951d925061232004d0fe7e6086ad0c5"


def test_shipped_vamp_prior_vae_loads_and_draws_digits():
    """The file Chapter 3 ships (issue 22's contract: under course_lib/assets/, "vae" in its name,
    vae.load_pretrained -> (model, metadata), at most 2 MB) and its own samples read as digits."""
    import importlib.resources
    import os

    from course_lib import quality

    path = importlib.resources.files("course_lib") / "assets" / "vae_vamp_mnist.pt"
    assert os.path.getsize(path) <= 2_000_000
    model, meta = vae.load_pretrained(path, sha256=SHIPPED_VAMP)
    assert type(model) is vae.VampPriorVAE and model.prior_components == 200 and not model.training
    assert meta["inception_score"] >= 8.0 and meta["confident_fraction"] >= 0.7 and meta["seed"] == 0
    with torch.no_grad():
        means = torch.sigmoid(model.decode(model.sample_prior(300, torch.Generator().manual_seed(5))))
    q = quality.sample_quality(means)
    assert q["inception_score"] > 7.5 and q["confident_fraction"] > 0.7, q
