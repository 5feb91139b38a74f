"""Bad input to the generative side and the shared pieces: a clear error naming the argument.

One table per public module (flows, data, latent, runtime, training). Each row is
``(call, exception type, the argument the message must name)``. The RL side has
its own table in ``tests/test_bad_inputs_rl.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import course_lib
from course_lib import data, flows, training
from course_lib.latent import interpolate

NAN = float("nan")


def _nice():
    torch.manual_seed(0)
    return flows.NICE(6, num_coupling=2, hidden_dim=8, num_hidden=1)


def _x(n=4, d=6):
    return torch.rand(n, d)


def _nan_rows():
    x = _x()
    x[1, 2] = NAN
    return x


MASK6 = flows.alternating_mask(6, 0)
SHIFT = torch.nn.Linear(3, 3)


def _bad_shift(x1):
    return x1[:, :2]


def _bad_scale_shift(x1):
    return x1, x1[:, :1]


FLOWS = {
    # model inputs: form, shape
    "forward numpy": (lambda: _nice()(np.zeros((2, 6), np.float32)), TypeError, "x"),
    "forward list": (lambda: _nice().log_prob([[0.0] * 6]), TypeError, "x"),
    "forward 1-D": (lambda: _nice()(torch.zeros(6)), ValueError, "x"),
    "forward 3-D": (lambda: _nice()(torch.zeros(2, 6, 1)), ValueError, "x"),
    "forward wrong D": (lambda: _nice()(torch.zeros(2, 5)), ValueError, "x"),
    "inverse wrong D": (lambda: _nice().inverse(torch.zeros(2, 5)), ValueError, "z"),
    "prior_log_prob numpy": (lambda: _nice().prior_log_prob(np.zeros((2, 6))), TypeError, "z"),
    # sampling
    "sample 2.5": (lambda: _nice().sample(2.5), TypeError, "n"),
    "sample 0": (lambda: _nice().sample(0), ValueError, "n"),
    "sample True": (lambda: _nice().sample(True), TypeError, "n"),
    "sample generator": (lambda: _nice().sample(3, generator=7), TypeError, "generator"),
    # constructors
    "NICE dim 1": (lambda: flows.NICE(1), ValueError, "dim"),
    "NICE num_coupling 0": (lambda: flows.NICE(6, num_coupling=0), ValueError, "num_coupling"),
    "NICE hidden 2.5": (lambda: flows.NICE(6, hidden_dim=2.5), TypeError, "hidden_dim"),
    "NICE num_hidden 0": (lambda: flows.NICE(6, num_hidden=0), ValueError, "num_hidden"),
    "NICE prior": (lambda: flows.NICE(6, prior="cauchy"), ValueError, "prior"),
    "RealNVP num_coupling True": (lambda: flows.RealNVP(6, num_coupling=True), TypeError, "num_coupling"),
    "Scaling dim 0": (lambda: flows.Scaling(0), ValueError, "dim"),
    "coupling mask int": (lambda: flows.AdditiveCoupling(4, torch.tensor([1, 0, 1, 0]), 8, 1), ValueError, "mask"),
    "coupling mask all True": (lambda: flows.AffineCoupling(4, torch.ones(4, dtype=torch.bool), 8, 1), ValueError, "mask"),
    "alternating_mask dim": (lambda: flows.alternating_mask(1, 0), ValueError, "dim"),
    "alternating_mask parity 2": (lambda: flows.alternating_mask(4, 2), ValueError, "parity"),
    "alternating_mask parity True": (lambda: flows.alternating_mask(4, True), TypeError, "parity"),
    # pure functions
    "coupling x numpy": (lambda: flows.additive_coupling_forward(np.zeros((2, 6)), MASK6, SHIFT), TypeError, "x"),
    "coupling x wrong D": (lambda: flows.additive_coupling_forward(torch.zeros(2, 5), MASK6, SHIFT), ValueError, "x"),
    "coupling x 1-D": (lambda: flows.additive_coupling_inverse(torch.zeros(6), MASK6, SHIFT), ValueError, "y"),
    "coupling x int": (lambda: flows.additive_coupling_forward(torch.zeros(2, 6, dtype=torch.long), MASK6, SHIFT), ValueError, "x"),
    "coupling mask list": (lambda: flows.additive_coupling_forward(torch.zeros(2, 6), [True] * 6, SHIFT), ValueError, "mask"),
    "coupling shift shape": (lambda: flows.additive_coupling_forward(torch.zeros(2, 6), MASK6, _bad_shift), ValueError, "shift_net"),
    "affine s/t shape": (lambda: flows.affine_coupling_forward(torch.zeros(2, 6), MASK6, _bad_scale_shift), ValueError, "scale_shift_net"),
    "affine inverse y numpy": (lambda: flows.affine_coupling_inverse(np.zeros((2, 6)), MASK6, _bad_scale_shift), TypeError, "y"),
    "nice_log_likelihood shapes": (lambda: flows.nice_log_likelihood(torch.zeros(2, 3), torch.zeros(4)), ValueError, "log_scale"),
    "nice_log_likelihood numpy": (lambda: flows.nice_log_likelihood(np.zeros((2, 3)), torch.zeros(3)), TypeError, "h"),
    "nice_log_likelihood prior": (lambda: flows.nice_log_likelihood(torch.zeros(2, 3), torch.zeros(3), "cauchy"), ValueError, "prior"),
    "logistic numpy": (lambda: flows.logistic_log_prob(np.zeros(3)), TypeError, "z"),
    "normal list": (lambda: flows.standard_normal_log_prob([0.0]), TypeError, "z"),
    # data-dependent initialisation
    "init_from_data 1 row": (lambda: _nice().init_from_data(_x(1)), ValueError, "x"),
    "init_from_data 0 rows": (lambda: _nice().init_from_data(_x(0)), ValueError, "x"),
    "init_from_data NaN": (lambda: _nice().init_from_data(_nan_rows()), ValueError, "x"),
    "init_from_data inf": (lambda: _nice().init_from_data(_x() / 0.0), ValueError, "x"),
    "init_from_data center str": (lambda: _nice().init_from_data(_x(), center="yes"), TypeError, "center"),
    "Scaling init 1 row": (lambda: flows.Scaling(6).init_from_data(_x(1)), ValueError, "h"),
    "Scaling init NaN": (lambda: flows.Scaling(6).init_from_data(_nan_rows()), ValueError, "h"),
    "Scaling init prior_std": (lambda: flows.Scaling(6).init_from_data(_x(), prior_std=0.0), ValueError, "prior_std"),
    # TrainConfig
    "epochs 0": (lambda: flows.TrainConfig(epochs=0), ValueError, "epochs"),
    "epochs -1": (lambda: flows.TrainConfig(epochs=-1), ValueError, "epochs"),
    "epochs 2.5": (lambda: flows.TrainConfig(epochs=2.5), TypeError, "epochs"),
    "epochs True": (lambda: flows.TrainConfig(epochs=True), TypeError, "epochs"),
    "batch_size 0": (lambda: flows.TrainConfig(batch_size=0), ValueError, "batch_size"),
    "lr 0": (lambda: flows.TrainConfig(lr=0), ValueError, "lr"),
    "lr -1": (lambda: flows.TrainConfig(lr=-1e-3), ValueError, "lr"),
    "lr nan": (lambda: flows.TrainConfig(lr=NAN), ValueError, "lr"),
    "lr inf": (lambda: flows.TrainConfig(lr=math.inf), ValueError, "lr"),
    "lr str": (lambda: flows.TrainConfig(lr="1e-3"), TypeError, "lr"),
    "lr bool": (lambda: flows.TrainConfig(lr=True), TypeError, "lr"),
    "weight_decay -1": (lambda: flows.TrainConfig(weight_decay=-1.0), ValueError, "weight_decay"),
    "adam_eps 0": (lambda: flows.TrainConfig(adam_eps=0.0), ValueError, "adam_eps"),
    "seed -1": (lambda: flows.TrainConfig(seed=-1), ValueError, "seed"),
    "max_seconds 0": (lambda: flows.TrainConfig(max_seconds=0), ValueError, "max_seconds"),
    "checkpoint_path int": (lambda: flows.TrainConfig(checkpoint_path=3), TypeError, "checkpoint_path"),
    "resume str": (lambda: flows.TrainConfig(resume="yes"), TypeError, "resume"),
    "progress int": (lambda: flows.TrainConfig(progress=1), TypeError, "progress"),
    # train and evaluate
    "train empty": (lambda: flows.train(_nice(), _x(0), flows.TrainConfig(progress=False)), ValueError, "train_data"),
    "train numpy": (lambda: flows.train(_nice(), np.zeros((4, 6)), flows.TrainConfig(progress=False)), TypeError, "train_data"),
    "train 1-D": (lambda: flows.train(_nice(), torch.zeros(6), flows.TrainConfig(progress=False)), ValueError, "train_data"),
    "train NaN": (lambda: flows.train(_nice(), _nan_rows(), flows.TrainConfig(progress=False)), ValueError, "train_data"),
    "train inf test": (lambda: flows.train(_nice(), _x(), flows.TrainConfig(progress=False), test_data=_x() / 0.0), ValueError, "test_data"),
    "train config dict": (lambda: flows.train(_nice(), _x(), {"epochs": 1}), TypeError, "config"),
    "train model": (lambda: flows.train(torch.nn.Linear(6, 6), _x()), TypeError, "model"),
    "train transform": (lambda: flows.train(_nice(), _x(), flows.TrainConfig(progress=False), transform="dequantize"), TypeError, "transform"),
    "evaluate empty": (lambda: flows.evaluate_log_likelihood(_nice(), _x(0)), ValueError, "data"),
    "evaluate batch_size": (lambda: flows.evaluate_log_likelihood(_nice(), _x(), batch_size=0), ValueError, "batch_size"),
    "evaluate NaN": (lambda: flows.evaluate_log_likelihood(_nice(), _nan_rows()), ValueError, "data"),
}

PIXELS = torch.randint(0, 256, (2, 4), dtype=torch.uint8)


def _not_a_dir(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    return data.load_mnist("train", source="mnist", root=path, download=False)


DATA = {
    "binarize threshold str": (lambda: data.binarize(PIXELS, threshold="0.5"), TypeError, "threshold"),
    "binarize threshold 1.5": (lambda: data.binarize(PIXELS, threshold=1.5), ValueError, "threshold"),
    "binarize threshold nan": (lambda: data.binarize(PIXELS, threshold=NAN), ValueError, "threshold"),
    "binarize NaN pixels": (lambda: data.binarize(torch.tensor([0.2, NAN])), ValueError, "images"),
    "binarize floats > 1": (lambda: data.binarize(torch.tensor([0.2, 3.0])), ValueError, "images"),
    "binarize str": (lambda: data.binarize("image"), TypeError, "images"),
    "binarize stochastic str": (lambda: data.binarize(PIXELS, stochastic="yes"), TypeError, "stochastic"),
    "binarize generator": (lambda: data.binarize(PIXELS, stochastic=True, generator=1), TypeError, "generator"),
    "dequantize uint16 > 255": (lambda: data.dequantize(np.array([1, 300], np.uint16)), ValueError, "images"),
    "dequantize float": (lambda: data.dequantize(torch.rand(3)), ValueError, "images"),
    "dequantize bool": (lambda: data.dequantize(torch.ones(3, dtype=torch.bool)), ValueError, "images"),
    "dequantize negative": (lambda: data.dequantize(torch.tensor([-1, 3])), ValueError, "images"),
    "dequantize generator": (lambda: data.dequantize(PIXELS, generator="g"), TypeError, "generator"),
    "to_unit_interval float": (lambda: data.to_unit_interval(np.ones(3)), ValueError, "images"),
    "bits_per_dim dim 0": (lambda: data.bits_per_dim(1.0, 0), ValueError, "dim"),
    "bits_per_dim dim 2.5": (lambda: data.bits_per_dim(1.0, 2.5), TypeError, "dim"),
    "bits_per_dim scale 0": (lambda: data.bits_per_dim(1.0, 784, scale=0), ValueError, "scale"),
    "load_mnist split": (lambda: data.load_mnist("val"), ValueError, "split"),
    "load_mnist source": (lambda: data.load_mnist("train", source="web"), ValueError, "source"),
    "load_mnist verify": (lambda: data.load_mnist("train", source="mnist", verify="yes"), TypeError, "verify"),
    "load_mnist root int": (lambda: data.load_mnist("train", source="mnist", root=3), TypeError, "root"),
}

LATENT = {
    "integer latents": (lambda: interpolate(torch.arange(3), torch.arange(3) + 10, 5), ValueError, "z0"),
    "numpy latents": (lambda: interpolate(np.zeros(3), torch.zeros(3), 5), TypeError, "z0"),
    "NaN latent": (lambda: interpolate(torch.zeros(3), torch.tensor([0.0, NAN, 1.0]), 5), ValueError, "z1"),
    "shape mismatch": (lambda: interpolate(torch.zeros(3), torch.zeros(4), 5), ValueError, "z0"),
    "2-D latents": (lambda: interpolate(torch.zeros(1, 3), torch.zeros(1, 3), 5), ValueError, "z0"),
    "steps 2.5": (lambda: interpolate(torch.zeros(3), torch.ones(3), 2.5), TypeError, "steps"),
    "steps 1": (lambda: interpolate(torch.zeros(3), torch.ones(3), 1), ValueError, "steps"),
    "method": (lambda: interpolate(torch.zeros(3), torch.ones(3), 3, "cubic"), ValueError, "method"),
}

RUNTIME = {
    "by_profile bogus": (lambda: course_lib.by_profile({"small": 1, "full": 2}, "bogus"), ValueError, "name"),
    "by_profile missing key": (lambda: course_lib.by_profile({"small": 1}, "full"), ValueError, "table"),
    "by_profile list": (lambda: course_lib.by_profile([1, 2], "small"), TypeError, "table"),
    "seed -1": (lambda: course_lib.seed_everything(-1), ValueError, "seed"),
    "seed 1.5": (lambda: course_lib.seed_everything(1.5), ValueError, "seed"),
    "threads 0": (lambda: course_lib.set_num_threads(0), ValueError, "num_threads"),
    "threads True": (lambda: course_lib.set_num_threads(True), ValueError, "num_threads"),
}


class _NotADataclass:
    pass


TRAINING = {
    "config not a dataclass": (lambda: training.TrainingRun(_NotADataclass(), model=torch.nn.Linear(1, 1)), TypeError, "config"),
    "generators wrong kind": (lambda: training.rng_state({"env": 3}), TypeError, "generators"),
    "checkpoint missing": (lambda: training.load_checkpoint("/nonexistent/run.pt"), training.CheckpointError, "/nonexistent/run.pt"),
}


def _rows(table, module):
    return [pytest.param(call, exc, arg, id=f"{module}: {name}") for name, (call, exc, arg) in table.items()]


@pytest.mark.parametrize(
    "call, exc, arg",
    _rows(FLOWS, "flows") + _rows(DATA, "data") + _rows(LATENT, "latent") + _rows(RUNTIME, "runtime")
    + _rows(TRAINING, "training"),
)
def test_bad_input_raises_naming_the_argument(call, exc, arg):
    with pytest.raises(exc) as info:
        call()
    assert arg in str(info.value), f"the message must name {arg!r}: {info.value}"


def test_root_that_is_a_file_is_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="root .* is not a directory"):
        _not_a_dir(tmp_path)


def test_obvious_conversions_are_made_not_refused():
    """float64 into a float32 model, a float64 model sampling, uint16 pixels in range."""
    model = _nice()
    z, log_det = model(_x().double())
    assert z.dtype == torch.float32 and log_det.shape == (4,)
    double = flows.RealNVP(6, 2, 8, 1).double()
    assert double.sample(3).dtype == torch.float64 and double.sample_prior(3).dtype == torch.float64
    assert double.log_prob(_x()).dtype == torch.float64
    pixels = np.array([[0, 17, 255]], np.uint16)
    assert torch.equal(torch.floor(256 * data.dequantize(pixels)).long(), torch.tensor([[0, 17, 255]]))
    assert math.isfinite(flows.evaluate_log_likelihood(model, _x(3).double()))


# ----------------------------------------------------------------------------
# issue 18: autoregressive
# ----------------------------------------------------------------------------
import re  # noqa: E402

from course_lib import autoregressive as ar  # noqa: E402


def _ar(kind="pixelcnn"):
    torch.manual_seed(0)
    if kind == "cond":
        return ar.GatedPixelCNN(hidden_channels=4, num_layers=1, kernel_size=3, first_kernel_size=3, num_classes=3)
    return ar.PixelCNN(hidden_channels=4, num_layers=1, kernel_size=3, first_kernel_size=3)


def _ar_no_forward(kind="pixelcnn"):
    """A model whose forward pass raises: a refused call must fail before any network evaluation."""
    model = _ar(kind)

    def hook(module, args):
        raise RuntimeError("the network ran: the call was not refused up front")

    model.register_forward_pre_hook(hook)
    return model


def _ar_nan():
    model = _ar()
    with torch.no_grad():
        model.input_conv.bias[0] = NAN
    return model


def _ar_train(images, kind="pixelcnn", **kw):
    return ar.train(_ar_no_forward(kind), images, ar.TrainConfig(epochs=1, batch_size=4, progress=False), **kw)


AR_PIX = torch.randint(0, 256, (4, 4, 4), dtype=torch.uint8)
AR_BIN = torch.randint(0, 2, (4, 1, 4, 4)).float()
AR_Y = torch.tensor([0, 1, 2, 0])


AUTOREGRESSIVE = {
    # train: the images (uint8 or other integer pixels 0..255, N >= 1) and the labels
    "train pixels 300": (lambda: _ar_train(torch.full((4, 4, 4), 300)), ValueError, "images"),
    "train pixels -5": (lambda: _ar_train(torch.full((4, 4, 4), -5)), ValueError, "images"),
    "train 0 images": (lambda: _ar_train(torch.zeros(0, 4, 4, dtype=torch.uint8)), ValueError, "images"),
    "train float images": (lambda: _ar_train(torch.rand(4, 4, 4)), ValueError, "images"),
    "train bool images": (lambda: _ar_train(torch.ones(4, 4, 4, dtype=torch.bool)), ValueError, "images"),
    "train str images": (lambda: _ar_train("digits"), TypeError, "images"),
    "train 2-D images": (lambda: _ar_train(AR_PIX[0]), ValueError, "images"),
    "train model": (lambda: ar.train(torch.nn.Conv2d(1, 1, 3), AR_PIX), TypeError, "model"),
    "train labels short": (lambda: _ar_train(AR_PIX, "cond", labels=AR_Y[:3]), ValueError, "labels"),
    "train labels out of range": (lambda: _ar_train(AR_PIX, "cond", labels=AR_Y + 1), ValueError, "labels"),
    "train labels negative": (lambda: _ar_train(AR_PIX, "cond", labels=AR_Y - 1), ValueError, "labels"),
    "train labels float": (lambda: _ar_train(AR_PIX, "cond", labels=AR_Y.float()), ValueError, "labels"),
    "train labels unconditional": (lambda: _ar_train(AR_PIX, labels=AR_Y), ValueError, "labels"),
    "train test_data numpy": (lambda: _ar_train(AR_PIX, test_data=AR_BIN.numpy()), TypeError, "test_data"),
    "train test_data empty": (lambda: _ar_train(AR_PIX, test_data=AR_BIN[:0]), ValueError, "test_data"),
    "train test_data not binary": (lambda: _ar_train(AR_PIX, test_data=AR_BIN + 0.5), ValueError, "test_data"),
    "train test_labels short": (
        lambda: _ar_train(AR_PIX, "cond", labels=AR_Y, test_data=AR_BIN, test_labels=AR_Y[:2]), ValueError, "test_labels"),
    "train test_labels alone": (lambda: _ar_train(AR_PIX, test_labels=AR_Y), ValueError, "test_labels"),
    # sample: a bounded size, n, the shape, the generator
    "sample 512 x 512": (lambda: _ar_no_forward().sample(1, (1, 512, 512)), ValueError, "max_pixels"),
    "sample over max_pixels": (lambda: _ar_no_forward().sample(1, (1, 4, 4), max_pixels=15), ValueError, "max_pixels"),
    "sample max_pixels 0": (lambda: _ar_no_forward().sample(1, (1, 4, 4), max_pixels=0), ValueError, "max_pixels"),
    "sample max_pixels 2.5": (lambda: _ar_no_forward().sample(1, (1, 4, 4), max_pixels=2.5), TypeError, "max_pixels"),
    "sample n 0": (lambda: _ar_no_forward().sample(0, (1, 4, 4)), ValueError, "n"),
    "sample n -2": (lambda: _ar_no_forward().sample(-2, (1, 4, 4)), ValueError, "n"),
    "sample n 2.5": (lambda: _ar_no_forward().sample(2.5, (1, 4, 4)), TypeError, "n"),
    "sample n True": (lambda: _ar_no_forward().sample(True, (1, 4, 4)), TypeError, "n"),
    "sample n str": (lambda: _ar_no_forward().sample("2", (1, 4, 4)), TypeError, "n"),
    "sample shape str": (lambda: _ar_no_forward().sample(1, "1x4x4"), TypeError, "image_shape"),
    "sample shape 2 entries": (lambda: _ar_no_forward().sample(1, (4, 4)), ValueError, "image_shape"),
    "sample shape float": (lambda: _ar_no_forward().sample(1, (1, 4, 4.5)), TypeError, "image_shape"),
    "sample shape 0": (lambda: _ar_no_forward().sample(1, (1, 0, 4)), ValueError, "image_shape"),
    "sample shape channels": (lambda: _ar_no_forward().sample(1, (3, 4, 4)), ValueError, "image_shape"),
    "sample generator int": (lambda: _ar_no_forward().sample(1, (1, 4, 4), generator=7), TypeError, "generator"),
    "sample given numpy": (lambda: _ar_no_forward().sample(1, (1, 4, 4), given=np.zeros((1, 1, 4, 4))), TypeError, "given"),
    "sample y numpy": (lambda: _ar_no_forward("cond").sample(2, (1, 4, 4), y=np.array([0, 1])), TypeError, "y"),
    "sample y bool": (lambda: _ar_no_forward("cond").sample(2, (1, 4, 4), y=torch.tensor([True, False])), ValueError, "y"),
    "sample y out of range": (lambda: _ar_no_forward("cond").sample(2, (1, 4, 4), y=torch.tensor([0, 3])), ValueError, "y"),
    # evaluate_nll
    "evaluate_nll empty": (lambda: ar.evaluate_nll(_ar_no_forward(), AR_BIN[:0]), ValueError, "x"),
    "evaluate_nll numpy": (lambda: ar.evaluate_nll(_ar_no_forward(), AR_BIN.numpy()), TypeError, "x"),
    "evaluate_nll 3-D": (lambda: ar.evaluate_nll(_ar_no_forward(), AR_BIN[:, 0]), ValueError, "x"),
    "evaluate_nll y short": (lambda: ar.evaluate_nll(_ar_no_forward("cond"), AR_BIN, AR_Y[:3]), ValueError, "y"),
    "evaluate_nll y unconditional": (lambda: ar.evaluate_nll(_ar_no_forward(), AR_BIN, AR_Y), ValueError, "y"),
    "evaluate_nll batch_size 0": (lambda: ar.evaluate_nll(_ar_no_forward(), AR_BIN, batch_size=0), ValueError, "batch_size"),
    "evaluate_nll model": (lambda: ar.evaluate_nll(torch.nn.Conv2d(1, 1, 3), AR_BIN), TypeError, "model"),
    # constructors: the message names the argument the caller passed
    "PixelCNN first_kernel_size 4": (lambda: ar.PixelCNN(first_kernel_size=4), ValueError, "first_kernel_size"),
    "PixelCNN first_kernel_size 2.5": (lambda: ar.PixelCNN(first_kernel_size=2.5), TypeError, "first_kernel_size"),
    "PixelCNN hidden < in_channels": (lambda: ar.PixelCNN(in_channels=3, hidden_channels=2), ValueError, "hidden_channels"),
    "PixelCNN kernel_size 4": (lambda: ar.PixelCNN(kernel_size=4), ValueError, "kernel_size"),
    "GatedPixelCNN first_kernel_size 2": (lambda: ar.GatedPixelCNN(first_kernel_size=2), ValueError, "first_kernel_size"),
    "RowLSTM first_kernel_size 4": (lambda: ar.RowLSTM(first_kernel_size=4), ValueError, "first_kernel_size"),
    "RowLSTM first_kernel_size 0": (lambda: ar.RowLSTM(first_kernel_size=0), ValueError, "first_kernel_size"),
    "DiagonalBiLSTM first_kernel_size 6": (lambda: ar.DiagonalBiLSTM(first_kernel_size=6), ValueError, "first_kernel_size"),
    "MaskedConv2d out_channels < groups": (lambda: ar.MaskedConv2d(3, 2, 3, "A", color_groups=3), ValueError, "out_channels"),
    "MaskedConv2d kernel_size 2": (lambda: ar.MaskedConv2d(1, 2, 2, "A"), ValueError, "kernel_size"),
    # receptive_field / input_gradient: pixel and channel
    "receptive_field pixel 1.5": (lambda: ar.receptive_field(_ar(), (1.5, 2), (4, 4)), TypeError, "pixel"),
    "receptive_field pixel bool": (lambda: ar.receptive_field(_ar(), (True, 2), (4, 4)), TypeError, "pixel"),
    "receptive_field pixel -1": (lambda: ar.receptive_field(_ar(), (-1, 2), (4, 4)), ValueError, "pixel"),
    "receptive_field pixel 3 entries": (lambda: ar.receptive_field(_ar(), (1, 2, 0), (4, 4)), TypeError, "pixel"),
    "receptive_field channel 0.5": (lambda: ar.receptive_field(_ar(), (1, 2), (4, 4), channel=0.5), TypeError, "channel"),
    "receptive_field channel 1": (lambda: ar.receptive_field(_ar(), (1, 2), (4, 4), channel=1), ValueError, "channel"),
    "receptive_field seed -1": (lambda: ar.receptive_field(_ar(), (1, 2), (4, 4), seed=-1), ValueError, "seed"),
    "input_gradient image_shape str": (lambda: ar.input_gradient(_ar(), (1, 2), "4x4"), TypeError, "image_shape"),
    # load_pretrained
    "load_pretrained missing": (lambda: ar.load_pretrained("/nonexistent/gated.pt"), training.CheckpointError, "/nonexistent/gated.pt"),
    "load_pretrained sha256 short": (lambda: ar.load_pretrained(sha256="abc123"), ValueError, "sha256"),
    "load_pretrained sha256 not hex": (lambda: ar.load_pretrained(sha256="z" * 64), ValueError, "sha256"),
    "load_pretrained sha256 int": (lambda: ar.load_pretrained(sha256=123), TypeError, "sha256"),
    "load_pretrained sha256 wrong": (lambda: ar.load_pretrained(sha256="0" * 64), training.CheckpointError, "gated_pixelcnn_mnist.pt"),
    "load_pretrained path int": (lambda: ar.load_pretrained(3), TypeError, "path"),
    # save_pretrained: refused before anything is written
    "save_pretrained model": (lambda: ar.save_pretrained(torch.nn.Conv2d(1, 1, 3), "/nonexistent/m.pt"), TypeError, "model"),
    "save_pretrained metadata": (lambda: ar.save_pretrained(_ar(), "/nonexistent/m.pt", note=object()), TypeError, "metadata"),
    "save_pretrained NaN weight": (lambda: ar.save_pretrained(_ar_nan(), "/nonexistent/m.pt"), ValueError, "input_conv.bias"),
    "save_pretrained path int": (lambda: ar.save_pretrained(_ar(), 3), TypeError, "path"),
}


@pytest.mark.parametrize("call, exc, arg", _rows(AUTOREGRESSIVE, "autoregressive"))
def test_autoregressive_bad_input_raises_naming_the_argument(call, exc, arg):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)  # the name as a whole word: "kernel_size" inside "first_kernel_size" does not count
    assert re.search(rf"(^|[^\w.]){re.escape(arg)}($|[^\w])", message), f"the message must name {arg!r}: {message}"


# ----------------------------------------------------------------------------
# issue 18: VAE (Chapter 3) and the logit transform (Chapter 1)
# ----------------------------------------------------------------------------
import re  # noqa: E402
import tempfile  # noqa: E402

from course_lib import vae  # noqa: E402
from course_lib.flows import image as image_flows  # noqa: E402

_VAE_DIR = tempfile.TemporaryDirectory()  # the files of the load_pretrained rows; removed at exit
_VZ = torch.zeros(2, 3)
_VX = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]])  # (B, D) = (2, 4), binary


def _vae():
    torch.manual_seed(0)
    return vae.VAE(4, 3, (8,))


def _vae_ar():
    torch.manual_seed(0)
    return vae.AutoregressiveVAE(4, 3, (8,))


def _vae_file(kind: str) -> str:
    """The path of a file that load_pretrained must refuse."""
    import os

    path = os.path.join(_VAE_DIR.name, f"{kind}.pt")
    if kind == "missing":
        return path
    good = os.path.join(_VAE_DIR.name, "good.pt")
    vae.save_pretrained(_vae(), good, nll=89.0)
    blob = open(good, "rb").read()
    contents = {"truncated": blob[: len(blob) // 2], "empty": b"", "text": b"not a model\n",
                "random": bytes(range(256)) * 8, "flipped": blob[:200] + bytes([blob[200] ^ 1]) + blob[201:]}
    if kind in contents:
        with open(path, "wb") as f:
            f.write(contents[kind])
    elif kind == "foreign":
        torch.save({101: torch.zeros(2)}, path)
    return path


def _pixels(n):
    return torch.randint(0, 256, (n, 4), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


_VCFG = vae.VAEConfig(epochs=1, batch_size=2, progress=False)

VAE_ROWS = {
    # the Bernoulli likelihood: x must be binary (x = 2 gave +19.97 nats, x = 0.5 a value)
    "bernoulli_log_prob x = 2": (lambda: vae.bernoulli_log_prob(torch.full((1, 4), -10.0), 2 * _VX), ValueError, "x"),
    "bernoulli_log_prob x = 0.5": (lambda: vae.bernoulli_log_prob(torch.zeros(2, 4), 0.5 + 0 * _VX), ValueError, "x"),
    "bernoulli_log_prob x NaN": (lambda: vae.bernoulli_log_prob(torch.zeros(2, 4), _VX / 0), ValueError, "x"),
    "bernoulli_log_prob x numpy": (lambda: vae.bernoulli_log_prob(torch.zeros(2, 4), _VX.numpy()), TypeError, "x"),
    "bernoulli_log_prob shapes": (lambda: vae.bernoulli_log_prob(torch.zeros(2, 4), torch.zeros(2, 3)), ValueError, "x"),
    "single_sample_elbo x = 0.5": (lambda: vae.single_sample_elbo(_VX * 0.5, _VZ, _VZ, _VZ, _vae().decode), ValueError, "x"),
    "single_sample_elbo x = 2": (lambda: vae.single_sample_elbo(_VX * 2, _VZ, _VZ, _VZ, _vae().decode), ValueError, "x"),
    "single_sample_elbo x rows": (lambda: vae.single_sample_elbo(_VX[:1], _VZ, _VZ, _VZ, _vae().decode), ValueError, "x"),
    "single_sample_elbo (B, 1) logits": (lambda: vae.single_sample_elbo(_VX, _VZ, _VZ, _VZ, lambda z: z[:, :1]), ValueError, "decode"),
    "single_sample_elbo decode str": (lambda: vae.single_sample_elbo(_VX, _VZ, _VZ, _VZ, "decoder"), TypeError, "decode"),
    "VAE.log_px_given_z x = 2": (lambda: _vae().log_px_given_z(_VZ, 2 * _VX), ValueError, "x"),
    "AutoregressiveVAE.log_px_given_z x = 0.5": (lambda: _vae_ar().log_px_given_z(_VZ, 0.5 * _VX), ValueError, "x"),
    "log_px_given_z z rows": (lambda: _vae().log_px_given_z(torch.zeros(3, 3), _VX), ValueError, "z"),
    # gradient estimators: f must give (n, B) values (an (n,) output broadcast into (n, n, Z) garbage when n == B)
    "score_function_gradient f (n,)": (lambda: vae.score_function_gradient(lambda z: z.sum((-2, -1)), _VZ, _VZ, 2), ValueError, "f"),
    "score_function_gradient f (n, B, Z)": (lambda: vae.score_function_gradient(lambda z: z, _VZ, _VZ, 2), ValueError, "f"),
    "score_function_gradient f int": (lambda: vae.score_function_gradient(3, _VZ, _VZ, 2), TypeError, "f"),
    "reparameterization_gradient f (n,)": (lambda: vae.reparameterization_gradient(lambda z: z.sum((-2, -1)), _VZ, _VZ, 2), ValueError, "f"),
    # the argument's own name in the message
    "LinearGaussian.elbo NaN q_logvar": (lambda: vae.LinearGaussian(4, 3, 1.0).elbo(torch.zeros(2, 4), _VZ, _VZ / 0 * 0), ValueError, "q_logvar"),
    "LinearGaussian.elbo q_logvar shape": (lambda: vae.LinearGaussian(4, 3, 1.0).elbo(torch.zeros(2, 4), _VZ, torch.zeros(2, 2)), ValueError, "q_logvar"),
    "gaussian_kl NaN logvar": (lambda: vae.gaussian_kl(_VZ, _VZ / 0 * 0), ValueError, "logvar"),
    # training data: refused up front (0 digits gave TrainingDiverged: "lower the learning rate")
    "train_vae 0 images": (lambda: vae.train_vae(_vae(), _pixels(0), _VCFG), ValueError, "train_images"),
    "train_vae 0 validation digits": (lambda: vae.train_vae(_vae(), _pixels(4), _VCFG, _VX[:0]), ValueError, "valid_x"),
    "train_vae model": (lambda: vae.train_vae(torch.nn.Linear(4, 4), _pixels(4), _VCFG), TypeError, "model"),
    # save_pretrained: metadata that weights_only=True cannot read back, named by its key
    "save_pretrained numpy array": (lambda: vae.save_pretrained(_vae(), _vae_file("missing"), nll=np.zeros(3)), TypeError, "nll"),
    "save_pretrained object": (lambda: vae.save_pretrained(_vae(), _vae_file("missing"), when=object()), TypeError, "when"),
    "save_pretrained model": (lambda: vae.save_pretrained(torch.nn.Linear(2, 2), _vae_file("missing")), TypeError, "model"),
    # load_pretrained: a CheckpointError naming the path, as training.load_checkpoint
    "load_pretrained missing": (lambda: vae.load_pretrained(_vae_file("missing")), training.CheckpointError, "missing.pt"),
    "load_pretrained truncated": (lambda: vae.load_pretrained(_vae_file("truncated")), training.CheckpointError, "truncated.pt"),
    "load_pretrained empty": (lambda: vae.load_pretrained(_vae_file("empty")), training.CheckpointError, "empty.pt"),
    "load_pretrained text": (lambda: vae.load_pretrained(_vae_file("text")), training.CheckpointError, "text.pt"),
    "load_pretrained random": (lambda: vae.load_pretrained(_vae_file("random")), training.CheckpointError, "random.pt"),
    "load_pretrained foreign": (lambda: vae.load_pretrained(_vae_file("foreign")), training.CheckpointError, "foreign.pt"),
    "load_pretrained flipped byte": (lambda: vae.load_pretrained(_vae_file("flipped")), training.CheckpointError, "flipped.pt"),
    "load_pretrained sha256 short": (lambda: vae.load_pretrained(_vae_file("missing"), "abc"), ValueError, "sha256"),
    "load_pretrained sha256 not hex": (lambda: vae.load_pretrained(_vae_file("missing"), "g" * 64), ValueError, "sha256"),
    "load_pretrained sha256 bytes": (lambda: vae.load_pretrained(_vae_file("missing"), b"0" * 64), TypeError, "sha256"),
    "load_pretrained path int": (lambda: vae.load_pretrained(7), TypeError, "path"),
    # Chapter 1: the logit transform promised a ValueError for NaN
    "logit_transform NaN": (lambda: image_flows.logit_transform(torch.tensor([[0.5, NAN]])), ValueError, "x"),
    "logit_transform -inf": (lambda: image_flows.logit_transform(torch.tensor([[0.5, -math.inf]])), ValueError, "x"),
    "LogitTransform forward NaN": (lambda: image_flows.LogitTransform()(torch.tensor([[NAN, 0.5]])), ValueError, "x"),
    "LogitTransform inverse NaN": (lambda: image_flows.LogitTransform().inverse(torch.tensor([[NAN, 0.5]])), ValueError, "y"),
    "dequantized_log_likelihood NaN log_prob": (lambda: image_flows.dequantized_log_likelihood(
        lambda b: torch.full((len(b),), NAN), torch.zeros(2, 3, dtype=torch.long), 1), ValueError, "log_prob"),
}


@pytest.mark.parametrize("call, exc, arg", _rows(VAE_ROWS, "vae"))
def test_vae_bad_input_raises_naming_the_argument(call, exc, arg):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    assert re.search(rf"(^|\W){re.escape(arg)}(\W|$)", message), f"the message must name {arg!r}: {message}"
