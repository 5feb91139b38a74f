#!/usr/bin/env python3
"""Train the VAE that Chapter 3 loads, and print its SHA-256.

Command (seed 0; the shipped file was trained with exactly this, then re-saved with
``--resave`` below):

    python scripts/make_vae_checkpoint.py --epochs 400 --threads 1

Model: ``VAE(784, latent_dim=32, hidden_dims=(400, 200))`` (ReLU MLPs,
Bernoulli decoder), trained with ``vae.train_vae`` (ELBO, Adam lr 1e-3, batch
100, fresh stochastic binarization every epoch) on the first 3,600 of the
4,000 embedded training digits, with early stopping on the ELBO of the other
400 (patience 30 epochs; the best epoch is kept). A fixed epoch cap, not a
time budget, so the file does not depend on the machine's speed.

Writes ``course_lib/assets/vae_mnist.pt`` (float16 weights, about 1.6 MB,
loadable with ``weights_only=True``, with an embedded SHA-256 digest of its
bytes: ``course_lib.pretrained``) with the measured test ELBO and test
log p(x) (IWAE, k = 500, on the 1,000 embedded test digits binarized with
``vae.TEST_BINARIZATION_SEED``), and prints its SHA-256, which goes into
``VAE_CHECKPOINT_SHA256`` in ``notebooks/03_vae.ipynb`` (and the same line of
``student/03_vae.ipynb``).

``--resave`` re-writes an existing file in the current format, with the same
float16 weights and metadata (so every number the chapter prints is unchanged):
the shipped file was trained with the command above in the format before
embedded digests (SHA-256 172afea5d7aef2154529a437ebce38ff0a697cdf6e0b7e007f9f0c032fa4e4d5),
then re-saved with

    python scripts/make_vae_checkpoint.py --resave --sha256 172afea5d7aef2154529a437ebce38ff0a697cdf6e0b7e007f9f0c032fa4e4d5

which gives SHA-256 58865633b89b6f29a406b99485570d7a531d1e4788c908fc2b6a4c7c8f65853c (torch 2.13;
the re-save is deterministic: the same input gives the same bytes).
"""

from __future__ import annotations

import argparse
import os

import torch

import course_lib
from course_lib import data, vae

ARCH = dict(data_dim=784, latent_dim=32, hidden_dims=(400, 200))
OUT = os.path.join(os.path.dirname(__file__), "..", "course_lib", "assets", "vae_mnist.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--k-eval", type=int, default=500)
    ap.add_argument("--out", default=OUT)
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
    train_images, _ = data.load_mnist("train", source="embedded")
    test_images, _ = data.load_mnist("test", source="embedded")
    train_px = torch.from_numpy(train_images).reshape(-1, 784)
    valid_x = vae.binarize_fixed(train_px[3600:], seed=2)
    test_x = vae.binarize_fixed(torch.from_numpy(test_images).reshape(-1, 784), vae.TEST_BINARIZATION_SEED)
    model = vae.VAE(**ARCH)
    cfg = vae.VAEConfig(epochs=args.epochs, batch_size=100, lr=1e-3, patience=30, seed=args.seed, progress=False)
    model, hist = vae.train_vae(model, train_px[:3600], cfg, valid_x)
    print(f"epochs={len(hist['epoch'])} best_epoch={hist['best_epoch']} stop={hist['stop_reason']} "
          f"train_seconds={hist['seconds'][-1]:.1f}")
    # evaluate the float16-rounded weights that are shipped
    sha = vae.save_pretrained(model, args.out)
    model, _ = vae.load_pretrained(args.out, sha)
    g = torch.Generator().manual_seed(1234)
    elbo = vae.evaluate_bounds(model, test_x, 1, generator=g).mean().item()
    log_px = vae.evaluate_bounds(model, test_x, args.k_eval, generator=g).mean().item()
    print(f"test_elbo_nats={elbo:.2f} test_log_px_nats={log_px:.2f} (IWAE k={args.k_eval})")
    sha = vae.save_pretrained(model, args.out, test_elbo_nats=elbo, test_log_px_nats=log_px, k_eval=args.k_eval,
                              epochs_run=len(hist["epoch"]), best_epoch=hist["best_epoch"], seed=args.seed,
                              train_digits=3600)
    print(f"wrote {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={sha}")


if __name__ == "__main__":
    main()
