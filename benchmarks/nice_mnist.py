#!/usr/bin/env python3
"""NICE on MNIST: test log-likelihood (nats, bits/dim), seconds per epoch, and the coupling-layer speed.

Examples:
    python benchmarks/nice_mnist.py                                   # small profile: embedded digits, CPU
    python benchmarks/nice_mnist.py --seeds 0 1 2 --adam-eps 1e-8      # the Adam-epsilon comparison
    python benchmarks/nice_mnist.py --profile full --max-seconds 5 --source mnist \\
        --root ../shared/data/mnist --no-verify                       # CI: the full path, a tiny budget

Lines printed, one per result (machine-readable ``key=value`` pairs):

- ``threads=<int>``: torch's CPU thread count in force (``--threads``, default 1;
  on a shared machine more threads than free cores can make this tens of times slower);
- ``coupling_step_ratio_mask_vs_strided=<float>``: time of a training step
  (forward, backward, Adam) through :class:`course_lib.flows.AdditiveCoupling`
  (the ``mask`` API) divided by the same step through a hand-written layer that
  splits with strided slices (the fmu2/NICE way), same weights, same batch;
  the median of interleaved repeats. Target: <= 1.05;
- ``seed=<int> test_ll_nats=... bits_per_dim=... epochs=...`` per seed, then
- ``test_ll_nats=<mean> test_ll_nats_min=... test_ll_nats_max=... bits_per_dim=...
  seconds_per_epoch=... epochs=... wall_seconds=...`` over the seeds.

The paper's figure is 1980.50 nats (Dinh et al. 2014, §5.1: 60,000 training
images, 1500 epochs). Runs on the embedded 4,000 digits or on a partial
training copy are not that setting; the script says which data it used.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import course_lib
from course_lib import data, flows

SIZES = {
    "small": dict(hidden=256, num_hidden=3, epochs=20, batch=100),
    "full": dict(hidden=1000, num_hidden=5, epochs=1500, batch=100),
}


class StridedCoupling(torch.nn.Module):
    """The additive coupling written with strided slices (x[:, 0::2], x[:, 1::2]) and a stack."""

    def __init__(self, dim: int, shift_net: torch.nn.Module, parity: int):
        super().__init__()
        self.dim, self.shift_net, self.parity = dim, shift_net, parity

    def forward(self, x):
        x1, x2 = x[:, self.parity :: 2], x[:, 1 - self.parity :: 2]
        y2 = x2 + self.shift_net(x1)
        pair = (x1, y2) if self.parity == 0 else (y2, x1)
        return torch.stack(pair, dim=2).reshape(x.shape[0], self.dim)


def coupling_ratio(hidden: int, num_hidden: int, batch: int, repeats: int, max_seconds: float) -> float:
    """Median step time of the mask API over the strided version (interleaved, so load affects both)."""
    torch.manual_seed(0)
    layer = flows.AdditiveCoupling(784, flows.alternating_mask(784, 0), hidden, num_hidden)
    strided = StridedCoupling(784, layer.shift_net, 0)
    x = torch.rand(batch, 784)
    assert torch.equal(layer(x)[0], strided(x)), "the two layers must compute the same function"
    opt = torch.optim.Adam(layer.parameters(), lr=1e-6)

    def step(fn):
        y = x
        for _ in range(4):  # four couplings, as in NICE
            y = fn(y)
        loss = y.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    mask_fn, strided_fn = (lambda v: layer(v)[0]), strided
    for _ in range(3):
        step(mask_fn), step(strided_fn)
    ratios, start = [], time.perf_counter()
    for _ in range(repeats):
        if len(ratios) >= 3 and time.perf_counter() - start > max_seconds:
            break
        t0 = time.perf_counter()
        step(mask_fn)
        t1 = time.perf_counter()
        step(strided_fn)
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=course_lib._runtime.PROFILES, default=None, help="default: course_lib.profile()")
    ap.add_argument("--source", default="auto", choices=["auto", "embedded", "mnist"])
    ap.add_argument("--root", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--no-verify", action="store_true", help="accept non-official files (e.g. a partial training copy)")
    ap.add_argument("--max-seconds", type=float, default=None, help="training time budget per seed (seconds)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--adam-eps", type=float, default=flows.TrainConfig.adam_eps)
    ap.add_argument("--no-init-center", action="store_true",
                    help="NICE.init_from_data(center=False): scale only, do not centre (the earlier initialisation)")
    ap.add_argument("--center", action="store_true",
                    help="subtract the training mean from the dequantized pixels (as fmu2/NICE does; Jacobian 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--ratio-repeats", type=int, default=30, help="repeats of the coupling timing (0: skip)")
    ap.add_argument("--ratio-seconds", type=float, default=20.0, help="time cap of the coupling timing (>= 3 repeats)")
    args = ap.parse_args()

    threads = course_lib.set_num_threads(args.threads)
    print(f"threads={threads}")
    profile = args.profile or course_lib.profile()
    size = SIZES[profile]
    device = course_lib.get_device()

    if args.ratio_repeats > 0:
        ratio = coupling_ratio(size["hidden"], size["num_hidden"], size["batch"], args.ratio_repeats, args.ratio_seconds)
        print(f"coupling_step_ratio_mask_vs_strided={ratio:.3f}")

    kw = dict(source=args.source, root=args.root, verify=not args.no_verify)
    tr, _ = data.load_mnist("train", **kw)
    te, _ = data.load_mnist("test", **kw)
    train_x = torch.from_numpy(tr).reshape(len(tr), 784)
    test_x = data.dequantize(torch.from_numpy(te).reshape(len(te), 784), torch.Generator().manual_seed(123))
    # Centering is a shift: its Jacobian is 1, so log-likelihoods keep their meaning.
    mean = (train_x.double().mean(0) + 0.5).float() / 256 if args.center else torch.zeros(784)
    transform = lambda batch, generator: data.dequantize(batch, generator) - mean  # noqa: E731
    test_x = test_x - mean
    print(f"profile={profile} device={device} train={len(train_x)} test={len(test_x)} source={args.source} "
          f"adam_eps={args.adam_eps:g} center={args.center} init_center={not args.no_init_center}")

    lls, per_epoch, epochs = [], [], []
    tic = time.perf_counter()
    for seed in args.seeds:
        course_lib.seed_everything(seed)
        model = flows.NICE(784, 4, size["hidden"], size["num_hidden"]).to(device)
        init_batch = data.dequantize(train_x[:1000], torch.Generator().manual_seed(7)) - mean
        model.init_from_data(init_batch.to(device), center=not args.no_init_center)
        cfg = flows.TrainConfig(
            epochs=args.epochs or size["epochs"], batch_size=size["batch"], lr=1e-3, adam_eps=args.adam_eps,
            seed=seed, max_seconds=args.max_seconds, progress=False,
        )
        model, hist = flows.train(model, train_x, cfg, test_data=test_x, transform=transform)
        ll = hist["test_log_likelihood"][-1]
        lls.append(ll)
        per_epoch.append(hist["seconds"][-1] / len(hist["epoch"]))
        epochs.append(len(hist["epoch"]))
        print(f"seed={seed} test_ll_nats={ll:.2f} bits_per_dim={data.bits_per_dim(ll, 784):.4f} "
              f"epochs={len(hist['epoch'])} last_epoch_complete={hist['epoch_complete'][-1]}")
    wall = time.perf_counter() - tic
    mean = statistics.fmean(lls)
    print(f"test_ll_nats={mean:.2f} test_ll_nats_min={min(lls):.2f} test_ll_nats_max={max(lls):.2f} "
          f"bits_per_dim={data.bits_per_dim(mean, 784):.4f} seconds_per_epoch={statistics.fmean(per_epoch):.2f} "
          f"epochs={max(epochs)} wall_seconds={wall:.1f}")


if __name__ == "__main__":
    main()
