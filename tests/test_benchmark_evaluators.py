"""The benchmarks' own evaluators agree with the library's bounds (a benchmark that scores a model
against the wrong formula reports a silent wrong number)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from course_lib import vae

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def vae_bench():
    sys.path.insert(0, str(BENCH))
    try:
        import vae_mnist
        yield vae_mnist
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.parametrize("cls", [vae.VAE, vae.VampPriorVAE, vae.MixturePriorVAE])
def test_vae_benchmark_bounds_use_each_models_own_prior(vae_bench, cls):
    """The benchmark's ELBO and IWAE equal the model's own log_weights formula with its prior:
    for a learned prior, scoring codes under N(0, I) instead gives another (wrong) number."""
    torch.manual_seed(0)
    kwargs = {"prior_components": 5} if cls is not vae.VAE else {}
    model = cls(16, 3, (8,), **kwargs).double()
    with torch.no_grad():   # move a learned prior away from N(0, I), so that the two formulas differ
        for name, p in model.named_parameters():
            if "prior" in name or "pseudo" in name:
                p.add_(torch.randn_like(p))
    x = (torch.rand(7, 16, generator=torch.Generator().manual_seed(1)) < 0.4).double()
    elbo, iwae = vae_bench.bounds(model, x, k=20, seed=3, batch=4, chunk=8)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        rows = []
        for i in range(0, 7, 4):        # the same noise, drawn in the same order as the benchmark draws it
            mb, lb, xb = mu[i:i + 4], logvar[i:i + 4], x[i:i + 4]
            eps = torch.cat([torch.randn((min(8, 20 - j), *mb.shape), generator=gen) for j in range(0, 20, 8)])
            z = mb + (0.5 * lb).exp() * eps
            log_q = vae.diag_gaussian_log_prob(z, mb, lb)
            rows.append(model.log_px_given_z(z, xb) + model.prior_log_prob(z) - log_q)
    expected_elbo = torch.cat([r[0] for r in rows])
    expected_iwae = torch.cat([torch.logsumexp(r, 0) - torch.log(torch.tensor(20.0, dtype=torch.float64)) for r in rows])
    assert torch.allclose(elbo.double(), expected_elbo, atol=1e-8) and torch.allclose(iwae.double(), expected_iwae, atol=1e-8)
