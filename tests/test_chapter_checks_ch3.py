"""The numeric checks of Chapter 3 catch the wrong formulas their sentences name.

CHAPTER_STANDARD: a check is *proven falsifiable* by a test that feeds it the wrong
formula its sentence names and asserts that it fails. Each check cell of
``notebooks/03_vae.ipynb`` starts with a marker line ``# CHECK: <label>`` and defines
the check as a function of the implementation under test. These tests read that cell,
execute only its imports and ``def`` statements (nothing that trains or plots), and call
the check with the right implementation (it must pass) and with each wrong one (it must
raise ``AssertionError``). The three helpers are copies of those of ``tests/test_chapter_checks_rl.py``.
"""

from __future__ import annotations

import ast
import importlib.resources
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from course_lib import data, vae

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CH3 = "03_vae.ipynb"


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
    namespace = {"torch": torch, "np": np, "math": math, **extra_globals}
    exec(compile(ast.Module(body=kept, type_ignores=[]), f"{notebook}:{label}", "exec"), namespace)
    return namespace


def fails(check, *args, **kwargs) -> bool:
    """True when the check raises AssertionError (a wrong formula caught)."""
    try:
        check(*args, **kwargs)
    except AssertionError:
        return True
    return False


def check(label: str, name: str):
    return load_check(CH3, label, vae=vae)[name]


# --------------------------------------------------------------------------------------
# §3.3: a linear autoencoder spans the top principal subspace (Baldi and Hornik 1989)
# --------------------------------------------------------------------------------------

def _projection_error(basis: torch.Tensor, x: torch.Tensor) -> float:
    """Mean squared error (summed over D) of projecting x orthogonally onto span(basis)."""
    q, _ = torch.linalg.qr(basis)
    return (x - x @ q @ q.T).pow(2).sum(1).mean().item()


def test_linear_ae_pca_check():
    """The top-Z eigenvectors of the centred covariance pass, mixed or not; the autoencoder
    trained on centred data passes; the bottom-Z eigenvectors, the uncentred second moment's
    top-Z eigenvectors, and a bias-free autoencoder trained on uncentred data fail."""
    ns = load_check(CH3, "linear-ae-pca", vae=vae)
    run, train = ns["check_principal_subspace"], ns["train_linear_ae"]
    model = vae.LinearGaussian(12, 3, noise_std=0.4, generator=torch.Generator().manual_seed(5))   # not the chapter's data
    x = model.sample(600, torch.Generator().manual_seed(6))                                         # mean b != 0
    assert x.mean(0).norm() > 2                                                                     # the mean matters
    xc = x - x.mean(0)
    evecs = torch.linalg.eigh(xc.T @ xc / len(x))[1]                                                # ascending
    top, bottom = evecs[:, -3:], evecs[:, :3]
    run(top, _projection_error(top, xc), x)                                                         # PCA itself
    mix = torch.tensor([[2.0, 0.5, 0.0], [0.3, 1.0, -1.0], [0.0, 0.7, 1.5]], dtype=torch.float64)  # invertible
    run(top @ mix, _projection_error(top @ mix, xc), x)                                             # same subspace, other axes
    V, E, err = train(xc, 3, 400)
    run(V, err, x)
    assert (V.T @ V - torch.eye(3, dtype=V.dtype)).abs().max() > 0.1                                # not orthonormal, still passes

    assert fails(run, bottom, _projection_error(bottom, xc), x)                                     # eigh read from the wrong end
    second_moment_top = torch.linalg.eigh(x.T @ x / len(x))[1][:, -3:]                              # the mean not subtracted
    assert fails(run, second_moment_top, _projection_error(second_moment_top, x), x)
    V_raw, _, err_raw = train(x, 3, 800, lr=0.04)                                                   # uncentred data, no bias
    m2_eigenvalues = torch.linalg.eigvalsh(x.T @ x / len(x))
    assert abs(err_raw / m2_eigenvalues[:-3].sum().item() - 1) < 1e-4                               # it converged: to uncentred PCA
    assert fails(run, V_raw, err_raw, x)
    assert fails(run, top, _projection_error(top, xc) * 1.01, x)                                    # the right span, not the minimum


# --------------------------------------------------------------------------------------
# §3.6: the score function on the trained decoder
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def decoder_problem():
    """The shipped model, 4 embedded test digits, their encoder q, and f(z) = log p(x | z)."""
    path = importlib.resources.files("course_lib") / "assets" / "vae_mnist.pt"
    model, _ = vae.load_pretrained(path)
    images, _ = data.load_mnist("test", source="embedded")
    x = vae.binarize_fixed(torch.from_numpy(images[:4]).reshape(-1, 784), vae.TEST_BINARIZATION_SEED)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    for p in model.parameters():
        p.requires_grad_(False)
    return (lambda z: vae.bernoulli_log_prob(model.decode(z), x)), mu, logvar


def _doubled_score(f, mu, logvar, n, generator=None):
    g_mu, g_lv = vae.score_function_gradient(f, mu, logvar, n, generator)
    return 2 * g_mu, 2 * g_lv


def _score_over_sigma(f, mu, logvar, n, generator=None):
    """The score (z - mu) / sigma where (z - mu) / sigma^2 belongs."""
    eps = torch.randn((n, *mu.shape), generator=generator, dtype=mu.dtype)
    with torch.no_grad():
        z = mu + torch.exp(0.5 * logvar) * eps
        fz = f(z)[..., None]
    return fz * (z - mu) / torch.exp(0.5 * logvar), fz * 0.5 * (eps.pow(2) - 1.0)


def test_score_function_check(decoder_problem):
    run = check("score-function-gradient", "check_score_function")
    f, mu, logvar = decoder_problem
    run(vae.score_function_gradient, f, mu, logvar, 1000)
    assert fails(run, _doubled_score, f, mu, logvar, 1000)
    assert fails(run, _score_over_sigma, f, mu, logvar, 1000)


# --------------------------------------------------------------------------------------
# §3.8: no ELBO above log p(x), on pPCA where log p(x) is known
# --------------------------------------------------------------------------------------

def test_elbo_below_log_px_check():
    run = check("elbo-below-log-px", "check_elbo_below_log_px")
    run(vae.gaussian_kl)
    flipped = lambda mu, logvar: 0.5 * (mu.pow(2) + logvar.exp() + logvar - 1.0).sum(-1)   # rewards a narrow q
    halved = lambda mu, logvar: 0.5 * vae.gaussian_kl(mu, logvar)
    assert fails(run, flipped)
    assert fails(run, halved)


# --------------------------------------------------------------------------------------
# §3.9: the gain of IWAE_500 over IWAE_50
# --------------------------------------------------------------------------------------

def _synthetic_log_weights(k: int, seed: int, digits: int = 500) -> torch.Tensor:
    """(k, digits) log-weights: a per-digit offset plus Gaussian noise of variance 4 (a VAE's are wider)."""
    offsets = -100 + 10 * torch.randn(digits, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    return offsets + 2 * torch.randn(k, digits, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_iwae_gain_check():
    run = check("iwae-gain", "check_iwae_gain")
    lw50, lw500 = _synthetic_log_weights(50, 1), _synthetic_log_weights(500, 2)
    run(vae.log_mean_exp(lw50, dim=0), vae.log_mean_exp(lw500, dim=0))
    assert fails(run, lw50.mean(0), lw500.mean(0))          # averaging the log-weights: no gain with k


# --------------------------------------------------------------------------------------
# Exercises 1, 3 and 4: the checks that use the student's function
# --------------------------------------------------------------------------------------

def test_rate_check():
    run = check("rate-per-coordinate", "check_rate")
    gen = torch.Generator().manual_seed(0)
    mu, logvar = 1.5 * torch.randn(200, 8, generator=gen), torch.randn(200, 8, generator=gen)
    run(vae.gaussian_kl, mu, logvar)
    no_minus_one = lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - lv).sum(-1)
    sigma_for_var = lambda m, lv: 0.5 * (m.pow(2) + (0.5 * lv).exp() - lv - 1.0).sum(-1)
    assert fails(run, no_minus_one, mu, logvar)
    assert fails(run, sigma_for_var, mu, logvar)


def test_iwae_from_log_weights_check():
    run = check("iwae-from-log-weights", "check_iwae_bounds")
    log_w = _synthetic_log_weights(50, 3, digits=30).float()
    run(vae.log_mean_exp, log_w, (1, 5, 50))
    no_log_k = lambda lw: torch.logsumexp(lw, dim=0)
    mean_of_logs = lambda lw: lw.mean(0)
    assert fails(run, no_log_k, log_w, (1, 5, 50))
    assert fails(run, mean_of_logs, log_w, (1, 5, 50))


def test_iwae_gap_check():
    run = check("iwae-gap", "check_iwae_gap")
    run(vae.iwae_asymptotic_gap)
    assert fails(run, lambda s2, k: s2 / (2 * k))           # Var[log w] where Var[w] / E[w]^2 belongs
    assert fails(run, lambda s2, k: math.expm1(s2) / k)      # the 1/2 of the delta method dropped


def test_prior_hole_check():
    """The prior-hole check fails when the decoder, not the codes, limits the samples.

    A toy VAE whose codes sit in ten separated clusters, one per class, and whose
    decoder blends one digit per class by how close the code is to each cluster:
    codes from the prior fall between clusters and decode to blends, codes from a
    mixture fitted to the clusters decode to clean digits. The chapter's
    Gaussian-mixture fit and the real sample-quality classifier score both; the check
    must pass. With a decoder that blurs every code to the same blend (the limit is
    the decoder), the three scores agree and the check must fail.
    """
    from sklearn.mixture import GaussianMixture

    from course_lib import quality

    check = load_check(CH3, "prior-hole")["check_prior_hole"]
    images, labels = data.load_mnist("test", source="embedded")
    x = torch.from_numpy(images).reshape(-1, 784).double() / 255
    y = torch.from_numpy(labels)
    templates = torch.stack([x[y == c][0] for c in range(10)])                            # (10, 784): one digit per class
    angles = torch.arange(10, dtype=torch.float64) * 2 * math.pi / 10
    centres = 1.6 * torch.stack([angles.cos(), angles.sin()], 1)                          # (10, 2), on a ring
    g = torch.Generator().manual_seed(0)
    codes = centres[torch.arange(2000) % 10] + 0.15 * torch.randn(2000, 2, generator=g, dtype=torch.float64)

    def sharp(z):      # pixel probabilities: the templates weighted by closeness to each cluster
        w = torch.softmax(-((z[:, None, :] - centres[None]) ** 2).sum(-1) / 0.3, 1)
        return (w @ templates).clamp(0, 1).float()

    def blurry(z):     # the decoder is the limit: every code decodes to the same blend
        return templates.mean(0).expand(len(z), -1).clamp(0, 1).float()

    def scores(decode):
        out = [quality.sample_quality(decode(torch.randn(1000, 2, generator=g, dtype=torch.float64)))["inception_score"]]
        for k in (1, 10):
            gm = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, random_state=0).fit(codes.numpy())
            out.append(quality.sample_quality(decode(torch.from_numpy(gm.sample(1000)[0])))["inception_score"])
        return out

    check(*scores(sharp))
    assert fails(check, *scores(blurry))


# --------------------------------------------------------------------------------------
# §3.7: the learned prior (eq-vae-vamp-prior)
# --------------------------------------------------------------------------------------

def test_vamp_prior_check():
    """The check passes the library's VampPrior log-density and fails the two wrong formulas its
    sentence names: pseudo-inputs fed to the encoder without their sigmoid, and the largest term
    kept instead of the sum."""
    run = check("vamp-prior", "check_vamp_prior")
    torch.manual_seed(0)
    model = vae.VampPriorVAE(16, 3, (8,), prior_components=5).double()
    with torch.no_grad():
        model.pseudo_logits.copy_(2.0 * torch.randn(5, 16, dtype=torch.float64))
    z = torch.randn(200, 3, dtype=torch.float64)
    enc, a = model.encoder, model.pseudo_logits.detach()
    with torch.no_grad():
        run(model.prior_log_prob, z, enc, a)

        def per_component(z, inputs):
            m, lv = enc(inputs).chunk(2, -1)
            return -0.5 * (((z[:, None] - m) ** 2) / lv.exp() + lv + math.log(2 * math.pi)).sum(-1)

        no_sigmoid = lambda z: torch.logsumexp(per_component(z, a), 1) - math.log(5)
        largest = lambda z: per_component(z, torch.sigmoid(a)).max(1).values - math.log(5)
        assert fails(run, no_sigmoid, z, enc, a)
        assert fails(run, largest, z, enc, a)


# --------------------------------------------------------------------------------------
# §3.12: the conditional VAE (eq-vae-cvae)
# --------------------------------------------------------------------------------------

def test_cvae_elbo_check():
    """The check passes the library's conditional ELBO and fails the wrong formula its sentence names:
    a decoder that is not given the label (its one-hot replaced by zeros)."""
    run = check("cvae-elbo", "check_cvae_elbo")
    torch.manual_seed(0)
    model = vae.ConditionalVAE(16, 3, (8,), num_classes=4).double()
    x = (torch.rand(30, 16, dtype=torch.float64) < 0.5).double()
    y = torch.randint(0, 4, (30,))
    with torch.no_grad():
        run(lambda x, y, g: model.elbo(x, generator=g, y=y), model, x, y)

        def label_blind(x, y, g):
            mu, logvar = model.encode(x, y)
            eps = torch.randn(mu.shape, generator=g, dtype=mu.dtype)
            z = mu + (0.5 * logvar).exp() * eps
            logits = model.decoder(torch.cat([z, torch.zeros(len(x), 4, dtype=x.dtype)], -1))
            rec = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
            return rec - vae.gaussian_kl(mu, logvar)

        assert fails(run, label_blind, model, x, y)


# --------------------------------------------------------------------------------------
# §3.11: the decoder's likelihood (discretized logistic, Gaussian = MSE)
# --------------------------------------------------------------------------------------

def _logistic_without_edges(x, loc, log_scale):
    """eq-vae-discretized-logistic for every level, the edge bins included as ordinary bins: tails lost."""
    h, inv_s = 0.5 / 255, torch.exp(-log_scale)
    return torch.log(torch.sigmoid((x + h - loc) * inv_s) - torch.sigmoid((x - h - loc) * inv_s)).sum(-1)


def _logistic_density_times_width(x, loc, log_scale):
    """The density at each bin's centre times the bin's width (edges kept): wrong for scales below a bin."""
    h = 0.5 / 255
    c = (x - loc) * torch.exp(-log_scale)
    log_mid = -c - 2 * torch.nn.functional.softplus(-c) - log_scale + math.log(2 * h)
    log_lo = torch.nn.functional.logsigmoid((x + h - loc) * torch.exp(-log_scale))
    log_hi = torch.nn.functional.logsigmoid(-(x - h - loc) * torch.exp(-log_scale))
    return torch.where(x < h, log_lo, torch.where(x > 1 - h, log_hi, log_mid)).sum(-1)


def test_discretized_logistic_check():
    """The check passes the library and fails the two wrong formulas its sentence names:
    no edge bins (the tails' mass lost) and the density-times-width shortcut."""
    run = check("decoder-likelihoods", "check_discretized_logistic")
    run(vae.discretized_logistic_log_prob)
    assert fails(run, _logistic_without_edges)
    assert fails(run, _logistic_density_times_width)


def test_gaussian_mse_check():
    """The check passes GreyVAE with a fixed sigma and fails sigma written where sigma^2 belongs."""
    run = check("decoder-likelihoods", "check_gaussian_mse")
    torch.manual_seed(0)
    model = vae.GreyVAE(16, 3, (8,), likelihood="gaussian", sigma=0.1).double()
    run(model)

    class SigmaForVariance(torch.nn.Module):      # the same decoder, with logvar = log sigma instead of 2 log sigma
        def __init__(self, inner):
            super().__init__()
            self.inner, self.sigma, self.data_dim, self.latent_dim = inner, inner.sigma, inner.data_dim, inner.latent_dim

        def decode(self, z):
            return self.inner.decode(z)

        def log_px_given_z(self, z, x):
            mu = self.decode(z)
            return vae.diag_gaussian_log_prob(x, mu, torch.full_like(mu, math.log(self.sigma)))

    assert fails(run, SigmaForVariance(model))
