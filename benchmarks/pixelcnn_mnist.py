#!/usr/bin/env python3
"""Benchmark (Chapter 2): PixelCNN, Gated PixelCNN, Row LSTM and Diagonal BiLSTM against a plain PixelCNN, binarized MNIST.

What is measured, for each model on the same training digits (binarized afresh
every epoch), the same validation and test draws and the same wall budget (120 s
per model in the small profile), in the process order plain, pixelcnn, gated,
row_lstm, diagonal_bilstm: the test NLL (nats per digit, exact for binary data)
and bits/dim, the validation NLL, the training seconds and steps, the sampling
time of one image (784 sequential network evaluations) and the parameter count.
One evaluator in this file scores every model (the summed Bernoulli NLL of its
logits).

Models:

- ``plain``: the reference, written here: a 7x7 mask-A convolution, then 3x3 mask-B
  convolutions with ReLUs (as many as our PixelCNN's), 32 channels, a 1x1 output
  convolution; no gating, no residuals, no output head; trained by a plain Adam loop
  with the same learning rate, batch size and binarization as ours;
- ours: :class:`course_lib.autoregressive.PixelCNN` (residual mask-B layers, a
  two-layer 1x1 head), ``GatedPixelCNN``, ``RowLSTM``, ``DiagonalBiLSTM`` (about 0.1 M
  parameters each in the small profile), trained by :func:`course_lib.autoregressive.train`.

Target (issue 20): the best of ours against the plain PixelCNN, 120 s each: NLL <=
0.95x the plain one's. "Best" is chosen on the **validation** NLL (the last 10 % of
the training digits, held out from every model's training), not on the test draw.

Data: training images binarized afresh every epoch (each pixel
Bernoulli(intensity/255)); validation (seed 2) and test (seed 1, the draw of
Chapter 3) once. Small profile: the embedded 4,000/1,000 digits (3,600 train, 400
validation). Full profile: the paper's setting (van den Oord et al. 2016, PixelRNN
§5, Table 4; 60,000 training images, the 10,000 test images; run on one GPU without
``--max-seconds``, not measured here). Protocol: ``benchmarks/README.md``; one torch
thread unless ``--threads``/``COURSE_NUM_THREADS``. History: ``benchmarks/HISTORY.md``.

Examples::

    python benchmarks/pixelcnn_mnist.py                                  # small profile, 120 s per model
    python benchmarks/pixelcnn_mnist.py --models plain gated             # one pair
    python benchmarks/pixelcnn_mnist.py --profile full --source mnist --root ../shared/data/mnist --no-verify \\
        --max-seconds 3 --n-test 100 --sample-rows 1 --threads 2 --quality-samples 10   # smoke run (CI)

Lines: ``threads=...`` first; per model ``model=<name> params=... test_nll_nats=... bits_per_dim=...
valid_nll_nats=... train_seconds=... steps=... sample_seconds_per_image=...``; then
``best_of_ours=<name>`` (by validation NLL), ``ratio_nll_best_vs_plain=...`` and the ``target`` line.
The sampling time is measured on one image: ``--sample-rows R`` samples R rows and scales by 28 / R.
After each model line, ``quality model=<name> rows=R inception_score=... confident_fraction=... n=...
sample_seconds=...``: ``course_lib.quality`` on ``--quality-samples`` images (100 by default) of which the
first R rows are sampled (all 28 by default; the smoke run's R = 1 leaves them nearly blank, so its figures
mean nothing). The official test digits score 9.4 and 0.95.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import course_lib  # noqa: E402
import protocol  # noqa: E402
from course_lib import autoregressive as ar  # noqa: E402
from course_lib import data, quality  # noqa: E402

OURS = ("pixelcnn", "gated", "row_lstm", "diagonal_bilstm")
MODELS = ("plain",) + OURS
# Comparable parameter counts (about 0.1 M) in the small profile; the paper's sizes in the full one.
SIZES = {
    "small": {
        "plain": dict(hidden_channels=32, num_layers=7),
        "pixelcnn": (ar.PixelCNN, dict(hidden_channels=32, num_layers=7, kernel_size=3)),
        "gated": (ar.GatedPixelCNN, dict(hidden_channels=32, num_layers=4, kernel_size=3)),
        "row_lstm": (ar.RowLSTM, dict(hidden_channels=48, num_layers=2)),
        "diagonal_bilstm": (ar.DiagonalBiLSTM, dict(hidden_channels=48, num_layers=2)),
    },
    "full": {
        "plain": dict(hidden_channels=32, num_layers=12),
        "pixelcnn": (ar.PixelCNN, dict(hidden_channels=64, num_layers=12, kernel_size=3)),
        "gated": (ar.GatedPixelCNN, dict(hidden_channels=64, num_layers=12, kernel_size=3)),
        "row_lstm": (ar.RowLSTM, dict(hidden_channels=32, num_layers=7)),
        "diagonal_bilstm": (ar.DiagonalBiLSTM, dict(hidden_channels=16, num_layers=7)),
    },
}
TRAIN = {
    "small": dict(epochs=1000, batch_size=32, lr=3e-3, max_seconds=120.0),
    "full": dict(epochs=50, batch_size=64, lr=1e-3, max_seconds=None),
}
VALID_FRACTION = 0.1


class PlainMaskedConv(nn.Conv2d):
    """A k x k convolution masked to the pixels above and to the left (``"A"`` also hides the centre)."""

    def __init__(self, c_in: int, c_out: int, k: int, kind: str):
        super().__init__(c_in, c_out, k, padding=k // 2)
        mask = torch.ones(k, k)
        mask[k // 2, k // 2 + (kind == "B"):] = 0
        mask[k // 2 + 1:] = 0
        self.register_buffer("mask", mask)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class PlainPixelCNN(nn.Module):
    """The reference: 7x7 mask A, then mask-B 3x3 layers with ReLUs, a 1x1 output; no gates, no residuals."""

    def __init__(self, hidden_channels: int = 32, num_layers: int = 7):
        super().__init__()
        layers = [PlainMaskedConv(1, hidden_channels, 7, "A")]
        for _ in range(num_layers):
            layers += [nn.ReLU(), PlainMaskedConv(hidden_channels, hidden_channels, 3, "B")]
        layers += [nn.ReLU(), nn.Conv2d(hidden_channels, 1, 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def train_plain(model: nn.Module, images: torch.Tensor, cfg: dict, seed: int) -> dict:
    """The reference loop: a fresh binarization and order every epoch, Adam on the mean NLL."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    n, bs, steps, start, stop = len(images), cfg["batch_size"], 0, time.perf_counter(), "completed"
    probs = images.float() / 255.0
    for _ in range(cfg["epochs"]):
        binary = torch.bernoulli(probs, generator=gen)
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            x = binary[perm[i : i + bs]].to(device)
            loss = F.binary_cross_entropy_with_logits(model(x), x, reduction="none").sum((1, 2, 3)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            if cfg["max_seconds"] is not None and time.perf_counter() - start >= cfg["max_seconds"]:
                stop = "time_budget"
                break
        if stop != "completed":
            break
    return {"seconds": time.perf_counter() - start, "steps": steps, "stop": stop}


@torch.no_grad()
def nll(model: nn.Module, x: torch.Tensor, batch: int = 250) -> float:
    """Mean NLL in nats per image of binary ``x`` (N, 1, 28, 28): the one evaluator for every model."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = sum(float(F.binary_cross_entropy_with_logits(model(xb := x[i : i + batch].to(device)), xb,
                                                         reduction="sum")) for i in range(0, len(x), batch))
    model.train(was_training)
    return total / len(x)


@torch.no_grad()
def quality_samples(model: nn.Module, n: int, rows: int, seed: int, device) -> torch.Tensor:
    """``n`` images whose first ``rows`` rows are sampled (all 28 by default), the rest left 0, on the CPU.

    Ours through ``AutoregressiveModel.sample``; the plain reference by the same raster loop written here
    (each step a forward pass over the rows drawn so far: the reference is causal).
    """
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, ar.AutoregressiveModel):
        given = torch.zeros(n, 1, 28, 28, device=device)
        given[:, :, :rows] = float("nan")
        return model.sample(n, (1, 28, 28), given=given, generator=gen).cpu()
    was_training = model.training
    model.eval()
    x = torch.zeros(n, 1, 28, 28, device=device)
    for i in range(rows):
        for j in range(28):
            p = torch.sigmoid(model(x[:, :, : i + 1])[:, 0, i, j])
            x[:, 0, i, j] = (torch.rand(n, generator=gen).to(device) < p).float()
    model.train(was_training)
    return x.cpu()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=("small", "full"), default=None, help="default: course_lib.profile()")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--max-seconds", type=float, default=None, help="training budget per model (small default 120)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_NUM_THREADS, else 1)")
    ap.add_argument("--source", default="auto", choices=["auto", "embedded", "mnist"])
    ap.add_argument("--root", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--no-verify", action="store_true", help="accept non-official files (e.g. a partial training copy)")
    ap.add_argument("--n-test", type=int, default=None, help="score only the first N test (and validation) images")
    ap.add_argument("--sample-rows", type=int, default=28,
                    help="time sampling of this many rows of one image and scale to 28 rows (default: the whole image)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality-samples", type=int, default=100,
                    help="images sampled (their first --sample-rows rows, the rest left blank) and scored by "
                         "course_lib.quality; 0: none")
    args = ap.parse_args(argv)
    if not 1 <= args.sample_rows <= 28:
        ap.error("--sample-rows must be in 1..28")

    profile = args.profile or course_lib.profile()
    threads = protocol.set_threads(args.threads)
    device = course_lib.get_device()
    source = args.source if args.source != "auto" or profile == "full" else "embedded"
    kw = dict(source=source, root=args.root, verify=not args.no_verify)
    train_images, _ = data.load_mnist("train", **kw)
    test_images, _ = data.load_mnist("test", **kw)
    images = torch.from_numpy(train_images)
    n_valid = int(round(VALID_FRACTION * len(images)))
    train_images, valid_images = images[:-n_valid], images[-n_valid:]
    test_x = ar.binarize_fixed(test_images, seed=1)[: args.n_test]
    valid_x = ar.binarize_fixed(valid_images.numpy(), seed=2)[: args.n_test]
    train_cfg = dict(TRAIN[profile])
    if args.max_seconds is not None:
        train_cfg["max_seconds"] = args.max_seconds
    models = [m for m in MODELS if m in args.models]
    protocol.header("pixelcnn_mnist", threads, solved_protocol=False, profile=profile, device=device, source=source,
                    train=len(train_images), valid=len(valid_x), test=len(test_x),
                    max_seconds=train_cfg["max_seconds"], models=",".join(models))
    protocol.warm_up()

    results = {}
    for name in models:
        course_lib.seed_everything(args.seed)
        if name == "plain":
            model = PlainPixelCNN(**SIZES[profile]["plain"]).to(device)
            run = train_plain(model, train_images[:, None], train_cfg, args.seed)
            sample_seconds = math.nan  # the reference has no sampler
        else:
            cls, size = SIZES[profile][name]
            model = cls(**size).to(device)
            cfg = ar.TrainConfig(seed=args.seed, progress=False, **train_cfg)
            model, hist = ar.train(model, train_images, cfg)
            run = {"seconds": hist["seconds"][-1], "steps": hist["step"][-1], "stop": hist["stop_reason"]}
            given = torch.zeros(1, 1, 28, 28, device=device)
            given[:, :, : args.sample_rows] = float("nan")  # all 28 rows by default: one whole image
            tic = time.perf_counter()
            model.sample(1, (1, 28, 28), given=given, generator=torch.Generator().manual_seed(args.seed))
            if device.type == "cuda":
                torch.cuda.synchronize()
            sample_seconds = (time.perf_counter() - tic) * 28 / args.sample_rows
        test_nll, valid_nll = nll(model, test_x), nll(model, valid_x)
        results[name] = dict(test=test_nll, valid=valid_nll)
        print(f"model={name} params={protocol.params(model)} test_nll_nats={test_nll:.2f} "
              f"bits_per_dim={test_nll / (784 * math.log(2)):.4f} valid_nll_nats={valid_nll:.2f} "
              f"train_seconds={run['seconds']:.1f} steps={run['steps']} stop={run['stop']} "
              f"sample_seconds_per_image={sample_seconds:.2f}", flush=True)
        if args.quality_samples > 0:
            tic = time.perf_counter()
            shown = quality_samples(model, args.quality_samples, args.sample_rows, args.seed, device)
            print(f"quality model={name} rows={args.sample_rows} {quality.format_quality(quality.sample_quality(shown))} "
                  f"sample_seconds={time.perf_counter() - tic:.1f}", flush=True)

    ours = [m for m in OURS if m in results]
    if ours and "plain" in results:
        best = min(ours, key=lambda m: results[m]["valid"])
        r = protocol.ratio(results[best]["test"], results["plain"]["test"])
        print(f"best_of_ours={best} (lowest validation NLL) ratio_nll_best_vs_plain={r:.4f}")
        protocol.print_target("ch2_best_pixelcnn_vs_plain", [("ratio_nll", r, "<=", 0.95)], best=best,
                              max_seconds=train_cfg["max_seconds"])
    return results


if __name__ == "__main__":
    main()
