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
