"""The conditional VAE of Chapter 3 (vae.ConditionalVAE): the label reaches both networks and steers samples."""

from __future__ import annotations

import pytest
import torch

from course_lib import vae


def toy(n: int = 400, d: int = 16, classes: int = 4, seed: int = 0):
    """Each class is one fixed binary template (uint8 pixels 0/255), so the label alone fixes the image."""
    g = torch.Generator().manual_seed(seed)
    templates = (torch.rand(classes, d, generator=g) < 0.5).to(torch.uint8) * 255
    labels = torch.randint(0, classes, (n,), generator=g)
    return templates[labels], labels, templates


def test_the_label_reaches_the_encoder_and_the_decoder():
    """Catches a model that drops the one-hot from either network."""
    torch.manual_seed(0)
    model = vae.ConditionalVAE(16, 2, (8,), num_classes=4)
    x = (torch.rand(3, 16) < 0.5).float()
    z = torch.randn(3, 2)
    y0, y1 = torch.zeros(3, dtype=torch.long), torch.ones(3, dtype=torch.long)
    assert not torch.allclose(model.encode(x, y0)[0], model.encode(x, y1)[0])
    assert not torch.allclose(model.decode(z, y0), model.decode(z, y1))


def test_elbo_is_reconstruction_minus_the_closed_form_kl():
    torch.manual_seed(0)
    model = vae.ConditionalVAE(16, 2, (8,), num_classes=4)
    x, y = (torch.rand(5, 16) < 0.5).float(), torch.tensor([0, 1, 2, 3, 0])
    elbo = model.elbo(x, generator=torch.Generator().manual_seed(1), y=y)
    mu, logvar = model.encode(x, y)
    z = vae.reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    by_hand = vae.bernoulli_log_prob(model.decode(z, y), x) - vae.gaussian_kl(mu, logvar)
    torch.testing.assert_close(elbo, by_hand)
    assert model.iwae_bound(x, 7, torch.Generator().manual_seed(2), y=y).shape == (5,)


def test_training_with_labels_draws_the_requested_class_and_misaligned_labels_do_not():
    """With the label fixing the image, samples of class c must match template c; a model trained on
    labels shuffled against their images cannot (so a trainer that drops or misaligns labels fails)."""
    images, labels, templates = toy()
    cfg = vae.VAEConfig(epochs=60, batch_size=50, lr=1e-2, progress=False)

    def accuracy(train_labels):
        torch.manual_seed(0)
        model = vae.ConditionalVAE(16, 2, (32,), num_classes=4)
        model, _ = vae.train_vae(model, images, cfg, train_labels=train_labels)
        ask = torch.arange(4).repeat_interleave(50)
        with torch.no_grad():
            means = torch.sigmoid(model.decode(torch.randn(200, 2, generator=torch.Generator().manual_seed(3)), ask))
        return ((means > 0.5).float() == (templates[ask] > 0).float()).float().mean().item()

    assert accuracy(labels) > 0.95
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(9))]
    assert accuracy(shuffled) < 0.85


def test_labels_are_required_and_checked():
    model = vae.ConditionalVAE(16, 2, (8,), num_classes=4)
    x = (torch.rand(3, 16) < 0.5).float()
    with pytest.raises(ValueError, match="y must be given"):
        model.elbo(x)
    with pytest.raises(ValueError, match="y must hold labels in 0..3"):
        model.elbo(x, y=torch.tensor([0, 1, 4]))
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(3,\)"):
        model.elbo(x, y=torch.tensor([0.0, 1.0, 2.0]))
    # the one label check is shared with the autoregressive models (checks.class_labels):
    # complex and bool labels are refused too, and uint8 labels work like int64 ones
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(3,\)"):
        model.elbo(x, y=torch.tensor([0, 1, 2], dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"y must be an integer tensor of shape \(3,\)"):
        model.elbo(x, y=torch.tensor([False, True, True]))
    torch.manual_seed(0)
    a = model.elbo(x, y=torch.tensor([0, 1, 3], dtype=torch.uint8))
    torch.manual_seed(0)
    torch.testing.assert_close(a, model.elbo(x, y=torch.tensor([0, 1, 3])))
    images, labels, _ = toy(n=20)
    with pytest.raises(ValueError, match="train_labels"):
        vae.train_vae(model, images, vae.VAEConfig(epochs=1, progress=False))
    with pytest.raises(ValueError, match="not conditional"):
        vae.train_vae(vae.VAE(16, 2, (8,)), images, vae.VAEConfig(epochs=1, progress=False), train_labels=labels)
    with pytest.raises(ValueError, match="num_classes"):
        vae.ConditionalVAE(16, 2, (8,), num_classes=1)


def test_conditional_round_trip(tmp_path):
    model = vae.ConditionalVAE(16, 2, (8,), num_classes=4)
    sha = vae.save_pretrained(model, tmp_path / "c.pt")
    back, _ = vae.load_pretrained(tmp_path / "c.pt", sha)
    assert type(back) is vae.ConditionalVAE and back.num_classes == 4
    z, y = torch.randn(3, 2), torch.tensor([1, 2, 3])
    torch.testing.assert_close(back.decode(z, y), model.decode(z, y).detach(), atol=2e-2, rtol=1e-2)


SHIPPED_CVAE = "678da800b666166855b7dfba9939668397a7798115cca069f3e6c0a7f1adba23"


def test_shipped_conditional_vae_draws_the_requested_digit():
    """Chapter 3's vae_cvae_mnist.pt: pinned, at most 2 MB, and its samples are read as the class asked for."""
    import importlib.resources
    import os

    from course_lib import quality

    path = importlib.resources.files("course_lib") / "assets" / "vae_cvae_mnist.pt"
    assert os.path.getsize(path) <= 2_000_000
    model, meta = vae.load_pretrained(path, sha256=SHIPPED_CVAE)
    assert type(model) is vae.ConditionalVAE and model.num_classes == 10 and meta["class_agreement"] >= 0.8
    labels = torch.arange(10).repeat_interleave(20)
    with torch.no_grad():
        means = torch.sigmoid(model.decode(torch.randn(200, model.latent_dim, generator=torch.Generator().manual_seed(4)), labels))
    assert quality.sample_quality(means, labels=labels)["class_agreement"] > 0.8
