#!/usr/bin/env python3
"""Benchmark (Chapter 1): NICE and image RealNVP on MNIST against zuko's NICE and RealNVP, side by side.

What is measured, for each model on the same dequantized digits (the same
training batches and noise, the same validation and test draws), the same wall
budget and the same epoch cap, in the process order ours NICE, zuko NICE, ours
RealNVP, zuko RealNVP:

- the test log-likelihood (nats per digit, of the density on ``[0, 1]^784``) and
  bits/dim (``course_lib.data.bits_per_dim``: the 8-bit bound) of the epoch with
  the best **validation** log-likelihood (the last 10 % of the training digits,
  held out from training), and of the final epoch; the same rule for ours and
  zuko's (zuko's NICE, with affine couplings and a Gaussian base, peaked after a
  few epochs on the embedded digits and then collapsed on test while its training
  likelihood rose);
- seconds per epoch (training only, the per-epoch validation excluded; the budget
  counts both for everyone) and the parameter count;
- ``coupling_step_ratio_mask_vs_strided``: a training step through
  :class:`course_lib.flows.AdditiveCoupling` (the ``mask`` API) over the same step
  through a hand-written strided-slice layer (the fmu2/NICE way), same weights and
  batch, the median of interleaved repeats (target <= 1.05).

Models. Ours: :class:`course_lib.flows.NICE` (4 additive couplings, logistic prior,
data-dependent init) and :class:`course_lib.flows.ImageRealNVP` (logit transform,
6 affine couplings with checkerboard masks), trained by :func:`course_lib.flows.train`.
zuko's: ``zuko.flows.NICE`` (4 couplings) and ``zuko.flows.RealNVP`` (6 couplings),
the same MLP widths and depths, zuko's own couplings (affine, alternating-index
masks) and Gaussian base, trained by a plain Adam loop here with the same learning
rate and batch; zuko's RealNVP sees the same logit transform as ours (its
log-determinant added), so both are densities on ``[0, 1]^784``. zuko is an
optional extra (``pip install --no-deps zuko``; ``make bench-setup``).

Protocol: ``benchmarks/README.md`` (generative benchmarks). Targets (issue 20):
ours NICE's test log-likelihood >= zuko NICE's and seconds per epoch <= 1.0x;
ours RealNVP's bits/dim <= zuko RealNVP's. The paper's NICE figure is 1980.50 nats
(Dinh et al. 2014, §5.1: 60,000 training images, 1500 epochs); runs on the
embedded 4,000 digits are not that setting.

Examples::

    python benchmarks/nice_mnist.py                                   # small profile: embedded digits, 60 s per model
    python benchmarks/nice_mnist.py --models nice zuko_nice --seeds 0 1 2
    python benchmarks/nice_mnist.py --profile full --max-seconds 5 --source mnist \\
        --root ../shared/data/mnist --no-verify --ratio-repeats 3     # smoke run (CI)

Lines: ``threads=...`` first; ``coupling_step_ratio_mask_vs_strided=...``; one
``model=<name> impl=<ours|zuko> seed=...`` line per model and seed; one summary per
model (means over seeds); ``ratio_bits_per_dim_<nice|realnvp>_ours_vs_zuko=...``,
``ratio_seconds_per_epoch_<...>_ours_vs_zuko=...``; the ``target`` lines. After each model line, ``quality
model=<name> impl=... seed=... inception_score=... confident_fraction=... n=...``: ``course_lib.quality`` on
``--quality-samples`` samples (1,000 by default) of the selected epoch, clamped to [0, 1] (the official test
digits score 9.4 and 0.95).
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import course_lib  # noqa: E402
import protocol  # noqa: E402
from course_lib import data, flows, quality  # noqa: E402

MODELS = ("nice", "zuko_nice", "realnvp", "zuko_realnvp")
SIZES = {
    "small": dict(hidden=256, num_hidden=3, realnvp_coupling=6, realnvp_hidden=256, realnvp_num_hidden=2,
                  epochs=200, batch=100, max_seconds=60.0),
    "full": dict(hidden=1000, num_hidden=5, realnvp_coupling=6, realnvp_hidden=256, realnvp_num_hidden=2,
                 epochs=1500, batch=100, max_seconds=None),
}
LR = 1e-3
ALPHA = 0.05  # RealNVP's logit constant, for ours and zuko's
VALID_FRACTION = 0.1


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


@torch.no_grad()
def mean_log_prob(log_prob, x: torch.Tensor, device, batch: int = 1000) -> float:
    """Mean log-likelihood (nats per example) of float rows ``x``: the one evaluation for every model."""
    return sum(float(log_prob(x[i : i + batch].to(device)).sum()) for i in range(0, len(x), batch)) / len(x)


class Selection:
    """After every epoch: the validation log-likelihood, and a copy of the best epoch's parameters."""

    def __init__(self, module: torch.nn.Module, log_prob, valid_x: torch.Tensor, device):
        self.module, self.log_prob, self.valid_x, self.device = module, log_prob, valid_x, device
        self.best, self.best_epoch, self.epochs, self.state, self.seconds = -math.inf, 0, 0, None, 0.0

    def end_epoch(self) -> None:
        tic = time.perf_counter()
        was_training = self.module.training
        self.module.eval()
        value = mean_log_prob(self.log_prob, self.valid_x, self.device)
        self.module.train(was_training)
        self.epochs += 1
        if value > self.best:  # NaN never is
            self.best, self.best_epoch = value, self.epochs
            self.state = copy.deepcopy(self.module.state_dict())
        self.seconds += time.perf_counter() - tic


def train_ours(model, log_prob, train_x, valid_x, transform, cfg: flows.TrainConfig, device) -> tuple[Selection, dict]:
    """:func:`flows.train` with the validation selection run once per epoch.

    ``flows.train`` has no epoch callback; its ``test_transform`` is called once per
    epoch on the ``test_data`` batches, so with a one-row ``test_data`` it is the hook.
    """
    sel = Selection(model, log_prob, valid_x, device)

    def hook(batch):
        sel.end_epoch()
        return batch

    try:
        _, hist = flows.train(model, train_x, cfg, test_data=valid_x[:1], transform=transform, test_transform=hook)
        stop = hist["stop_reason"]
    except course_lib.training.TrainingDiverged as err:
        hist, stop = getattr(err, "history", None) or {"step": [0], "seconds": [0.0]}, "diverged"
    return sel, {"steps": hist["step"][-1] if hist["step"] else 0,
                 "seconds": (hist["seconds"][-1] if hist["seconds"] else 0.0) - sel.seconds, "stop": stop}


def train_plain(flow, log_prob, train_x, valid_x, transform, cfg: flows.TrainConfig, device) -> tuple[Selection, dict]:
    """The reference loop for zuko: Adam on the mean NLL, the same batches and noise as :func:`flows.train`
    (the same generator seeded the same, drawn in the same order), the same budget rule (checked after
    every step, the validation inside it)."""
    sel = Selection(flow, log_prob, valid_x, device)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, eps=cfg.adam_eps)
    generator = torch.Generator().manual_seed(cfg.seed)
    n, bs = len(train_x), cfg.batch_size
    steps_per_epoch, steps, stop, start = math.ceil(n / bs), 0, "completed", time.perf_counter()
    flow.train()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=generator)
        for i in range(steps_per_epoch):
            x = transform(train_x[perm[i * bs : (i + 1) * bs]], generator).to(device)
            loss = -log_prob(x).mean()
            if not torch.isfinite(loss):
                stop = "diverged"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
            if cfg.max_seconds is not None and time.perf_counter() - start >= cfg.max_seconds:
                stop = "time_budget"
                break
        sel.end_epoch()
        if stop != "completed":
            break
    return sel, {"steps": steps, "seconds": time.perf_counter() - start - sel.seconds, "stop": stop}


def build(name: str, size: dict, init_batch: torch.Tensor, device):
    """``(module, log_prob)`` of a model; every ``log_prob`` is a density on the same space."""
    if name == "nice":
        model = flows.NICE(784, 4, size["hidden"], size["num_hidden"]).to(device)
        model.init_from_data(init_batch.to(device), center=not build.no_init_center)
        return model, model.log_prob
    if name == "realnvp":
        model = flows.ImageRealNVP(28, 28, size["realnvp_coupling"], size["realnvp_hidden"],
                                   size["realnvp_num_hidden"], alpha=ALPHA).to(device)
        return model, model.log_prob
    import zuko

    if name == "zuko_nice":
        flow = zuko.flows.NICE(784, transforms=4, hidden_features=(size["hidden"],) * size["num_hidden"]).to(device)
        return flow, lambda x: flow().log_prob(x)
    flow = zuko.flows.RealNVP(784, transforms=size["realnvp_coupling"],
                              hidden_features=(size["realnvp_hidden"],) * size["realnvp_num_hidden"]).to(device)

    def log_prob(x):
        y, log_det = flows.logit_transform(x, ALPHA)  # the same preprocessing as ImageRealNVP's first layer
        return flow().log_prob(y) + log_det

    return flow, log_prob


build.no_init_center = False


@torch.no_grad()
def sample_quality_line(name: str, module, shift: torch.Tensor, n: int, seed: int, device) -> str:
    """``course_lib.quality`` of ``n`` samples, in pixel space [0, 1] (clamped: a flow's samples may stray outside)."""
    module.eval()
    if name.startswith("zuko"):
        torch.manual_seed(seed)
        x = module().sample((n,))
        if name == "zuko_realnvp":
            x = flows.LogitTransform(ALPHA).inverse(x)[0]
    else:
        x = module.sample(n, torch.Generator(device=device).manual_seed(seed))
    x = (x.float().cpu() + shift).clamp(0.0, 1.0)
    if not bool(torch.isfinite(x).all()):
        return f"inception_score=nan confident_fraction=nan n={n} (non-finite samples)"
    return quality.format_quality(quality.sample_quality(x))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=course_lib._runtime.PROFILES, default=None, help="default: course_lib.profile()")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--source", default="auto", choices=["auto", "embedded", "mnist"])
    ap.add_argument("--root", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--no-verify", action="store_true", help="accept non-official files (e.g. a partial training copy)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="training budget of each model and seed, validation included (default: the profile's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--adam-eps", type=float, default=flows.TrainConfig.adam_eps)
    ap.add_argument("--no-init-center", action="store_true",
                    help="NICE.init_from_data(center=False): scale only, do not centre (the earlier initialisation)")
    ap.add_argument("--center", action="store_true",
                    help="NICE pair: subtract the training mean from the dequantized pixels (fmu2/NICE; Jacobian 1)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_NUM_THREADS, else 1)")
    ap.add_argument("--ratio-repeats", type=int, default=30, help="repeats of the coupling timing (0: skip)")
    ap.add_argument("--ratio-seconds", type=float, default=20.0, help="time cap of the coupling timing (>= 3 repeats)")
    ap.add_argument("--quality-samples", type=int, default=1000,
                    help="samples of the selected epoch scored by course_lib.quality (Inception score, confident fraction); 0: none")
    args = ap.parse_args(argv)

    threads = protocol.set_threads(args.threads)
    profile = args.profile or course_lib.profile()
    size = SIZES[profile]
    budget = args.max_seconds if args.max_seconds is not None else size["max_seconds"]
    epochs = args.epochs or size["epochs"]
    device = course_lib.get_device()
    models = [m for m in MODELS if m in args.models]
    if not protocol.have("zuko") and any(m.startswith("zuko") for m in models):
        print("# zuko rows skipped: zuko is not installed (pip install --no-deps zuko)")
        models = [m for m in models if not m.startswith("zuko")]
    build.no_init_center = args.no_init_center
    protocol.header("nice_mnist", threads, solved_protocol=False, profile=profile, device=device,
                    models=",".join(models), budget_s=budget, epochs=epochs)
    protocol.warm_up()

    if args.ratio_repeats > 0:
        ratio = coupling_ratio(size["hidden"], size["num_hidden"], size["batch"], args.ratio_repeats, args.ratio_seconds)
        print(f"coupling_step_ratio_mask_vs_strided={ratio:.3f}", flush=True)

    kw = dict(source=args.source, root=args.root, verify=not args.no_verify)
    tr, _ = data.load_mnist("train", **kw)
    te, _ = data.load_mnist("test", **kw)
    pixels = torch.from_numpy(tr).reshape(len(tr), 784)
    n_valid = int(round(VALID_FRACTION * len(pixels)))
    train_x, valid_px = pixels[:-n_valid], pixels[-n_valid:]
    # Fixed draws: the same validation and test digits for every model and epoch.
    valid_x = data.dequantize(valid_px, torch.Generator().manual_seed(124))
    test_x = data.dequantize(torch.from_numpy(te).reshape(len(te), 784), torch.Generator().manual_seed(123))
    # Centering (NICE pair, --center) is a shift: its Jacobian is 1, so log-likelihoods keep their meaning.
    mean = (train_x.double().mean(0) + 0.5).float() / 256 if args.center else torch.zeros(784)
    print(f"# data: source={args.source} train={len(train_x)} valid={len(valid_x)} (last {VALID_FRACTION:.0%} of "
          f"the training digits, held out) test={len(test_x)}; adam_eps={args.adam_eps:g} lr={LR:g} "
          f"batch={size['batch']} center={args.center} init_center={not args.no_init_center}", flush=True)

    results: dict[str, list[dict]] = {m: [] for m in models}
    for seed in args.seeds:
        for name in models:
            shift = mean if name in ("nice", "zuko_nice") else torch.zeros(784)
            transform = lambda batch, generator, shift=shift: data.dequantize(batch, generator) - shift  # noqa: E731
            course_lib.seed_everything(seed)
            init_batch = data.dequantize(train_x[:1000], torch.Generator().manual_seed(7)) - shift
            module, log_prob = build(name, size, init_batch, device)
            cfg = flows.TrainConfig(epochs=epochs, batch_size=size["batch"], lr=LR, adam_eps=args.adam_eps, seed=seed,
                                    max_seconds=budget, progress=False)
            trainer = train_plain if name.startswith("zuko") else train_ours
            sel, run = trainer(module, log_prob, train_x, valid_x - shift, transform, cfg, device)
            module.eval()
            final = mean_log_prob(log_prob, test_x - shift, device)
            selected = final if sel.best_epoch == sel.epochs else math.nan  # the last epoch is the selected one
            if sel.state is not None and sel.best_epoch != sel.epochs:
                module.load_state_dict(sel.state)
                selected = mean_log_prob(log_prob, test_x - shift, device)
            steps_per_epoch = math.ceil(len(train_x) / size["batch"])
            rec = dict(model=name.replace("zuko_", ""), impl="zuko" if name.startswith("zuko") else "ours", seed=seed,
                       test_ll_nats_selected=selected, bits_per_dim_selected=data.bits_per_dim(selected, 784),
                       selected_epoch=sel.best_epoch, valid_ll_nats_selected=sel.best,
                       test_ll_nats_final=final, bits_per_dim_final=data.bits_per_dim(final, 784),
                       epochs=round(run["steps"] / steps_per_epoch, 2),
                       seconds_per_epoch=run["seconds"] * steps_per_epoch / max(run["steps"], 1),
                       train_seconds=run["seconds"], validation_seconds=sel.seconds,
                       params=protocol.params(module), stop=run["stop"])
            results[name].append(rec)
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in rec.items()), flush=True)
            if args.quality_samples > 0:
                print(f"quality model={rec['model']} impl={rec['impl']} seed={seed} "
                      f"{sample_quality_line(name, module, shift, args.quality_samples, seed, device)}", flush=True)

    means = {}
    for name in models:
        recs = results[name]
        m = {k: statistics.fmean(r[k] for r in recs) for k in ("test_ll_nats_selected", "bits_per_dim_selected",
                                                              "test_ll_nats_final", "bits_per_dim_final",
                                                              "seconds_per_epoch", "epochs")}
        means[name] = m
        print(f"model={recs[0]['model']} impl={recs[0]['impl']} seeds={len(recs)} "
              + " ".join(f"{k}={v:.4f}" for k, v in m.items()) + f" params={recs[0]['params']}", flush=True)

    for pair in ("nice", "realnvp"):
        if pair in means and f"zuko_{pair}" in means:
            ours, peer = means[pair], means[f"zuko_{pair}"]
            print(f"ratio_bits_per_dim_{pair}_ours_vs_zuko="
                  f"{protocol.ratio(ours['bits_per_dim_selected'], peer['bits_per_dim_selected']):.4f} "
                  f"ratio_bits_per_dim_final_{pair}_ours_vs_zuko="
                  f"{protocol.ratio(ours['bits_per_dim_final'], peer['bits_per_dim_final']):.4f} "
                  f"ratio_seconds_per_epoch_{pair}_ours_vs_zuko="
                  f"{protocol.ratio(ours['seconds_per_epoch'], peer['seconds_per_epoch']):.4f}", flush=True)
    if "nice" in means and "zuko_nice" in means:
        ours, peer = means["nice"], means["zuko_nice"]
        protocol.print_target("ch1_nice_vs_zuko_nice",
                              [("test_ll_nats_minus_zuko", ours["test_ll_nats_selected"] - peer["test_ll_nats_selected"],
                                ">=", 0.0),
                               ("ratio_seconds_per_epoch",
                                protocol.ratio(ours["seconds_per_epoch"], peer["seconds_per_epoch"]), "<=", 1.0)],
                              selection="validation", budget_s=budget)
    if "realnvp" in means and "zuko_realnvp" in means:
        ours, peer = means["realnvp"], means["zuko_realnvp"]
        protocol.print_target("ch1_realnvp_vs_zuko_realnvp",
                              [("ratio_bits_per_dim",
                                protocol.ratio(ours["bits_per_dim_selected"], peer["bits_per_dim_selected"]), "<=", 1.0)],
                              selection="validation", budget_s=budget)
    return results


if __name__ == "__main__":
    main()
