#!/usr/bin/env python3
"""Benchmark (Chapter 3): Chapter 3's VAE and ``train_vae`` against a plain reference loop, on binarized MNIST.

What is measured, for each model, on the same training digits (binarized afresh
every epoch), the same test draw and the same wall budget, in the process order
plain, vae, vae_vamp, ar_vae: the test ELBO and the test IWAE bound with ``k = 500``
(small profile; 5,000 in the full one), both in nats per digit (log-likelihoods,
negative; the NLL is minus them), computed by **one** evaluator in this file for
every model (the same importance samples from one seeded generator); the
training seconds; the parameter count.

Models:

- ``plain``: the reference, written here as a plain loop (the pytorch/examples VAE
  recipe at 784-512-256-32: ReLU MLPs, a Bernoulli decoder, the summed BCE + KL loss,
  Adam 1e-3, batch 100, dynamic binarization, nothing else);
- ``vae``: :class:`course_lib.vae.VAE` (same sizes in the small profile) trained by
  :func:`course_lib.vae.train_vae` with this benchmark's recipe (Adam with a step
  decay: 1e-3 for the first 75 % of the budget, then 3e-4 for 15 % and 1e-4 for
  10 %, each stage a fresh Adam);
- ``vae_vamp``: :class:`course_lib.vae.VampPriorVAE` (the ``vae`` sizes with the VampPrior,
  200 learned pseudo-inputs, as Chapter 3's shipped ``vae_vamp_mnist.pt``), the same recipe;
  its quality line scores codes from its own learned prior;
- ``ar_vae``: :class:`course_lib.vae.AutoregressiveVAE` (400-200-16, the decoder's
  logits plus a linear autoregressive term), the same recipe.

Target (issue 20): ``vae``'s IWAE-500 >= the plain loop's, same budget (printed as a
``target`` line). Binarization: pixel ~ Bernoulli(intensity / 255); the test digits
once with ``vae.TEST_BINARIZATION_SEED`` (the draw of Chapter 2, so NLLs compare).
No validation split: within the budget the test bound of every model is still
rising (HISTORY.md), and no model selects an epoch.

Profiles: ``small`` (the embedded 4,000/1,000 digits, 60 s per model, at most 120
epochs) and ``full`` (the setting of Burda et al. 2016, Table 1, one stochastic
layer: 784-200-200-50 for ours, Adam at 1e-3 * 10^(-i/7) for 3^i epochs, 3,280
epochs, IWAE-5000; their figure is -86.76 nats; the plain loop keeps its recipe for
the same number of epochs; not measured here: a GPU run of a few hours).

Protocol: ``benchmarks/README.md`` (generative benchmarks); one torch thread unless
``--threads``/``COURSE_NUM_THREADS``. Experiment history: ``benchmarks/HISTORY.md``.

Examples::

    python benchmarks/vae_mnist.py                                    # small profile
    python benchmarks/vae_mnist.py --models plain vae                 # the target's pair only
    python benchmarks/vae_mnist.py --profile full --max-seconds 5 --k-eval 10 --source mnist \\
        --root ../shared/data/mnist --no-verify                       # smoke run (CI)

Lines: ``threads=...`` first; per model ``model=<name> ... test_elbo_nats=... test_iwae_k=<k>
test_log_px_nats=... train_seconds=... epochs=... params=...`` and ``quality model=<name> samples=<means|binary>
inception_score=... confident_fraction=... n=...`` (``course_lib.quality`` on ``--quality-samples`` samples,
1,000 by default; the official test digits score 9.4 and 0.95), and for ``plain`` and ``vae`` a second
``quality ... codes=mixture10`` line: the same decoder with codes from a 10-component Gaussian mixture
fitted to the encoder means of the training digits (Chapter 3's prior-hole experiment); ``ratio_nll_vae_vs_plain=...``;
the ``target`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from course_lib import data, quality, vae  # noqa: E402

MODELS = ("plain", "vae", "vae_vamp", "ar_vae")
VAMP_COMPONENTS = 200  # vae_vamp: the pseudo-inputs of Chapter 3's shipped vae_vamp_mnist.pt
SIZES = {
    "small": dict(vae=(32, (512, 256)), vae_vamp=(32, (512, 256)), ar_vae=(16, (400, 200)), batch=100, epochs=120, max_seconds=60.0,
                  k_eval=500, stages=((0.75, 1e-3), (0.15, 3e-4), (0.10, 1e-4))),
    # full: Burda et al. 2016, one stochastic layer, VAE (k = 1) objective
    "full": dict(vae=(50, (200, 200)), vae_vamp=(50, (200, 200)), ar_vae=(50, (200, 200)), batch=100, epochs=3280, max_seconds=None,
                 k_eval=5000, stages="burda"),
}
PLAIN = dict(latent=32, hidden=(512, 256), lr=1e-3, batch=100)
LOG_2PI = math.log(2 * math.pi)


class PlainVAE(nn.Module):
    """The pytorch/examples VAE at 784-512-256-32 (Gaussian encoder, Bernoulli decoder), written out."""

    def __init__(self, latent: int = 32, hidden=(512, 256)):
        super().__init__()
        h1, h2 = hidden
        self.fc1, self.fc2 = nn.Linear(784, h1), nn.Linear(h1, h2)
        self.mu, self.logvar = nn.Linear(h2, latent), nn.Linear(h2, latent)
        self.fc3, self.fc4, self.fc5 = nn.Linear(latent, h2), nn.Linear(h2, h1), nn.Linear(h1, 784)

    def encode(self, x):
        h = F.relu(self.fc2(F.relu(self.fc1(x))))
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.fc5(F.relu(self.fc4(F.relu(self.fc3(z)))))

    def log_px_given_z(self, z, x):
        return -F.binary_cross_entropy_with_logits(self.decode(z), x.expand(*z.shape[:-1], x.shape[-1]),
                                                   reduction="none").sum(-1)


MIXTURE = 10  # components of the Gaussian mixture fitted to the codes (Chapter 3's "prior hole" cell)


@torch.no_grad()
def mixture_code_samples(model, pixels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """(n, 784) Bernoulli means decoded from codes drawn from a Gaussian mixture fitted to the encoder means.

    The ex-post density estimation of Ghosh et al. 2020 (ICLR), as in Chapter 3: the
    mixture models the aggregate posterior, which the N(0, I) prior does not match.
    """
    from sklearn.mixture import GaussianMixture

    device = next(model.parameters()).device
    x = vae.binarize_fixed(pixels, seed=3).to(device)
    codes = torch.cat([model.encode(x[i:i + 1000])[0] for i in range(0, len(x), 1000)]).double().cpu().numpy()
    gm = GaussianMixture(MIXTURE, covariance_type="full", reg_covar=1e-4, random_state=seed).fit(codes)
    z = torch.from_numpy(gm.sample(n)[0]).float().to(device)
    return torch.sigmoid(model.decode(z))


def train_plain(model: PlainVAE, pixels: torch.Tensor, epochs: int, max_seconds: float | None, seed: int) -> dict:
    """The reference loop: fresh binarization and order every epoch, Adam on the summed BCE + KL."""
    opt = torch.optim.Adam(model.parameters(), lr=PLAIN["lr"])
    gen = torch.Generator().manual_seed(seed)  # CPU draws, moved to the model's device
    device = next(model.parameters()).device
    probs = pixels.float() / 255.0
    n, bs, steps, start, stop = len(pixels), PLAIN["batch"], 0, time.perf_counter(), "completed"
    for _ in range(epochs):
        x_all = torch.bernoulli(probs, generator=gen)
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            x = x_all[perm[i : i + bs]].to(device)
            mu, logvar = model.encode(x)
            z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=gen).to(device)
            bce = F.binary_cross_entropy_with_logits(model.decode(z), x, reduction="sum")
            kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            opt.zero_grad()
            (bce + kld).backward()
            opt.step()
            steps += 1
            if max_seconds is not None and time.perf_counter() - start >= max_seconds:
                stop = "time_budget"
                break
        if stop != "completed":
            break
    return {"seconds": time.perf_counter() - start, "epochs": steps // math.ceil(n / bs), "stop": stop}  # complete ones


def fraction_schedule(max_epochs: int, budget: float | None, stages) -> list[tuple[int, float, float | None]]:
    """``(epochs, lr, seconds)`` per stage: each ``(fraction, lr)`` gets that share of the epochs and of the budget."""
    return [(max(1, round(frac * max_epochs)), lr, None if budget is None else frac * budget) for frac, lr in stages]


def burda_schedule(max_epochs: int) -> list[tuple[int, float]]:
    """Burda et al. 2016, §5: ``3^i`` epochs at learning rate ``1e-3 * 10^(-i/7)``, i = 0..7."""
    stages, total = [], 0
    for i in range(8):
        n = min(3**i, max_epochs - total)
        if n <= 0:
            break
        stages.append((n, 1e-3 * 10 ** (-i / 7)))
        total += n
    return stages


def train_ours(model, pixels: torch.Tensor, size: dict, epochs: int, budget: float | None, seed: int) -> dict:
    """:func:`vae.train_vae` through the profile's learning-rate stages (each a fresh Adam)."""
    if size["stages"] == "burda":
        stages = [(n, lr, None) for n, lr in burda_schedule(epochs)]
    else:
        stages = fraction_schedule(epochs, budget, size["stages"])
    base = vae.VAEConfig(batch_size=size["batch"], k=1, seed=seed, progress=False)
    seconds, share, n_epochs_run, stop = 0.0, 0.0, 0, "completed"
    for i, (n_epochs, lr, stage_seconds) in enumerate(stages):
        share += stage_seconds or 0.0
        if budget is not None and budget - seconds <= 0:
            break
        left = None if budget is None else (share if stage_seconds is not None else budget) - seconds
        if left is not None and left <= 0:
            continue
        cfg = dataclasses.replace(base, epochs=n_epochs, lr=lr, seed=seed + i, max_seconds=left)
        model, hist = vae.train_vae(model, pixels, cfg)
        seconds += hist["train_seconds"]
        n_epochs_run += len(hist["epoch"])
        stop = hist["stop_reason"]
        print(f"# stage={i} epochs_run={len(hist['epoch'])} lr={lr:.2e} stop={stop} train_seconds={seconds:.1f}",
              flush=True)
        if stop == "time_budget" and stage_seconds is None:
            break
    return {"seconds": seconds, "epochs": n_epochs_run, "stop": stop}


@torch.no_grad()
def bounds(model, x: torch.Tensor, k: int, seed: int, batch: int = 100, chunk: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-digit ELBO (one sample) and ``IWAE_k``, nats: the one evaluator for every model.

    Uses ``model.encode(x) -> (mu, logvar)``, ``model.log_px_given_z(z, x)`` and the model's
    own prior, ``model.prior_log_prob(z)`` (the VampPrior's learned mixture for ``vae_vamp``;
    ``N(0, I)`` for a model without that method, the plain loop's); the Gaussian noise comes
    from one generator seeded with ``seed``, the same for all models.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    # each model's own prior: scoring a learned prior's codes under N(0, I) is not its bound
    prior = getattr(model, "prior_log_prob", None)
    elbos, iwaes = [], []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device)
        mu, logvar = model.encode(xb)
        log_w = []
        for j in range(0, k, chunk):
            eps = torch.randn((min(chunk, k - j), *mu.shape), generator=gen).to(device)
            z = mu + torch.exp(0.5 * logvar) * eps
            log_q = -0.5 * (eps.pow(2) + logvar + LOG_2PI).sum(-1)
            log_p_z = prior(z) if prior is not None else -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
            log_w.append(model.log_px_given_z(z, xb) + log_p_z - log_q)
        log_w = torch.cat(log_w)  # (k, B)
        elbos.append(log_w[0].cpu())
        iwaes.append((torch.logsumexp(log_w, 0) - math.log(k)).cpu())
    model.train(was_training)
    return torch.cat(elbos), torch.cat(iwaes)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", choices=course_lib._runtime.PROFILES, default=None, help="default: course_lib.profile()")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--decoder", choices=("factorized", "autoregressive"), default=None,
                    help="(earlier flag) run the plain loop and only vae (factorized) or ar_vae (autoregressive)")
    ap.add_argument("--source", default="auto", choices=["auto", "embedded", "mnist"])
    ap.add_argument("--root", default=None, help="folder with the MNIST IDX files")
    ap.add_argument("--no-verify", action="store_true", help="accept non-official files (e.g. a partial training copy)")
    ap.add_argument("--max-seconds", type=float, default=None, help="training budget of each model (default: the profile's)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--k-eval", type=int, default=None, help="importance samples of the test log p(x)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: COURSE_NUM_THREADS, else 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quality-samples", type=int, default=1000,
                    help="samples scored by course_lib.quality (Inception score, confident fraction); 0: none")
    args = ap.parse_args(argv)

    profile = args.profile or course_lib.profile()
    size = SIZES[profile]
    threads = protocol.set_threads(args.threads)
    device = course_lib.get_device()
    budget = args.max_seconds if args.max_seconds is not None else size["max_seconds"]
    epochs = args.epochs or size["epochs"]
    k_eval = args.k_eval or size["k_eval"]
    models = list(args.models)
    if args.decoder:
        models = ["plain", "vae" if args.decoder == "factorized" else "ar_vae"]
    models = [m for m in MODELS if m in models]
    source = args.source if not (args.source == "auto" and profile == "small") else "embedded"
    kw = dict(source=source, root=args.root, verify=not args.no_verify)
    tr, _ = data.load_mnist("train", **kw)
    te, _ = data.load_mnist("test", **kw)
    train_px = torch.from_numpy(tr).reshape(len(tr), 784)
    test_x = vae.binarize_fixed(torch.from_numpy(te).reshape(len(te), 784), seed=vae.TEST_BINARIZATION_SEED)
    protocol.header("vae_mnist", threads, solved_protocol=False, profile=profile, device=device, source=source,
                    train=len(train_px), test=len(test_x), budget_s=budget, epochs=epochs, k_eval=k_eval,
                    models=",".join(models))
    protocol.warm_up()

    results = {}
    for name in models:
        course_lib.seed_everything(args.seed)
        if name == "plain":
            model = PlainVAE(PLAIN["latent"], PLAIN["hidden"]).to(device)
            run = train_plain(model, train_px, epochs, budget, args.seed)
        else:
            latent, hidden = size[name]
            if name == "vae_vamp":
                model = vae.VampPriorVAE(784, latent, hidden, prior_components=VAMP_COMPONENTS).to(device)
            else:
                model = (vae.VAE if name == "vae" else vae.AutoregressiveVAE)(784, latent, hidden).to(device)
            run = train_ours(model, train_px, size, epochs, budget, args.seed)
        tic = time.perf_counter()
        elbo, log_px = bounds(model, test_x, k_eval, seed=1234, chunk=100 if k_eval <= 1000 else 50)
        se = lambda t: t.std().item() / math.sqrt(len(t))  # noqa: E731
        results[name] = dict(elbo=elbo.mean().item(), log_px=log_px.mean().item(), se=se(log_px))
        latent = PLAIN["latent"] if name == "plain" else size[name][0]
        print(f"model={name} latent_dim={latent} test_elbo_nats={elbo.mean():.2f} test_iwae_k={k_eval} "
              f"test_log_px_nats={log_px.mean():.2f} test_log_px_se={se(log_px):.2f} train_seconds={run['seconds']:.1f} "
              f"epochs={run['epochs']} stop={run['stop']} params={protocol.params(model)} "
              f"eval_seconds={time.perf_counter() - tic:.1f}", flush=True)
        if args.quality_samples > 0:  # z ~ p(z) decoded to Bernoulli means (what Chapter 3 shows); ar_vae: binary draws
            with torch.no_grad():
                g = torch.Generator(device=device).manual_seed(args.seed)
                if name == "ar_vae":
                    shown = model.sample(args.quality_samples, g)
                elif name == "vae_vamp":  # the model's own learned prior
                    shown = torch.sigmoid(model.decode(model.sample_prior(args.quality_samples, g)))
                else:
                    shown = torch.sigmoid(model.decode(torch.randn(args.quality_samples, latent, generator=g, device=device)))
            print(f"quality model={name} samples={'binary' if name == 'ar_vae' else 'means'} "
                  f"{quality.format_quality(quality.sample_quality(shown.float().cpu()))}", flush=True)
            if name in ("plain", "vae"):  # the same decoder, codes from a mixture fitted to the training codes (Chapter 3)
                shown = mixture_code_samples(model, train_px, args.quality_samples, args.seed)
                print(f"quality model={name} samples=means codes=mixture{MIXTURE} "
                      f"{quality.format_quality(quality.sample_quality(shown.float().cpu()))}", flush=True)
    if "plain" in results and "vae" in results:
        ours, peer = results["vae"], results["plain"]
        print(f"ratio_nll_vae_vs_plain={protocol.ratio(-ours['log_px'], -peer['log_px']):.4f} "
              f"ratio_elbo_nll_vae_vs_plain={protocol.ratio(-ours['elbo'], -peer['elbo']):.4f}")
        protocol.print_target("ch3_vae_vs_plain_loop",
                              [("iwae_nats_minus_plain", ours["log_px"] - peer["log_px"], ">=", 0.0)],
                              k=k_eval, budget_s=budget,
                              note=f"standard errors over digits: {ours['se']:.2f} (vae), {peer['se']:.2f} (plain)")
    return results


if __name__ == "__main__":
    main()
