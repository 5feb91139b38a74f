#!/usr/bin/env python3
"""Train the VAE that Chapter 3 loads, and print its SHA-256.

Command of the shipped file (seed 0; run from the repository root):

    python scripts/make_vae_checkpoint.py --source mnist --root ../shared/data/mnist --epochs 100 --patience 20 --threads 1

Data: the official MNIST training digits in ``--root`` (the project's offline
copy holds the first 24,345 of the 60,000), minus the 1,000 embedded "test"
digits that Chapter 3 evaluates on (``scripts/_training_digits.py``), so those
stay held out: 22,345 training digits and the last 1,000 as the validation set
of early stopping (binarized once, seed 2). ``--source embedded`` trains on the
4,000 embedded digits instead (the earlier file: the first 3,600, the other 400
for validation).

Model: ``VAE(784, latent_dim=32, hidden_dims=(400, 200))`` (ReLU MLPs,
Bernoulli decoder), trained with ``vae.train_vae`` (ELBO, Adam lr 1e-3, batch
100, fresh stochastic binarization every epoch), early stopping on the
validation ELBO (patience ``--patience`` epochs; the best epoch is kept). A
fixed epoch cap, not a time budget, so the file does not depend on the
machine's speed.

Writes ``course_lib/assets/vae_mnist.pt`` (float16 weights, about 1.6 MB,
loadable with ``weights_only=True``, with an embedded SHA-256 digest of its
bytes: ``course_lib.pretrained``) with the measured test ELBO and test
log p(x) (IWAE, k = 500, on the 1,000 embedded test digits binarized with
``vae.TEST_BINARIZATION_SEED``) and the sample quality (``course_lib.quality``:
1,000 codes z ~ N(0, I), seed 0, decoded to Bernoulli means), and prints its
SHA-256, which goes into ``VAE_CHECKPOINT_SHA256`` in ``notebooks/03_vae.ipynb``
(and the same line of ``student/03_vae.ipynb``).

Measured for the shipped file (torch 2.13, CPU, 1 thread on a shared machine,
1,408 s of training): 100 epochs, best epoch 94 (still improving), test ELBO
-101.71 nats, test log p(x) >= -96.20 nats (IWAE-500); samples: Inception
score 6.19, confident fraction 0.585 (the official test digits: 9.41 and
0.947); 1,621,468 bytes, SHA-256
ddaeff75ee23ead98d7d2ecd09fb06085afe56755a82636ce3b1cf10e55d2971. Issue 22 asked
for >= 8 and >= 0.7: missed (see below). The file before it (the first command
below, 3,600 embedded digits, 151 epochs, best 121): test ELBO -112.94, log p(x)
-105.86, samples 5.26 and 0.477.

Why the samples still score 6.2: the decoder is good (its reconstructions of the
test digits score 8.98, confident fraction 0.90), but only 12 of the 32 latent
coordinates are used and codes drawn from the prior fall between the classes'
regions of the aggregate posterior, which decode to blends (a smaller
temperature makes it worse: 5.47 at 0.8). Not tried for lack of CPU time: longer
training, a smaller latent space, a KL warm-up.

**The VampPrior file** ``course_lib/assets/vae_vamp_mnist.pt`` (Chapter 3, §3.7: the
prior hole repaired inside the model) is the same architecture with a learned prior, the
VampPrior with 200 pseudo-inputs (``vae.VampPriorVAE``), made by

    python scripts/make_vae_checkpoint.py --source mnist --root ../shared/data/mnist --epochs 100 --patience 20 --threads 1 --prior vamp --prior-components 200 --out course_lib/assets/vae_vamp_mnist.pt

Measured (torch 2.13, CPU, 1 thread, 578 s of training beside other runs): 100 epochs,
best epoch 98 (still improving); test ELBO -98.87 nats, test log p(x) >= -93.55 nats
(IWAE-500); its own samples (codes from the learned prior, decoded means, seed 0):
Inception score 8.58, confident fraction 0.874, which meets issue 22's targets (8 and
0.7); 1,935,385 bytes, SHA-256 58dddd7d08708dddfaa724a93820da847951d925061232004d0fe7e6086ad0c5.

**The conditional VAE file** ``course_lib/assets/vae_cvae_mnist.pt`` (Chapter 3, §3.12:
``vae.ConditionalVAE``, the label given to the encoder and the decoder; same sizes) is made by

    python scripts/make_vae_checkpoint.py --source mnist --root ../shared/data/mnist --epochs 100 --patience 20 --threads 1 --conditional --out course_lib/assets/vae_cvae_mnist.pt

Measured (torch 2.13, CPU, 1 thread, 314 s of training beside other runs): 100 epochs,
best epoch 96; test ELBO of log p(x | y) -96.40 nats, IWAE-500 -90.87 nats (the test
digits' own labels); 1,000 samples, 100 per class (decoded means, seed 0): Inception score
7.86, confident fraction 0.787, class agreement 0.916; 1,633,564 bytes, SHA-256
678da800b666166855b7dfba9939668397a7798115cca069f3e6c0a7f1adba23.

Learned priors tried the same way and not shipped (``--prior mixture``, a Gaussian mixture
with free means, variances and weights, ``vae.MixturePriorVAE``): 50 components, 8.08 and
0.808 (test ELBO -98.94, IWAE-500 -93.34; the chapter's seed-1 draw gave 8.01, at the edge
of the target); 10 components, 7.22 and 0.712 (only 6 components kept weight, with
variances near 1.7); codes from the 10-component prior at a reduced temperature (the
components' standard deviations times T) did not reach 8 either: 7.34, 7.51 and 7.29 at
T = 0.85, 0.7 and 0.5.

``--resave`` re-writes an existing file in the current format, with the same
float16 weights and metadata (so every number the chapter prints is unchanged).
The file before this one was trained with

    python scripts/make_vae_checkpoint.py --source embedded --valid-digits 400 --epochs 400 --threads 1

(the earlier script, patience 30) in the format before embedded digests (SHA-256
172afea5d7aef2154529a437ebce38ff0a697cdf6e0b7e007f9f0c032fa4e4d5), then re-saved with

    python scripts/make_vae_checkpoint.py --resave --sha256 172afea5d7aef2154529a437ebce38ff0a697cdf6e0b7e007f9f0c032fa4e4d5

which gave SHA-256 58865633b89b6f29a406b99485570d7a531d1e4788c908fc2b6a4c7c8f65853c (torch 2.13;
the re-save is deterministic: the same input gives the same bytes).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import course_lib
from course_lib import data, quality, vae
from _training_digits import training_digits

ARCH = dict(data_dim=784, latent_dim=32, hidden_dims=(400, 200))
OUT = os.path.join(os.path.dirname(__file__), "..", "course_lib", "assets", "vae_mnist.pt")


@torch.no_grad()
def sample_quality(model, n: int = 1000, seed: int = 0) -> dict:
    """The quality measures of ``n`` samples z ~ N(0, I), decoded to their Bernoulli means (what the chapter shows)."""
    g = torch.Generator().manual_seed(seed)
    z = model.sample_prior(n, g)  # N(0, I) for a VAE (the same draws as torch.randn), the mixture for a MixturePriorVAE
    return quality.sample_quality(torch.sigmoid(model.decode(z)).float())


@torch.no_grad()
def conditional_sample_quality(model, n: int = 1000, seed: int = 0) -> dict:
    """A ConditionalVAE's ``n`` samples, n / 10 of each class, decoded to their Bernoulli means, with the class agreement."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(10).repeat_interleave(n // 10)
    z = model.sample_prior(len(labels), g)
    return quality.sample_quality(torch.sigmoid(model.decode(z, labels)).float(), labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("mnist", "embedded"), default="mnist")
    ap.add_argument("--root", default=os.path.join("..", "shared", "data", "mnist"),
                    help="folder of the official MNIST IDX files (not downloaded)")
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--patience", type=int, default=30)
    ap.add_argument("--valid-digits", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k-eval", type=int, default=500)
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--prior-components", type=int, default=0,
                    help="K > 0: a MixturePriorVAE with a learned K-component Gaussian mixture prior; 0: N(0, I)")
    ap.add_argument("--prior", choices=("mixture", "vamp"), default="mixture",
                    help="with --prior-components K: a learned Gaussian mixture or the VampPrior (K pseudo-inputs)")
    ap.add_argument("--conditional", action="store_true",
                    help="a ConditionalVAE: the encoder and the decoder see the digit's label")
    ap.add_argument("--latent-dim", type=int, default=ARCH["latent_dim"])
    ap.add_argument("--hidden-dims", type=int, nargs="+", default=list(ARCH["hidden_dims"]))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a GPU run is not bitwise reproducible on a CPU)")
    ap.add_argument("--resave", action="store_true",
                    help="re-save the existing --out file in the current format (same weights and metadata); no training")
    ap.add_argument("--sha256", default=None,
                    help="with --resave: the SHA-256 of the file to re-save (needed for a file without an embedded digest)")
    args = ap.parse_args()
    if args.resave:
        model, meta = vae.load_pretrained(args.out, args.sha256)
        sha = vae.save_pretrained(model, args.out, **meta)
        print(f"re-saved {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={sha}")
        return
    print(f"threads={course_lib.set_num_threads(args.threads)}")
    course_lib.seed_everything(args.seed)
    train_images, train_labels = training_digits(args.source, args.root)
    test_images, test_labels = data.load_mnist("test", source="embedded")
    train_y = torch.from_numpy(train_labels).long()
    test_y = torch.from_numpy(test_labels).long()
    train_px = torch.from_numpy(train_images).reshape(-1, 784)
    n_train = len(train_px) - args.valid_digits
    valid_x = vae.binarize_fixed(train_px[n_train:], seed=2)
    test_x = vae.binarize_fixed(torch.from_numpy(test_images).reshape(-1, 784), vae.TEST_BINARIZATION_SEED)
    print(f"train_digits={n_train} valid_digits={args.valid_digits} ({args.source})")
    arch = dict(ARCH, latent_dim=args.latent_dim, hidden_dims=tuple(args.hidden_dims))
    if args.conditional:
        model = vae.ConditionalVAE(**arch, num_classes=10)
    elif args.prior_components:
        cls = vae.VampPriorVAE if args.prior == "vamp" else vae.MixturePriorVAE
        model = cls(**arch, prior_components=args.prior_components)
    else:
        model = vae.VAE(**arch)
    model.to(args.device)
    print(f"model={type(model).__name__} arch={arch} prior_components={args.prior_components} device={args.device}")
    cfg = vae.VAEConfig(epochs=args.epochs, batch_size=100, lr=1e-3, patience=args.patience, seed=args.seed, progress=False)
    tic = time.perf_counter()
    labels = dict(train_labels=train_y[:n_train], valid_y=train_y[n_train:]) if args.conditional else {}
    model, hist = vae.train_vae(model, train_px[:n_train], cfg, valid_x, **labels)
    print(f"epochs={len(hist['epoch'])} best_epoch={hist['best_epoch']} stop={hist['stop_reason']} "
          f"train_seconds={time.perf_counter() - tic:.1f}")
    # evaluate the float16-rounded weights that are shipped
    sha = vae.save_pretrained(model, args.out)
    model, _ = vae.load_pretrained(args.out, sha)
    g = torch.Generator().manual_seed(1234)
    ty = dict(y=test_y) if args.conditional else {}
    elbo = vae.evaluate_bounds(model, test_x, 1, generator=g, **ty).mean().item()
    log_px = vae.evaluate_bounds(model, test_x, args.k_eval, generator=g, **ty).mean().item()
    q = conditional_sample_quality(model) if args.conditional else sample_quality(model)
    print(f"test_elbo_nats={elbo:.2f} test_log_px_nats={log_px:.2f} (IWAE k={args.k_eval})")
    print(f"samples (1,000 Bernoulli means, seed 0): {quality.format_quality(q)}")
    sha = vae.save_pretrained(model, args.out, test_elbo_nats=elbo, test_log_px_nats=log_px, k_eval=args.k_eval,
                              epochs_run=len(hist["epoch"]), best_epoch=hist["best_epoch"], seed=args.seed,
                              train_digits=n_train, source=args.source, device=args.device,
                              inception_score=q["inception_score"], confident_fraction=q["confident_fraction"],
                              **({"class_agreement": q["class_agreement"]} if args.conditional else {}))
    print(f"wrote {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={sha}")


if __name__ == "__main__":
    main()
