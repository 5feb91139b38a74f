"""Property tests of course_lib.vae: the Gaussian KL, the reparameterization, the bounds, pPCA, training."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import training, vae

torch.set_num_threads(1)


def _binary(b, d, seed=0):
    return (torch.rand(b, d, generator=torch.Generator().manual_seed(seed)) < 0.3).float()


def _mu_logvar(b, z, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, z, generator=g, dtype=torch.float64), torch.randn(b, z, generator=g, dtype=torch.float64)


# ----------------------------------------------------------------------------
# Gaussian KL, reparameterization, log-mean-exp
# ----------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 5), z=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_gaussian_kl_matches_torch_distributions(b, z, seed):
    mu, logvar = _mu_logvar(b, z, seed)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    got = vae.gaussian_kl(mu, logvar)
    assert got.shape == (b,)
    assert torch.allclose(got, expected, atol=1e-10)
    assert (got >= 0).all()


def test_gaussian_kl_zero_only_at_prior_and_matches_monte_carlo():
    assert torch.equal(vae.gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)), torch.zeros(3))
    mu, logvar = torch.tensor([[0.7, -1.2]], dtype=torch.float64), torch.tensor([[-0.5, 0.8]], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 2, generator=g, dtype=torch.float64)
    log_ratio = vae.diag_gaussian_log_prob(z, mu, logvar) - vae.standard_normal_log_prob(z)
    se = log_ratio.std() / math.sqrt(len(log_ratio))
    assert abs(log_ratio.mean() - vae.gaussian_kl(mu, logvar)[0]) < 4 * se


def test_reparameterize_distribution_gradient_and_generator():
    mu = torch.tensor([[1.0, -2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, math.log(4.0)]], requires_grad=True)
    z = vae.reparameterize(mu.expand(50_000, 2), logvar.expand(50_000, 2), torch.Generator().manual_seed(0))
    assert z.shape == (50_000, 2)
    assert torch.allclose(z.mean(0), torch.tensor([1.0, -2.0]), atol=0.03)
    assert torch.allclose(z.std(0), torch.tensor([1.0, 2.0]), atol=0.03)
    z.sum().backward()
    assert torch.allclose(mu.grad, torch.full((1, 2), 50_000.0))
    assert logvar.grad is not None and torch.isfinite(logvar.grad).all()
    a = vae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.Generator().manual_seed(5))
    b = vae.reparameterize(torch.zeros(2, 3), torch.zeros(2, 3), torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@settings(max_examples=30, deadline=None)
@given(k=st.integers(1, 8), shift=st.floats(-2000, 2000))
def test_log_mean_exp_stable_and_shift_equivariant(k, shift):
    w = torch.randn(k, 3, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
    naive = torch.log(torch.exp(w).mean(0))
    assert torch.allclose(vae.log_mean_exp(w), naive, atol=1e-10)
    shifted = vae.log_mean_exp(w + shift)
    assert torch.isfinite(shifted).all()
    assert torch.allclose(shifted, naive + shift, atol=1e-8 * max(1.0, abs(shift)))
    assert (vae.log_mean_exp(w) <= w.max(0).values + 1e-12).all()  # a mean never exceeds the max


def test_iwae_asymptotic_gap_matches_simulation():
    s2, k = 0.5, 200
    lw = math.sqrt(s2) * torch.randn(20_000, k, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gap = s2 / 2 - vae.log_mean_exp(lw, dim=1)   # log p(x) = s2 / 2 for mu_w = 0
    se = gap.std().item() / math.sqrt(len(gap))
    assert abs(gap.mean().item() - vae.iwae_asymptotic_gap(s2, k)) < 4 * se + 0.05 * vae.iwae_asymptotic_gap(s2, k)
    assert vae.iwae_asymptotic_gap(s2, 2 * k) == pytest.approx(vae.iwae_asymptotic_gap(s2, k) / 2)


def test_log_mean_exp_of_one_sample_is_identity():
    w = torch.randn(1, 4)
    assert torch.equal(vae.log_mean_exp(w), w[0])


def test_bernoulli_log_prob_matches_torch():
    logits = torch.randn(3, 10, dtype=torch.float64) * 5
    x = (torch.rand(3, 10) < 0.5).double()
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    assert torch.allclose(vae.bernoulli_log_prob(logits, x), expected)
    assert (vae.bernoulli_log_prob(logits, x) <= 0).all()


def test_single_sample_elbo_matches_the_model_and_is_unbiased(small_vae):
    x = _binary(6, 20, seed=4)
    g = torch.Generator().manual_seed(0)
    mu, logvar = small_vae.encode(x)
    eps = torch.randn(mu.shape, generator=torch.Generator().manual_seed(1))
    z = mu + torch.exp(0.5 * logvar) * eps
    expected = vae.bernoulli_log_prob(small_vae.decode(z), x) - vae.gaussian_kl(mu, logvar)
    assert torch.allclose(vae.single_sample_elbo(x, mu, logvar, eps, small_vae.decode), expected)
    with torch.no_grad():  # averaged over eps it is the model's ELBO (same expectation)
        many = torch.stack([vae.single_sample_elbo(x, mu, logvar, torch.randn(mu.shape, generator=g), small_vae.decode)
                            for _ in range(2000)])
        ref = torch.stack([small_vae.elbo(x, generator=g) for _ in range(2000)])
    se = torch.sqrt(many.var(0) / 2000 + ref.var(0) / 2000)
    assert ((many.mean(0) - ref.mean(0)).abs() < 4 * se).all()


def test_save_and_load_pretrained_round_trip(tmp_path, small_vae):
    path = tmp_path / "m.pt"
    sha = vae.save_pretrained(small_vae, path, test_log_px_nats=-1.5)
    model, meta = vae.load_pretrained(path, sha)
    assert meta == {"test_log_px_nats": -1.5} and model.latent_dim == 3 and not model.training
    for a, b in zip(small_vae.state_dict().values(), model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-2) and b.dtype == torch.float32   # float16 on disk
    for bad in (path, tmp_path / "missing.pt"):  # another SHA-256; a missing file: as training.load_checkpoint
        with pytest.raises(training.CheckpointError) as info:
            vae.load_pretrained(bad, "0" * 64)
        assert str(bad) in str(info.value) and isinstance(info.value, ValueError)  # also the ValueError of before


# ----------------------------------------------------------------------------
# Gradient estimators: same mean, different variance
# ----------------------------------------------------------------------------
def test_gradient_estimators_are_unbiased_and_reparameterization_has_lower_variance():
    c = torch.tensor([0.5, -1.0], dtype=torch.float64)
    f = lambda z: -((z - c) ** 2).sum(-1)  # E f = -(|mu - c|^2 + sum sigma^2)
    mu, logvar = torch.tensor([[0.2, 0.3]], dtype=torch.float64), torch.tensor([[-0.4, 0.1]], dtype=torch.float64)
    exact_mu, exact_lv = -2 * (mu - c), -logvar.exp()
    n = 200_000
    for estimator in (vae.reparameterization_gradient, vae.score_function_gradient):
        g_mu, g_lv = estimator(f, mu, logvar, n, torch.Generator().manual_seed(1))
        assert g_mu.shape == (n, 1, 2) and g_lv.shape == (n, 1, 2)
        for g, exact in ((g_mu, exact_mu), (g_lv, exact_lv)):
            se = g.std(0) / math.sqrt(n)
            assert ((g.mean(0) - exact).abs() < 5 * se + 1e-12).all(), (estimator.__name__, g.mean(0), exact)
    var_rep = vae.reparameterization_gradient(f, mu, logvar, 20_000, torch.Generator().manual_seed(2))[0].var(0)
    var_sf = vae.score_function_gradient(f, mu, logvar, 20_000, torch.Generator().manual_seed(2))[0].var(0)
    assert (var_sf > 5 * var_rep).all()


def test_active_units_counts_varying_coordinates():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(200, 5, generator=g)
    mu[:, 1] = 0.3  # collapsed: the same mean for every x
    mu[:, 3] = 0.001 * torch.randn(200, generator=g)
    assert vae.active_units(mu) == 3
    assert vae.active_units(mu, threshold=100.0) == 0


# ----------------------------------------------------------------------------
# pPCA: the exact check model
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ppca():
    model = vae.LinearGaussian(6, 3, 0.5, generator=torch.Generator().manual_seed(0))
    x = model.sample(4, torch.Generator().manual_seed(1))
    return model, x


def test_ppca_posterior_is_bayes_rule(ppca):
    model, x = ppca
    mu, cov = model.posterior(x)
    z = torch.randn(5, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    log_joint = model.log_likelihood(x, z) + vae.standard_normal_log_prob(z)
    log_post = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov).log_prob(z)
    assert torch.allclose(log_joint - log_post, model.log_prob(x).expand(5, 4), atol=1e-9)
    assert torch.allclose(cov, torch.diag(torch.diagonal(cov)), atol=1e-12)  # orthogonal W: diagonal posterior


def test_ppca_elbo_equals_log_px_at_posterior_and_gap_is_kl(ppca):
    model, x = ppca
    mu, cov = model.posterior(x)
    post_logvar = torch.diagonal(cov).log().expand_as(mu)
    assert torch.allclose(model.elbo(x, mu, post_logvar), model.log_prob(x), atol=1e-9)
    g = torch.Generator().manual_seed(3)
    q_mu = mu + 0.5 * torch.randn(mu.shape, generator=g, dtype=torch.float64)
    q_logvar = post_logvar + torch.randn(mu.shape, generator=g, dtype=torch.float64)
    q = torch.distributions.MultivariateNormal(q_mu, covariance_matrix=torch.diag_embed(q_logvar.exp()))
    post = torch.distributions.MultivariateNormal(mu, covariance_matrix=cov)
    gap = model.log_prob(x) - model.elbo(x, q_mu, q_logvar)
    assert torch.allclose(gap, torch.distributions.kl_divergence(q, post), atol=1e-9)
    assert (gap > 0).all()


def test_ppca_closed_form_elbo_matches_monte_carlo(ppca):
    model, x = ppca
    q_mu, q_logvar = torch.zeros(4, 3, dtype=torch.float64), torch.full((4, 3), -1.0, dtype=torch.float64)
    z = q_mu + (0.5 * q_logvar).exp() * torch.randn(100_000, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    w = model.log_likelihood(x, z) + vae.standard_normal_log_prob(z) - vae.diag_gaussian_log_prob(z, q_mu, q_logvar)
    se = w.std(0) / math.sqrt(len(w))
    assert ((w.mean(0) - model.elbo(x, q_mu, q_logvar)).abs() < 5 * se).all()


def test_ppca_log_prob_integrates_to_one_in_1d():
    model = vae.LinearGaussian(1, 1, 0.3, generator=torch.Generator().manual_seed(0))
    grid = torch.linspace(-15, 15, 20_001, dtype=torch.float64)[:, None]
    mass = torch.trapezoid(model.log_prob(grid).exp(), grid[:, 0])
    assert abs(mass.item() - 1) < 1e-6


# ----------------------------------------------------------------------------
# The VAE
# ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_vae():
    torch.manual_seed(0)
    return vae.VAE(data_dim=20, latent_dim=3, hidden_dims=(16,))


def test_vae_shapes_and_samples(small_vae):
    x = _binary(7, 20)
    mu, logvar = small_vae.encode(x)
    assert mu.shape == logvar.shape == (7, 3)
    assert small_vae.decode(mu).shape == (7, 20)
    assert small_vae.elbo(x).shape == (7,)
    assert small_vae.iwae_bound(x, 4).shape == (7,)
    s = small_vae.sample(11, torch.Generator().manual_seed(0))
    assert s.shape == (11, 20) and set(s.unique().tolist()) <= {0.0, 1.0}


def test_iwae_bounds_are_ordered_in_expectation(small_vae):
    """E[ELBO] = E[IWAE_1] <= E[IWAE_5] <= E[IWAE_50] <= log p(x) (Burda et al., Theorem 1)."""
    x = _binary(5, 20, seed=1)
    g = torch.Generator().manual_seed(0)
    reps = 2000
    with torch.no_grad():
        elbo = torch.stack([small_vae.elbo(x, generator=g) for _ in range(200)])
        w = small_vae.log_weights(x, reps * 50, g).reshape(reps, 50, 5)  # reps independent groups of 50
    b1, b5, b50 = w[:, 0], vae.log_mean_exp(w[:, :5], dim=1), vae.log_mean_exp(w, dim=1)
    se = lambda a: a.std(0) / math.sqrt(len(a))
    # the ELBO uses the exact KL, IWAE_1 the sampled log-ratio: the same mean
    assert ((elbo.mean(0) - b1.mean(0)).abs() < 4 * torch.sqrt(se(elbo) ** 2 + se(b1) ** 2)).all()
    assert ((b5 - b1).mean(0) > 3 * se(b5 - b1)).all()
    assert ((b50 - b5).mean(0) > 3 * se(b50 - b5)).all()
    assert torch.equal(small_vae.iwae_bound(x, 1, torch.Generator().manual_seed(3)),
                       small_vae.log_weights(x, 1, torch.Generator().manual_seed(3))[0])


def test_iwae_approaches_exact_log_px_on_a_tiny_latent_space():
    """With Z = 1, log p(x) by quadrature; IWAE_k climbs towards it from below."""
    torch.manual_seed(1)
    model = vae.VAE(data_dim=8, latent_dim=1, hidden_dims=(8,)).double()
    x = _binary(3, 8, seed=2).double()
    z = torch.linspace(-10, 10, 40_001, dtype=torch.float64)[:, None, None].expand(-1, 3, 1)
    with torch.no_grad():
        log_joint = vae.bernoulli_log_prob(model.decode(z), x) + vae.standard_normal_log_prob(z)
        log_px = torch.logsumexp(log_joint, 0) + math.log(20 / 40_000)
        big = model.iwae_bound(x, 20_000, torch.Generator().manual_seed(0), chunk=5000)
        elbo = model.log_weights(x, 20_000, torch.Generator().manual_seed(1)).mean(0)  # E[IWAE_1]
    assert (big <= log_px + 1e-3).all() and ((log_px - big).abs() < 0.02).all()
    assert (elbo < log_px).all()  # the ELBO is below log p(x)


def test_elbo_beta_zero_ignores_kl(small_vae):
    x = _binary(4, 20)
    a = small_vae.elbo(x, beta=0.0, generator=torch.Generator().manual_seed(0))
    rec, kl = small_vae.elbo_terms(x, torch.Generator().manual_seed(0))
    assert torch.allclose(a, rec)
    b = small_vae.elbo(x, beta=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(b, rec - 2 * kl)


def test_binarization_fixed_and_dynamic():
    pixels = torch.randint(0, 256, (500, 784), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    a, b = vae.binarize_fixed(pixels, 3), vae.binarize_fixed(pixels, 3)
    assert torch.equal(a, b) and not torch.equal(a, vae.binarize_fixed(pixels, 4))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - pixels.double().mean().item() / 255) < 0.005  # Bernoulli(pixel / 255)
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(vae.binarize_dynamic(pixels, g), vae.binarize_dynamic(pixels, g))


# ----------------------------------------------------------------------------
# Training: improves the bound, resumes bit-identically, stops early
# ----------------------------------------------------------------------------
def _pixels(n, seed=0):
    """n digits of a toy data set: 4 fixed prototypes of 20 pixel intensities (the seed picks which)."""
    proto = torch.randint(0, 256, (4, 20), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return proto[torch.randint(0, 4, (n,), generator=torch.Generator().manual_seed(seed))]


def _fresh(seed=0):
    torch.manual_seed(seed)
    return vae.VAE(data_dim=20, latent_dim=2, hidden_dims=(16,))


def test_training_improves_the_validation_bound():
    cfg = vae.VAEConfig(epochs=15, batch_size=20, lr=1e-2, progress=False)
    valid = vae.binarize_fixed(_pixels(100, seed=1), 0)
    model, hist = vae.train_vae(_fresh(), _pixels(200), cfg, valid)
    assert hist["stop_reason"] == "completed" and len(hist["epoch"]) == 15
    assert hist["valid_elbo"][-1] > hist["valid_elbo"][0] + 0.5
    assert hist["best_epoch"] == 1 + max(range(15), key=lambda i: hist["valid_elbo"][i])
    assert hist["train_seconds"] >= hist["seconds"][-1] > 0


@pytest.mark.parametrize("k", [1, 3])
def test_training_resume_is_bit_identical(tmp_path, monkeypatch, k):
    cfg = vae.VAEConfig(epochs=3, batch_size=30, lr=1e-2, k=k, warmup_epochs=2, progress=False)
    valid = vae.binarize_fixed(_pixels(40, seed=1), 0)
    ref, ref_hist = vae.train_vae(_fresh(), _pixels(100), cfg, valid)

    path = str(tmp_path / "ckpt.pt")
    calls = {"n": 0}
    original = vae.VAE.encode

    def failing_encode(self, x):
        calls["n"] += 1
        if calls["n"] == 9:  # inside epoch 2, between two steps
            raise RuntimeError("simulated crash")
        return original(self, x)

    monkeypatch.setattr(vae.VAE, "encode", failing_encode)
    with pytest.raises(RuntimeError, match="simulated crash"):
        vae.train_vae(_fresh(), _pixels(100), dataclasses.replace(cfg, checkpoint_path=path), valid)
    monkeypatch.setattr(vae.VAE, "encode", original)
    resumed, hist = vae.train_vae(_fresh(seed=99), _pixels(100), dataclasses.replace(cfg, checkpoint_path=path), valid)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert hist["train_bound"] == ref_hist["train_bound"] and hist["valid_elbo"] == ref_hist["valid_elbo"]


def test_early_stopping_restores_the_best_parameters():
    cfg = vae.VAEConfig(epochs=60, batch_size=10, lr=5e-2, patience=2, progress=False)
    valid = vae.binarize_fixed(_pixels(30, seed=1), 0)
    model, hist = vae.train_vae(_fresh(), _pixels(30), cfg, valid)
    best = hist["best_epoch"]
    assert best == 1 + max(range(len(hist["valid_elbo"])), key=lambda i: hist["valid_elbo"][i])
    if hist["stop_reason"] == "early_stopping":
        assert len(hist["epoch"]) == best + 2
    g = torch.Generator().manual_seed(0)
    final = vae.evaluate_bounds(model, valid, 1, generator=g).mean().item()
    assert final > min(hist["valid_elbo"])  # the restored model is not the worst one seen


def test_divergence_guard_names_the_learning_rate():
    cfg = vae.VAEConfig(epochs=2, batch_size=10, lr=1e30, progress=False)
    with pytest.raises(training.TrainingDiverged):
        vae.train_vae(_fresh(), _pixels(30), cfg)


# ----------------------------------------------------------------------------
# Bad input: every public function, ValueError (or its subclass) naming the argument
# ----------------------------------------------------------------------------
_Z = torch.zeros(2, 3)
_X = _binary(2, 20)
_NAN = torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]])

BAD = [
    ("gaussian_kl 1-D mu", lambda m: vae.gaussian_kl(torch.zeros(3), _Z), "mu"),
    ("gaussian_kl shape mismatch", lambda m: vae.gaussian_kl(_Z, torch.zeros(2, 4)), "logvar"),
    ("gaussian_kl nan logvar", lambda m: vae.gaussian_kl(_Z, _NAN), "logvar"),
    ("gaussian_kl inf logvar", lambda m: vae.gaussian_kl(_Z, _NAN.nan_to_num(nan=float("inf"))), "logvar"),
    ("gaussian_kl list", lambda m: vae.gaussian_kl([[0.0]], _Z), "mu"),
    ("reparameterize nan logvar", lambda m: vae.reparameterize(_Z, _NAN), "logvar"),
    ("reparameterize 3-D mu", lambda m: vae.reparameterize(torch.zeros(1, 2, 3), _Z), "mu"),
    ("log_mean_exp empty", lambda m: vae.log_mean_exp(torch.zeros(0, 3)), "log_w"),
    ("log_mean_exp numpy", lambda m: vae.log_mean_exp(_Z.numpy()), "log_w"),
    ("iwae_asymptotic_gap negative", lambda m: vae.iwae_asymptotic_gap(-1.0, 5), "log_weight_variance"),
    ("iwae_asymptotic_gap k=0", lambda m: vae.iwae_asymptotic_gap(1.0, 0), "k"),
    ("single_sample_elbo eps shape", lambda m: vae.single_sample_elbo(_X, _Z, _Z, torch.zeros(2, 4), m.decode), "eps"),
    ("single_sample_elbo nan logvar", lambda m: vae.single_sample_elbo(_X, _Z, _NAN, _Z, m.decode), "logvar"),
    ("reparameterization_gradient n=0", lambda m: vae.reparameterization_gradient(lambda z: z.sum(-1), _Z, _Z, 0), "n"),
    ("score_function_gradient nan", lambda m: vae.score_function_gradient(lambda z: z.sum(-1), _Z, _NAN, 5), "logvar"),
    ("active_units one row", lambda m: vae.active_units(torch.zeros(1, 3)), "mu"),
    ("active_units threshold", lambda m: vae.active_units(_Z, threshold=0.0), "threshold"),
    ("encode wrong width", lambda m: m.encode(_binary(2, 19)), "x"),
    ("encode non-binary", lambda m: m.encode(_X * 0.5), "x"),
    ("encode 1-D", lambda m: m.encode(_X[0]), "x"),
    ("elbo non-binary", lambda m: m.elbo(_X + 1), "x"),
    ("elbo negative beta", lambda m: m.elbo(_X, beta=-1.0), "beta"),
    ("iwae_bound k=0", lambda m: m.iwae_bound(_X, 0), "k"),
    ("iwae_bound k float", lambda m: m.iwae_bound(_X, 2.5), "k"),
    ("iwae_bound non-binary", lambda m: m.iwae_bound(_X * 3, 5), "x"),
    ("log_weights k=-1", lambda m: m.log_weights(_X, -1), "k"),
    ("decode wrong latent", lambda m: m.decode(torch.zeros(2, 4)), "z"),
    ("sample n=0", lambda m: m.sample(0), "n"),
    ("VAE latent_dim=0", lambda m: vae.VAE(20, 0, (4,)), "latent_dim"),
    ("VAE hidden_dims", lambda m: vae.VAE(20, 2, (4, 0)), "hidden_dims"),
    ("LinearGaussian noise_std", lambda m: vae.LinearGaussian(4, 2, 0.0), "noise_std"),
    ("LinearGaussian latent > data", lambda m: vae.LinearGaussian(2, 3, 1.0), "latent_dim"),
    ("LinearGaussian log_prob shape", lambda m: vae.LinearGaussian(4, 2, 1.0).log_prob(torch.zeros(2, 5)), "x"),
    ("LinearGaussian elbo nan logvar", lambda m: vae.LinearGaussian(4, 3, 1.0).elbo(torch.zeros(2, 4), _Z, _NAN), "q_logvar"),
    ("LinearGaussian elbo q_mu shape", lambda m: vae.LinearGaussian(4, 2, 1.0).elbo(torch.zeros(2, 4), _Z, _Z), "q_mu"),
    ("LinearGaussian posterior nan", lambda m: vae.LinearGaussian(4, 2, 1.0).posterior(torch.full((1, 4), float("nan"))), "x"),
    ("binarize_dynamic float", lambda m: vae.binarize_dynamic(torch.zeros(2, 4)), "images"),
    ("binarize_fixed seed", lambda m: vae.binarize_fixed(torch.zeros(2, 4, dtype=torch.uint8), -1), "seed"),
    ("evaluate_bounds k=0", lambda m: vae.evaluate_bounds(m, _X, 0), "k"),
    ("evaluate_bounds non-binary", lambda m: vae.evaluate_bounds(m, _X * 0.5, 1), "x"),
    ("VAEConfig epochs", lambda m: vae.VAEConfig(epochs=0), "epochs"),
    ("VAEConfig lr", lambda m: vae.VAEConfig(lr=-1.0), "lr"),
    ("VAEConfig k", lambda m: vae.VAEConfig(k=0), "k"),
    ("VAEConfig beta", lambda m: vae.VAEConfig(beta=float("nan")), "beta"),
    ("VAEConfig max_seconds", lambda m: vae.VAEConfig(max_seconds=0.0), "max_seconds"),
    ("train_vae float pixels", lambda m: vae.train_vae(m, torch.zeros(5, 20), vae.VAEConfig(progress=False)), "train_images"),
    ("train_vae patience no valid", lambda m: vae.train_vae(m, torch.zeros(5, 20, dtype=torch.uint8),
                                                             vae.VAEConfig(patience=2, progress=False)), "valid_x"),
    ("train_vae config", lambda m: vae.train_vae(m, torch.zeros(5, 20, dtype=torch.uint8), {"epochs": 1}), "config"),
]


@pytest.mark.parametrize("case, call, name", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_value_error_naming_the_argument(small_vae, case, call, name):
    with pytest.raises((ValueError, TypeError)) as info:
        call(small_vae)
    assert isinstance(info.value, ValueError), f"{case}: expected a ValueError (or ArgumentTypeError), got {info.type}"
    assert name in str(info.value), f"{case}: the message must name {name!r}: {info.value}"


# ----------------------------------------------------------------------------
# The VAE with an autoregressive decoder term
# ----------------------------------------------------------------------------
def _ar_vae(data_dim=4, seed=0):
    torch.manual_seed(seed)
    model = vae.AutoregressiveVAE(data_dim, 2, (8,))
    with torch.no_grad():
        model.autoregressive.weight.normal_(0.0, 2.0)  # strong dependencies, masked or not
    return model.eval()


def test_autoregressive_logit_sees_only_earlier_pixels():
    model = _ar_vae(6)
    x = torch.bernoulli(torch.full((1, 6), 0.5))
    jac = torch.autograd.functional.jacobian(lambda v: model.autoregressive_logits(v), x)[0, :, 0, :]  # (D, D)
    assert torch.all(jac.triu() == 0)  # d logit_i / d x_j = 0 for j >= i
    assert torch.all(jac[torch.ones(6, 6).tril(-1).bool()] != 0)  # and every earlier pixel counts


def test_autoregressive_p_x_given_z_sums_to_one_over_all_images():
    model = _ar_vae(4)
    images = torch.tensor([[(n >> i) & 1 for i in range(4)] for n in range(16)], dtype=torch.float32)  # (16, 4)
    z = torch.randn(1, 2).expand(16, 2)
    with torch.no_grad():
        total = model.log_px_given_z(z, images).exp().sum()
    assert abs(total.item() - 1.0) < 1e-6


def test_autoregressive_with_zero_weights_is_the_plain_vae():
    torch.manual_seed(3)
    plain = vae.VAE(5, 2, (8,))
    ar = vae.AutoregressiveVAE(5, 2, (8,))
    ar.load_state_dict(plain.state_dict(), strict=False)  # zero autoregressive weights
    x = torch.bernoulli(torch.full((7, 5), 0.4))
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.allclose(plain.log_weights(x, 3, g1), ar.log_weights(x, 3, g2))


def test_autoregressive_samples_follow_the_model():
    model = _ar_vae(3, seed=1)
    with torch.no_grad():  # p(x | z) independent of z: sample frequencies must match it exactly
        model.decoder[-1].weight.zero_()
    images = torch.tensor([[(n >> i) & 1 for i in range(3)] for n in range(8)], dtype=torch.float32)
    with torch.no_grad():
        probs = model.log_px_given_z(torch.zeros(8, 2), images).exp()  # (8,)
    n = 40_000
    draws = model.sample(n, torch.Generator().manual_seed(0))
    codes = (draws * torch.tensor([1.0, 2.0, 4.0])).sum(1).long()
    freq = torch.bincount(codes, minlength=8).float() / n
    assert torch.all((freq - probs).abs() < 4 * (probs * (1 - probs) / n).sqrt() + 1e-3)


def test_autoregressive_save_and_load_round_trip(tmp_path):
    model = _ar_vae(4)
    path = tmp_path / "ar.pt"
    vae.save_pretrained(model, path)
    loaded, _ = vae.load_pretrained(path)
    assert isinstance(loaded, vae.AutoregressiveVAE)
    w = (model.autoregressive.weight * model.mask).to(torch.float16).float()
    assert torch.equal(loaded.autoregressive.weight * loaded.mask, w)


# ----------------------------------------------------------------------------
# Issue 18: pretrained files (metadata, the embedded digest, clear errors) and the
# Bernoulli likelihood's x (the bad-input rows are in tests/test_bad_inputs.py)
# ----------------------------------------------------------------------------
def _saved(tmp_path, model=None, name="m.pt", **metadata):
    path = tmp_path / name
    torch.manual_seed(0)
    sha = vae.save_pretrained(model or vae.VAE(20, 3, (16,)), path, **metadata)
    return path, sha


def test_save_pretrained_stores_numpy_and_tensor_scalars_as_python_numbers(tmp_path):
    import numpy as np

    path, sha = _saved(tmp_path, nll=np.float64(89), epochs=np.int64(3), ok=np.bool_(True),
                       elbo=torch.tensor(-91.5), curve=[np.float32(1.5), 2], note="x")
    model, meta = vae.load_pretrained(path)  # the embedded digest alone: no sha256 needed
    assert meta == {"nll": 89.0, "epochs": 3, "ok": True, "elbo": -91.5, "curve": [1.5, 2], "note": "x"}
    assert [type(meta[k]) for k in ("nll", "epochs", "ok", "elbo")] == [float, int, bool, float]
    assert type(meta["curve"][0]) is float
    assert vae.load_pretrained(path, sha)[1] == meta


@pytest.mark.parametrize("value", ["array", "object", "set", "tensor"])
def test_save_pretrained_refuses_unloadable_metadata_and_keeps_the_good_file(tmp_path, value):
    import numpy as np

    path, sha = _saved(tmp_path, nll=1.0)
    before = path.read_bytes()
    bad = {"array": np.zeros(3), "object": object(), "set": {1, 2}, "tensor": torch.zeros(2)}[value]
    with pytest.raises(TypeError) as info:
        vae.save_pretrained(vae.VAE(20, 3, (16,)), path, nll=1.0, curve=bad)
    assert "curve" in str(info.value) and isinstance(info.value, ValueError)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_a_file_that_does_not_read_back_never_replaces_a_good_one(tmp_path, monkeypatch):
    """The read-back before the rename: let an unloadable value through the metadata check."""
    import numpy as np

    from course_lib import pretrained

    path, sha = _saved(tmp_path, nll=1.0)
    before = path.read_bytes()
    monkeypatch.setattr(pretrained, "plain_metadata", lambda metadata, name="metadata": dict(metadata))
    with pytest.raises(training.CheckpointError, match="was not written") as info:
        vae.save_pretrained(vae.VAE(20, 3, (16,)), path, nll=np.float64(89))  # pickled as a numpy global
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]
    assert vae.load_pretrained(path, sha)[1] == {"nll": 1.0}


def test_save_pretrained_refuses_weights_float16_cannot_hold(tmp_path):
    model = vae.VAE(20, 3, (16,))
    with torch.no_grad():
        model.decoder[0].bias[0] = 1e5  # float16 would store inf
    with pytest.raises(ValueError, match="decoder.0.bias.*float16"):
        vae.save_pretrained(model, tmp_path / "m.pt")
    with torch.no_grad():
        model.decoder[0].bias[0] = float("nan")
    with pytest.raises(ValueError, match="decoder.0.bias.*NaN"):
        vae.save_pretrained(model, tmp_path / "m.pt")
    assert not any(tmp_path.iterdir())


def _flip(path, position, mask=0x01):
    blob = bytearray(path.read_bytes())
    blob[position] ^= mask
    path.write_bytes(bytes(blob))


def test_a_changed_weight_byte_is_refused_without_sha256(tmp_path):
    """The bug: a flipped byte in a bias loaded silently (the bias differed by 0.0072)."""
    model = vae.VAE(20, 3, (16,))
    path, _ = _saved(tmp_path, model)
    bias = model.decoder[-1].bias.detach().to(torch.float16)
    position = path.read_bytes().find(bias.numpy().tobytes())  # the last layer's bias, as stored
    assert position > 0
    _flip(path, position + 1)
    with pytest.raises(training.CheckpointError, match="corrupt") as info:
        vae.load_pretrained(path)
    assert str(path) in str(info.value)


def test_sha256_is_accepted_in_any_case_and_with_whitespace(tmp_path):
    path, sha = _saved(tmp_path)
    for variant in (sha, sha.upper(), f"  {sha}\n", sha[:10].upper() + sha[10:]):
        assert vae.load_pretrained(path, variant)[0].latent_dim == 3
    with pytest.raises(training.CheckpointError, match="expected"):
        vae.load_pretrained(path, ("0" if sha[0] != "0" else "1") + sha[1:])


def test_files_without_a_digest_load_only_with_a_matching_sha256(tmp_path):
    """course_lib before issue 18 wrote plain torch.save files: the shipped asset was one."""
    import hashlib

    model = vae.VAE(20, 3, (16,))
    path = tmp_path / "legacy.pt"
    torch.save({"arch": {"data_dim": 20, "latent_dim": 3, "hidden_dims": [16]},
                "state_dict": {k: v.to(torch.float16) for k, v in model.state_dict().items()},
                "metadata": {"nll": 1.0}}, path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(training.CheckpointError, match="predates") as info:
        vae.load_pretrained(path)
    assert str(path) in str(info.value)
    loaded, meta = vae.load_pretrained(path, sha.upper())
    assert meta == {"nll": 1.0} and type(loaded) is vae.VAE
    with pytest.raises(training.CheckpointError, match="expected"):
        vae.load_pretrained(path, "f" * 64)
    # re-saving adds the digest: the same weights, loadable without sha256
    new_sha = vae.save_pretrained(loaded, path, **meta)
    again, _ = vae.load_pretrained(path)
    assert new_sha != sha
    for a, b in zip(loaded.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def _unreadable_files(tmp_path):
    """name -> path of a file that is not a usable pretrained VAE file."""
    good, _ = _saved(tmp_path, name="good.pt")
    blob = good.read_bytes()
    files = {
        "truncated": blob[: len(blob) // 2],
        "truncated by one byte": blob[:-1],
        "empty": b"",
        "random": bytes(torch.randint(0, 256, (3000,), generator=torch.Generator().manual_seed(0)).tolist()),
        "text": b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1621603\n",
        "zip header only": b"PK\x03\x04" + bytes(100),
    }
    out = {name: tmp_path / f"{name.replace(' ', '_')}.pt" for name in files}
    for name, data in files.items():
        out[name].write_bytes(data)
    out["list (foreign torch file)"] = tmp_path / "list.pt"
    torch.save([1, 2, 3], out["list (foreign torch file)"])
    out["training checkpoint"] = tmp_path / "ckpt.pt"
    training.save_checkpoint(out["training checkpoint"], {"model": {"w": torch.zeros(2)}})
    out["a directory"] = tmp_path / "folder.pt"
    out["a directory"].mkdir()
    out["missing"] = tmp_path / "missing.pt"
    from course_lib import pretrained

    out["another kind"] = tmp_path / "pixelcnn.pt"
    pretrained.save(out["another kind"], {"arch": {}, "state_dict": {}, "metadata": {}}, kind="pixelcnn")
    out["foreign arch"] = tmp_path / "arch.pt"
    pretrained.save(out["foreign arch"], {"arch": {"channels": 3}, "state_dict": {}, "metadata": {}}, kind="vae")
    out["no arch"] = tmp_path / "noarch.pt"
    pretrained.save(out["no arch"], {"weights": torch.zeros(2)}, kind="vae")
    return out


def test_unreadable_files_give_a_checkpoint_error_naming_the_path(tmp_path):
    import hashlib

    for name, path in _unreadable_files(tmp_path).items():
        for sha in (None, "digest of the file"):
            if sha is not None:
                if not path.is_file():
                    continue
                sha = hashlib.sha256(path.read_bytes()).hexdigest()  # a pinned digest does not make it loadable
            with pytest.raises(training.CheckpointError) as info:
                vae.load_pretrained(path, sha)
            assert str(path) in str(info.value), f"{name}: {info.value}"
            assert type(info.value).__name__ == "PretrainedFileError", name


def test_bernoulli_log_prob_refuses_non_binary_x_and_accepts_bool_and_int():
    logits = torch.randn(3, 4)
    x = (torch.rand(3, 4) < 0.5).float()
    assert vae.bernoulli_log_prob(logits, x.bool()).equal(vae.bernoulli_log_prob(logits, x))
    assert vae.bernoulli_log_prob(logits, x.long()).equal(vae.bernoulli_log_prob(logits, x))
    for bad in (x * 2, x + 0.5, torch.full((3, 4), float("nan")), x - 1):
        with pytest.raises(ValueError, match="x must contain only 0 and 1"):
            vae.bernoulli_log_prob(logits, bad)
    with pytest.raises(ValueError, match="x .* must broadcast against logits"):
        vae.bernoulli_log_prob(logits, torch.zeros(3, 5))


def test_log_px_given_z_refuses_non_binary_x_for_both_decoders():
    for model in (vae.VAE(4, 2, (8,)), _ar_vae(4)):
        z, x = torch.zeros(3, 2), torch.ones(3, 4)
        assert (model.log_px_given_z(z, x) <= 0).all()
        for bad in (2 * x, 0.5 * x):
            with pytest.raises(ValueError, match="^x must contain only 0 and 1"):
                model.log_px_given_z(z, bad)
        with pytest.raises(ValueError, match="^z must have shape"):
            model.log_px_given_z(torch.zeros(2, 2), x)  # 2 latents for 3 rows
        assert torch.equal(model.log_px_given_z(torch.zeros(1, 2), x), model.log_px_given_z(torch.zeros(3, 2), x))


def test_a_subclass_overriding_log_px_given_z_is_used_by_the_bounds():
    class Flat(vae.VAE):
        def log_px_given_z(self, z, x):  # the earlier hook: a constant likelihood
            return torch.zeros(z.shape[:-1])

    torch.manual_seed(0)
    model = Flat(4, 2, (8,))
    x = torch.ones(3, 4)
    rec, kl = model.elbo_terms(x, torch.Generator().manual_seed(0))
    assert torch.equal(rec, torch.zeros(3))
    assert torch.equal(model.log_weights(x, 2, torch.Generator().manual_seed(0)),
                       model.log_weights(x, 2, torch.Generator().manual_seed(0)))


def test_training_speed_path_gives_the_same_bound_as_the_checked_one(small_vae):
    """The bounds call the unchecked likelihood on an x they checked: same numbers as the public method."""
    x = _binary(5, 20, seed=2)
    g = torch.Generator().manual_seed(0)
    mu, logvar = small_vae.encode(x)
    z = vae.reparameterize(mu, logvar, g)
    rec, _ = small_vae.elbo_terms(x, torch.Generator().manual_seed(0))
    assert torch.equal(rec, small_vae.log_px_given_z(z, x))


def test_free_bits_kl_clamps_the_batch_mean_per_coordinate():
    """sum_j max(lambda, mean_b KL_bj): by hand, its gradient, and the per-row clamp it is not."""
    mu = torch.tensor([[0.1, 2.0], [0.3, 0.0], [-0.2, 1.0]], dtype=torch.float64, requires_grad=True)
    logvar = torch.tensor([[0.0, -1.0], [0.1, 0.0], [-0.1, 0.5]], dtype=torch.float64)
    kl = 0.5 * (mu.detach() ** 2 + logvar.exp() - logvar - 1)                 # (3, 2), by hand
    lam = 0.2
    assert kl[:, 0].mean() < lam < kl[:, 1].mean()                            # coordinate 0 under its allowance
    value = vae.free_bits_kl(mu, logvar, lam)
    assert value.item() == pytest.approx(lam + kl[:, 1].mean().item(), rel=1e-12)
    per_row = kl.clamp(min=lam).sum(1).mean()                                  # the wrong clamp: each row its lambda
    assert abs(per_row.item() - value.item()) > 1e-3
    (grad,) = torch.autograd.grad(value, mu)
    assert torch.equal(grad[:, 0], torch.zeros(3, dtype=torch.float64)), "under the allowance: no KL gradient"
    assert torch.allclose(grad[:, 1], mu.detach()[:, 1] / 3)                  # d/dmu of the mean of mu^2 / 2
    assert vae.free_bits_kl(mu, logvar, 0.0).item() == pytest.approx(vae.gaussian_kl(mu, logvar).mean().item())
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="free_bits"):
            vae.free_bits_kl(mu, logvar, bad)


def test_free_bits_training_logs_the_elbo_and_keeps_units_active():
    """With free bits the KL of each coordinate is not pushed below its allowance; train_bound is the ELBO."""
    valid = vae.binarize_fixed(_pixels(100, seed=1), 0)
    runs = {}
    for lam in (0.0, 1.0):
        cfg = vae.VAEConfig(epochs=8, batch_size=20, lr=1e-2, free_bits=lam, progress=False)
        model, hist = vae.train_vae(_fresh(), _pixels(200), cfg, valid)
        with torch.no_grad():
            mu, logvar = model.encode(valid)
        runs[lam] = (0.5 * (mu ** 2 + logvar.exp() - logvar - 1)).mean(0), hist
    kl0, _ = runs[0.0]
    kl1, hist1 = runs[1.0]
    assert kl1.min() > 0.5, f"free bits of 1 nat: every coordinate keeps KL near 1 nat or more, got {kl1.tolist()}"
    assert kl1.sum() > kl0.sum(), (kl0.tolist(), kl1.tolist())
    assert all(math.isfinite(b) for b in hist1["train_bound"])
    with pytest.raises(ValueError, match="free_bits"):
        vae.VAEConfig(free_bits=0.5, k=5)
    with pytest.raises(ValueError, match="free_bits"):
        vae.VAEConfig(free_bits=-1.0)
