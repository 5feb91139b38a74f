#!/usr/bin/env python3
"""NICE on MNIST: test log-likelihood (nats, bits/dim) and seconds per epoch.

Examples:
    python benchmarks/nice_mnist.py                       # small profile: embedded digits, CPU
    python benchmarks/nice_mnist.py --profile full --source mnist --root /path/to/idx --no-verify --minutes 10

The paper's figure is 1980.50 nats (Dinh et al. 2014, §5.1: 60,000 training
images, 1500 epochs). Runs on the embedded 4,000 digits or on a partial
training copy are not that setting; the script says which data it used.
"""

from __future__ import annotations

import argparse
import time

import torch

import course_lib
from course_lib import data, flows

SIZES = {
    "small": dict(hidden=256, num_hidden=3, epochs=20, batch=100),
    "full": dict(hidden=1000, num_hidden=5, epochs=1500, batch=100),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=course_lib._runtime.PROFILES, default=None, help="default: course_lib.profile()")
    ap.add_argument("--source", default="auto", choices=["auto", "embedded", "mnist"])
    ap.add_argument("--root", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--no-verify", action="store_true", help="accept non-official files (e.g. a partial training copy)")
    ap.add_argument("--minutes", type=float, default=None, help="stop training after this many minutes")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    profile = args.profile or course_lib.profile()
    size = SIZES[profile]
    device = course_lib.get_device()
    course_lib.seed_everything(args.seed)
    kw = dict(source=args.source, root=args.root, verify=not args.no_verify)
    tr, _ = data.load_mnist("train", **kw)
    te, _ = data.load_mnist("test", **kw)
    train_x = torch.from_numpy(tr).reshape(len(tr), 784)
    test_x = data.dequantize(torch.from_numpy(te).reshape(len(te), 784), torch.Generator().manual_seed(123))
    print(f"profile={profile} device={device} train={len(train_x)} test={len(test_x)} source={args.source}")

    model = flows.NICE(784, 4, size["hidden"], size["num_hidden"]).to(device)
    model.init_from_data(data.dequantize(train_x[:1000], torch.Generator().manual_seed(7)).to(device))
    cfg = flows.TrainConfig(
        epochs=args.epochs or size["epochs"], batch_size=size["batch"], lr=1e-3, seed=args.seed,
        max_seconds=None if args.minutes is None else 60 * args.minutes, progress=False,
    )
    tic = time.perf_counter()
    model, hist = flows.train(model, train_x, cfg, test_data=test_x, transform=data.dequantize)
    wall = time.perf_counter() - tic
    for e, s, ll in zip(hist["epoch"], hist["seconds"], hist["test_log_likelihood"]):
        print(f"epoch={e} train_seconds={s:.1f} test_ll_nats={ll:.2f} bits_per_dim={data.bits_per_dim(ll, 784):.4f}")
    ll = hist["test_log_likelihood"][-1]
    per_epoch = hist["seconds"][-1] / len(hist["epoch"])
    print(f"test_ll_nats={ll:.2f} bits_per_dim={data.bits_per_dim(ll, 784):.4f} "
          f"seconds_per_epoch={per_epoch:.2f} epochs={len(hist['epoch'])} wall_seconds={wall:.1f}")


if __name__ == "__main__":
    main()
