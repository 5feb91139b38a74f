#!/usr/bin/env python3
"""Train the MNIST classifier behind the sample-quality measure (``course_lib.quality``), and print its SHA-256.

Command (seed 0; run from the repository root):

    python scripts/make_classifier_checkpoint.py --source mnist --root ../shared/data/mnist --threads 1

``--source mnist`` reads the official IDX files from ``--root`` without
downloading: the official 10,000 test digits, and the training digits found
there (the project's offline copy holds the first 24,345 official training
images, so the classifier is trained on those, not on all 60,000).
``--source embedded`` trains on the 4,000 embedded training digits instead and
still measures on the official test digits if ``--root`` holds them.

Model: ``quality.MNISTClassifier()`` (conv 32, conv 64, linear 64, dropout 0.25;
about 0.2 M float32 parameters), trained by ``quality.train_classifier`` (Adam,
lr 2e-3, batch 128, 4 epochs; every image shown grey or binarized, half and
half, and shifted by up to 2 pixels). Writes ``course_lib/assets/mnist_classifier.pt``
with ``quality.save_classifier`` (``course_lib.pretrained``: embedded digest,
``weights_only=True``), the test accuracy and the reference row (the measures
on the official test digits) as metadata, and prints the file's SHA-256, which
goes into ``quality.CLASSIFIER_SHA256`` (and the reference row into
``quality.REFERENCE``).

Measured with the command above (torch 2.13, CPU, 1 thread, 268 s of training,
764 steps): test accuracy 0.9825 on the 10,000 official test digits (grey),
0.9766 on one stochastic binarization of them (seed 1); the reference rows
(``quality.REFERENCE``) Inception score 9.405, confident fraction 0.947 (grey),
9.320 and 0.939 (binarized). The file: 884,458 bytes, SHA-256
58c90629b2a64b55cb215737cb457c078917eb8abc432f713dc3534a89463957
(``quality.CLASSIFIER_SHA256``). The training prefix (24,345 images) is not the
full 60,000: a classifier trained on all of them would be a little more accurate.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import torch

import course_lib
from course_lib import data, quality

OUT = os.path.join(os.path.dirname(__file__), "..", "course_lib", "assets", "mnist_classifier.pt")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("mnist", "embedded"), default="mnist")
    ap.add_argument("--root", default=os.path.join("..", "shared", "data", "mnist"),
                    help="folder of the official MNIST IDX files (not downloaded)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args()
    print(f"threads={course_lib.set_num_threads(args.threads)}")
    course_lib.seed_everything(args.seed)
    if args.source == "mnist":
        with warnings.catch_warnings():  # the offline copy holds a prefix of the training file
            warnings.simplefilter("ignore", UserWarning)
            train_images, train_labels = data.load_mnist("train", source="mnist", root=args.root, download=False, verify=False)
    else:
        train_images, train_labels = data.load_mnist("train", source="embedded")
    test_images, test_labels = data.load_mnist("test", source="mnist", root=args.root, download=False)
    print(f"train_digits={len(train_images)} ({args.source}) test_digits={len(test_images)} (official test set)")
    model = quality.MNISTClassifier()
    cfg = quality.ClassifierConfig(epochs=args.epochs, seed=args.seed, progress=False)
    tic = time.perf_counter()
    model, hist = quality.train_classifier(model, train_images, train_labels, cfg)
    print(f"epochs={len(hist['epoch'])} steps={hist['step'][-1]} train_seconds={time.perf_counter() - tic:.1f} "
          f"train_accuracy={hist['train_accuracy'][-1]:.4f}")
    grey = torch.from_numpy(test_images).float() / 255.0
    binary = data._binarize_seeded(torch.from_numpy(test_images)[:, None], 1)[:, 0]
    acc = quality.accuracy(model, grey, test_labels)
    acc_binary = quality.accuracy(model, binary, test_labels)
    ref = quality.sample_quality(grey, model)
    ref_binary = quality.sample_quality(binary, model)
    print(f"test_accuracy={acc:.4f} test_accuracy_binarized={acc_binary:.4f}")
    print(f"reference grey:      {quality.format_quality(ref)}")
    print(f"reference binarized: {quality.format_quality(ref_binary)}")
    sha = quality.save_classifier(
        model, args.out, test_accuracy=acc, test_accuracy_binarized=acc_binary,
        test_inception_score=ref["inception_score"], test_confident_fraction=ref["confident_fraction"],
        test_inception_score_binarized=ref_binary["inception_score"],
        test_confident_fraction_binarized=ref_binary["confident_fraction"],
        train_digits=len(train_images), source=args.source, epochs=args.epochs, seed=args.seed,
    )
    print(f"wrote {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={sha}")


if __name__ == "__main__":
    main()
