#!/usr/bin/env python3
"""Train the class-conditional Gated PixelCNN that Chapter 2 loads, and print its SHA-256.

Commands of the shipped file (seed 0; run from the repository root, on a GPU), in two stages.
Stage 1 (its output was the file shipped before, SHA-256 e5dfcce1..., described below):

    python scripts/make_pixelcnn_checkpoint.py --source mnist --root ../shared/data/mnist --epochs 60 --max-seconds 270 --hidden-channels 24 --num-layers 8 --lr 3e-3 --batch-size 32 --device cuda --quality-samples 1000 --out stage1.pt

Stage 2 continues those weights at a lower learning rate and a larger batch:

    python scripts/make_pixelcnn_checkpoint.py --source mnist --root ../shared/data/mnist --epochs 200 --max-seconds 390 --hidden-channels 24 --num-layers 8 --lr 1e-3 --batch-size 64 --device cuda --quality-samples 1000 --init stage1.pt

(In the GPU run, stage 1's file was the shipped one, so ``--init`` named
``course_lib/assets/gated_pixelcnn_mnist.pt`` at the time.)

Each stage ran on one NVIDIA H200 beside other variants of its command (the
processes shared the GPU; ``scripts/pixelcnn_gpu_sweep.sh`` with STAGE=1 and STAGE=2),
so the time budget, not the epoch count, stopped it: the file is not reproducible bit for bit, and a CPU run of the
same command makes another file. Its provenance is this command, the
metadata it stores, and the SHA-256 below.

Data: the official MNIST training digits in ``--root`` (the project's offline copy
holds the first 24,345 of the 60,000; read without downloading), minus the 1,000
embedded "test" digits that Chapter 2 scores the model on (``scripts/_training_digits.py``),
so those stay held out: 23,345 digits with their labels. ``--source embedded``
trains on the 4,000 embedded training digits instead (the earlier file).

Model (defaults): ``GatedPixelCNN(hidden_channels=24, num_layers=8, kernel_size=3,
num_classes=10)`` (7x7 first layer; 107,641 parameters), trained with
``autoregressive.train`` (Adam, lr ``--lr``, batch ``--batch-size``, fresh stochastic
binarization every epoch, the labels shuffled with their images). ``--epochs N`` is
reproducible on the same CPU and torch version; a ``--max-seconds`` budget that stops
the run is not (the run's ``stop_reason`` is stored; a ``--checkpoint`` lets it be
resumed to the same weights). The trained weights are written as soon as training
ends, then again with the measurements. Writes
``course_lib/assets/gated_pixelcnn_mnist.pt`` with
``autoregressive.save_pretrained(..., flat=True)`` (the layout Chapters 2 and 3
read with ``torch.load(weights_only=True)``: ``arch``, ``state_dict`` and the
metadata side by side; an embedded SHA-256; well under 2 MB) and prints its
SHA-256, which goes into ``CHECKPOINT_SHA256`` in ``notebooks/02_pixelcnn.ipynb``
(and ``student/``) and ``PRETRAINED_SHA256`` in ``course_lib/autoregressive/pretrained.py``.
Metadata: ``test_nll_nats`` (-log p(x | y) on the 1,000 embedded test digits
binarized with seed 1, what Chapter 2 recomputes), ``official_test_nll_nats``
(the first 1,000 official test digits), ``likelihood_class_accuracy`` (how often
argmax_c log p(x | c) is the true class of 500 official test digits: does the
model use its label?), steps, epochs, seed, source, train_digits, stop_reason, and
with ``--quality-samples N`` the ``course_lib.quality`` measures of N class-conditional
samples (N / 10 per class, seed 0): ``inception_score``, ``confident_fraction``,
``class_agreement``.

Measured for the shipped file (torch 2.11 with CUDA on the H200; stage 2): 18,768 steps in
all (9,493 in stage 1, 9,275 in stage 2: 25 epochs of batches of 64 and part of a 26th, cut
by the 390 s budget); test NLL 82.57 nats (embedded test digits), 80.85 (official);
likelihood class accuracy 0.972; 1,000 samples (seed 0): Inception score 7.94, confident
fraction 0.788, class agreement 0.837; a second draw of 1,000 (seed 1, held out from the
choice below): 7.99, 0.787, 0.845 (issue 22 asks for 7, 0.6 and 0.8: all met); 456,577
bytes, SHA-256 4e942a3772985194710ba4ccf01d9e3db79141d657aafed88d2fd71a823da725. The
``epochs`` entry of its metadata counts stage 2 only; ``steps`` counts both.

Stage 2's other variants (390 s each beside it; seed-0 draw: Inception score,
confident fraction, class agreement | seed-1 draw | test NLL): continued at lr 2e-3,
batch 32: 7.87, 0.776, 0.827 | 7.79, 0.770, 0.827 | 83.02; lr 1e-3, batch 32: 7.80,
0.773, 0.816 | 7.86, 0.773, 0.831 | 82.82; lr 5e-4, batch 64: 7.78, 0.781, 0.821 | 7.85,
0.782, 0.856 | 82.59; from scratch, 24 channels x 12 layers (lr 3e-3, batch 32, 8,459
steps): 8.55, 0.845, 0.889 | 8.51, 0.846, 0.900 | 82.54; from scratch, 32 x 12 (lr 2e-3,
batch 64, 7,719 steps): 8.89, 0.890, 0.918 | 8.80, 0.885, 0.930 | 81.19. The deeper
models were better still, but their files did not come back from the GPU machine (it
returns at most 8 files), and Chapter 2 samples the shipped model on a CPU, where 12
layers cost 1.5 times (24 channels) or 2.7 times (32) as much per step. The continued
24 x 8 model was chosen on the seed-0 draw (highest Inception score and agreement of
the four continuations).

Stage 1 (the file shipped before this one; torch 2.11 with CUDA on the H200): 9,493 steps (14 epochs,
the 15th cut by the 270 s budget); test NLL 84.00 nats (embedded test digits), 82.14
(official); likelihood class accuracy 0.972; 1,000 samples: Inception score 7.44,
confident fraction 0.732, class agreement 0.766; 456,385 bytes, SHA-256
e5dfcce1dfe5d1f0b826bd9b414978c17be56bcc8045d81ba14ba09c7b268708. (That file predates the
``batch_size``, ``lr`` and ``device`` metadata entries: they are the command's.)

The other variants of stage 1 (270 s each, 1,000 samples: Inception score,
confident fraction, class agreement; test NLL): 24 channels x 4 layers 5.98, 0.538,
0.508, 87.02; 24 x 6 6.67, 0.636, 0.641, 85.24; 32 x 6 (lr 2e-3) 6.58, 0.636, 0.673,
84.70; 32 x 8 (lr 2e-3) 7.41, 0.735, 0.756, 83.61. Depth, not width, moved the
samples.

The file before (4 layers, ``--epochs 2 --threads 1`` on a CPU; SHA-256
b7adc30517f214c4ce1e85c7727f4809885d98646920ec2304a1876a1425ce41): 1,460 steps in
1,893 s, test NLL 90.97, likelihood class accuracy 0.89; 100 samples 5.25, 0.44, 0.38.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import course_lib
from course_lib import autoregressive as ar
from course_lib import data, quality
from _training_digits import training_digits

ARCH = dict(hidden_channels=24, num_layers=8, kernel_size=3, num_classes=10)
OUT = os.path.join(os.path.dirname(__file__), "..", "course_lib", "assets", "gated_pixelcnn_mnist.pt")


@torch.no_grad()
def likelihood_class_accuracy(model, x, y) -> float:
    """How often argmax_c log p(x | c) is the true class: does the model use its label?"""
    device = next(model.parameters()).device
    x = x.to(device)
    scores = torch.stack([model.log_prob(x, y=torch.full((len(x),), c, device=device)) for c in range(10)], 1)
    return float((scores.argmax(1).cpu() == y.cpu()).float().mean())


@torch.no_grad()
def conditional_sample_quality(model, n: int, seed: int = 0) -> dict:
    """The quality of ``n`` class-conditional samples, n / 10 of each class (``course_lib.quality``)."""
    labels = torch.arange(10).repeat_interleave(n // 10)
    device = next(model.parameters()).device
    samples = model.sample(len(labels), (1, 28, 28), generator=torch.Generator().manual_seed(seed), y=labels.to(device))
    return quality.sample_quality(samples.cpu(), labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=("mnist", "embedded"), default="mnist")
    ap.add_argument("--root", default=os.path.join("..", "shared", "data", "mnist"),
                    help="folder of the official MNIST IDX files (not downloaded)")
    ap.add_argument("--max-seconds", type=float, default=None, help="training time budget (wall clock)")
    ap.add_argument("--epochs", type=int, default=None, help="train this many epochs (reproducible unless --max-seconds stops it first)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=None, help="resumable training checkpoint (written after every epoch)")
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--hidden-channels", type=int, default=ARCH["hidden_channels"])
    ap.add_argument("--num-layers", type=int, default=ARCH["num_layers"])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (a GPU run is not bitwise reproducible on a CPU)")
    ap.add_argument("--init", default=None,
                    help="start from the weights of a file written by save_pretrained (the same architecture), "
                         "e.g. the shipped one: a second, lower-lr stage of training")
    ap.add_argument("--quality-samples", type=int, default=0,
                    help="draw this many class-conditional samples (a multiple of 10) and store their quality")
    args = ap.parse_args()
    if args.max_seconds is None and args.epochs is None:
        ap.error("give --epochs (and optionally --max-seconds)")
    print(f"threads={course_lib.set_num_threads(args.threads)}")
    course_lib.seed_everything(args.seed)
    train_images, train_labels = training_digits(args.source, args.root)
    test_images, test_labels = data.load_mnist("test", source="embedded")
    test_x, test_y = ar.binarize_fixed(test_images, seed=1), torch.from_numpy(test_labels)
    print(f"train_digits={len(train_images)} ({args.source})")
    arch = dict(ARCH, hidden_channels=args.hidden_channels, num_layers=args.num_layers)
    model = ar.GatedPixelCNN(**arch)
    init_steps = 0
    if args.init:
        start, start_meta = ar.load_pretrained(args.init)
        if type(start) is not type(model) or start._arch != model._arch:
            ap.error(f"--init {args.init} has architecture {start._arch}, expected {model._arch}")
        model.load_state_dict(start.state_dict())
        init_steps = int(start_meta.get("steps", 0))
        print(f"init={args.init} (its steps={init_steps})")
    model = model.to(args.device)
    print(f"arch={arch} parameters={sum(p.numel() for p in model.parameters())} device={args.device}")
    cfg = ar.TrainConfig(epochs=args.epochs or 1000, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         max_seconds=args.max_seconds, checkpoint_path=args.checkpoint, progress=False)
    tic = time.perf_counter()
    model, hist = ar.train(model, torch.from_numpy(train_images), cfg, labels=torch.from_numpy(train_labels))
    print(f"steps={hist['step'][-1]} epochs={hist['epoch'][-1]} complete={hist['epoch_complete'][-1]} "
          f"stop={hist['stop_reason']} train_seconds={time.perf_counter() - tic:.1f}")
    model.eval()
    # save the trained weights before any evaluation, so that a failing evaluation cannot lose them
    ar.save_pretrained(model, args.out, flat=True, steps=hist["step"][-1] + init_steps, seed=args.seed,
                       stop_reason=hist["stop_reason"])
    nll = ar.evaluate_nll(model, test_x, test_y)
    meta = dict(test_nll_nats=nll, steps=hist["step"][-1] + init_steps, seed=args.seed, source=args.source,
                train_digits=len(train_images), epochs=hist["epoch"][-1], stop_reason=hist["stop_reason"],
                batch_size=args.batch_size, lr=args.lr, device=args.device)
    if args.source == "mnist":
        official, official_y = data.load_mnist("test", source="mnist", root=args.root, download=False)
        ox, oy = ar.binarize_fixed(official[:1000], seed=1), torch.from_numpy(official_y[:1000])
        meta["official_test_nll_nats"] = ar.evaluate_nll(model, ox, oy)
        meta["likelihood_class_accuracy"] = likelihood_class_accuracy(model, ox[:500], oy[:500])
    if args.quality_samples:
        tic = time.perf_counter()
        q = conditional_sample_quality(model, args.quality_samples, seed=0)
        meta.update(quality_samples=args.quality_samples, inception_score=q["inception_score"],
                    confident_fraction=q["confident_fraction"], class_agreement=q["class_agreement"])
        print(f"samples ({args.quality_samples}, seed 0, {time.perf_counter() - tic:.1f} s): {quality.format_quality(q)}")
        # a second draw (seed 1) that no choice between runs looked at: the held-out figure
        q1 = conditional_sample_quality(model, args.quality_samples, seed=1)
        meta.update(heldout_inception_score=q1["inception_score"], heldout_confident_fraction=q1["confident_fraction"],
                    heldout_class_agreement=q1["class_agreement"])
        print(f"samples ({args.quality_samples}, seed 1, held out): {quality.format_quality(q1)}")
    print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in meta.items()))
    digest = ar.save_pretrained(model, args.out, flat=True, **meta)
    print(f"wrote {os.path.normpath(args.out)} bytes={os.path.getsize(args.out)} sha256={digest}")


if __name__ == "__main__":
    main()
