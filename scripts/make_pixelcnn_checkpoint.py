#!/usr/bin/env python3
"""Train the class-conditional Gated PixelCNN that Chapter 2 loads, and print its SHA-256.

Commands (seed 0):

    python scripts/make_pixelcnn_checkpoint.py --epochs 2 --threads 1          # the shipped file
    python scripts/make_pixelcnn_checkpoint.py --epochs 8 --threads 2          # better, not yet run

The shipped file was made with the first command (torch 2.13, CPU) by the
previous version of this script, which wrote a plain ``torch.save`` of
``{"arch", "state_dict", "test_nll_nats", "steps", "seed"}``: 250 steps, test
NLL -log p(x|y) = 102.43 nats on the 1,000 embedded test digits, 243,482
bytes, SHA-256 aeda3996a383cfc8f9162665218143cbe815f1bcef428c09c616955351b58344
(pinned as ``autoregressive.PRETRAINED_SHA256``; ``autoregressive.load_pretrained``
reads it). ``--epochs N`` is reproducible on the same CPU and torch version; a
``--max-seconds`` budget is not (the step count depends on the machine's
speed).

Model: ``GatedPixelCNN(hidden_channels=24, num_layers=4, kernel_size=3,
num_classes=10)`` (7x7 first layer), trained with ``autoregressive.train``
(Adam, lr 3e-3, batch 32, fresh stochastic binarization every epoch) on the
4,000 embedded MNIST training digits until the time budget is spent. Writes
``course_lib/assets/gated_pixelcnn_mnist.pt`` with ``autoregressive.save_pretrained``
(the class, constructor arguments and weights, the measured test NLL, steps and
seed as metadata, an embedded SHA-256; loadable with ``weights_only=True``, well
under 2 MB) and prints its SHA-256. A new file has a new hash: it goes into
``CHECKPOINT_SHA256`` in ``notebooks/02_pixelcnn.ipynb`` and
``PRETRAINED_SHA256`` in ``course_lib/autoregressive/pretrained.py``. A longer
budget (e.g. ``--max-seconds 900``) gives better samples; then update the hash.
"""

from __future__ import annotations

import argparse
import os

import torch

import course_lib
from course_lib import autoregressive as ar
from course_lib import data

ARCH = dict(hidden_channels=24, num_layers=4, kernel_size=3, num_classes=10)
OUT = os.path.join(os.path.dirname(__file__), "..", "course_lib", "assets", "gated_pixelcnn_mnist.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-seconds", type=float, default=None, help="training time budget (wall clock)")
    ap.add_argument("--epochs", type=int, default=None, help="train exactly this many epochs (reproducible)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    print(f"threads={course_lib.set_num_threads(args.threads)}")
    course_lib.seed_everything(args.seed)
    train_images, train_labels = data.load_mnist("train", source="embedded")
    test_images, test_labels = data.load_mnist("test", source="embedded")
    test_x = ar.binarize_fixed(test_images, seed=1)
    model = ar.GatedPixelCNN(**ARCH)
    if (args.max_seconds is None) == (args.epochs is None):
        ap.error("give exactly one of --max-seconds and --epochs")
    cfg = ar.TrainConfig(epochs=args.epochs or 1000, batch_size=32, lr=3e-3, seed=args.seed,
                         max_seconds=args.max_seconds, progress=False)
    model, hist = ar.train(model, torch.from_numpy(train_images), cfg, labels=torch.from_numpy(train_labels))
    nll = ar.evaluate_nll(model, test_x, torch.from_numpy(test_labels))
    print(f"steps={hist['step'][-1]} train_seconds={hist['seconds'][-1]:.1f} test_nll_nats={nll:.2f}")
    digest = ar.save_pretrained(model, args.out, test_nll_nats=nll, steps=hist["step"][-1], seed=args.seed)
    print(f"wrote {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={digest}")


if __name__ == "__main__":
    main()
