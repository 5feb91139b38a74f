"""Property tests for course_lib.flows: inversion, log-det against autograd, likelihood, training."""

import math

import pytest
import torch

from course_lib import flows


def _perturb(module, std=0.3, seed=0):
    """Move every parameter away from its (often identity) initialisation."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g))
    return module


def _autograd_logdet(fn, x_row):
    J = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], x_row)
    sign, logabsdet = torch.linalg.slogdet(J)
    assert sign != 0
    return logabsdet


LAYERS = [
    lambda d, m: flows.AdditiveCoupling(d, m, 16, 2),
    lambda d, m: flows.AffineCoupling(d, m, 16, 2),
    lambda d, m: flows.Scaling(d),
]


@pytest.mark.parametrize("make", LAYERS, ids=["additive", "affine", "scaling"])
@pytest.mark.parametrize("mask", [flows.alternating_mask(5, 0), torch.tensor([True, False, False, True, False])])
def test_layer_inverts_and_logdet_matches_slogdet(make, mask):
    layer = _perturb(make(5, mask))
    x = torch.randn(4, 5, dtype=torch.float64)
    layer = layer.double()
    y, log_det = layer(x)
    assert log_det.shape == (4,)
    x_rec, inv_log_det = layer.inverse(y)
    assert torch.allclose(x_rec, x, atol=1e-10)
    assert torch.allclose(inv_log_det, -log_det, atol=1e-10)
    for i in range(4):
        assert torch.allclose(log_det[i], _autograd_logdet(layer, x[i]), atol=1e-8)


def test_additive_coupling_is_volume_preserving_and_changes_only_x2():
    mask = flows.alternating_mask(6, 1)
    layer = _perturb(flows.AdditiveCoupling(6, mask, 8, 1))
    x = torch.randn(3, 6)
    y, log_det = layer(x)
    assert torch.equal(log_det, torch.zeros(3))
    assert torch.equal(y[:, mask], x[:, mask])
    assert not torch.allclose(y[:, ~mask], x[:, ~mask])


@pytest.mark.parametrize("model_fn", [
    lambda: flows.NICE(6, num_coupling=4, hidden_dim=16, num_hidden=2),
    lambda: flows.NICE(6, num_coupling=3, hidden_dim=16, num_hidden=1, prior="gaussian"),
    lambda: flows.RealNVP(6, num_coupling=4, hidden_dim=16, num_hidden=2),
], ids=["nice", "nice-gauss", "realnvp"])
def test_model_inverts_and_log_prob_is_change_of_variables(model_fn):
    torch.manual_seed(0)
    model = _perturb(model_fn()).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    z, log_det = model(x)
    assert z.shape == (5, 6) and log_det.shape == (5,)
    assert torch.allclose(model.inverse(z), x, atol=1e-9)
    for i in range(5):
        assert torch.allclose(log_det[i], _autograd_logdet(model, x[i]), atol=1e-8)
    expected = model.prior_log_prob(z) + log_det
    assert torch.allclose(model.log_prob(x), expected)


def test_log_prob_integrates_to_one_in_2d():
    """A density must integrate to 1: check the 2-D RealNVP on a fine grid."""
    torch.manual_seed(0)
    model = _perturb(flows.RealNVP(2, 4, 16, 2), std=0.2).double()
    g = torch.linspace(-8, 8, 401, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="ij")
    pts = torch.stack([X.flatten(), Y.flatten()], 1)
    with torch.no_grad():
        mass = model.log_prob(pts).exp().sum() * (g[1] - g[0]) ** 2
    assert abs(mass.item() - 1) < 0.02


def test_priors_are_normalised_densities():
    z = torch.linspace(-40, 40, 80001, dtype=torch.float64)
    dz = z[1] - z[0]
    assert abs((flows.logistic_log_prob(z).exp().sum() * dz).item() - 1) < 1e-6
    assert abs((flows.standard_normal_log_prob(z).exp().sum() * dz).item() - 1) < 1e-6
    assert torch.isfinite(flows.logistic_log_prob(torch.tensor([1e4, -1e4]))).all()


def test_nice_log_likelihood_matches_model():
    torch.manual_seed(1)
    model = _perturb(flows.NICE(4, 2, 8, 1))
    x = torch.randn(7, 4)
    h = x
    for layer in model.layers[:-1]:
        h, _ = layer(h)
    got = flows.nice_log_likelihood(h, model.layers[-1].log_scale)
    assert torch.allclose(got, model.log_prob(x), atol=1e-5)


def test_samples_follow_the_prior_through_the_inverse():
    torch.manual_seed(0)
    model = _perturb(flows.NICE(3, 2, 8, 1))
    g = torch.Generator().manual_seed(5)
    x = model.sample(20000, generator=g)
    z, _ = model(x)
    # The standard logistic has variance pi^2 / 3.
    assert torch.allclose(z.var(0), torch.full((3,), math.pi**2 / 3), rtol=0.05)


@pytest.mark.parametrize("bad", [torch.randn(4, 5), torch.randn(6), torch.randn(2, 6, 1)])
def test_wrong_shape_raises_value_error_naming_the_shape(bad):
    model = flows.NICE(6, 2, 8, 1)
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        model(bad)
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        model.inverse(bad)
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        model.log_prob(bad)


def test_bad_mask_and_prior_raise():
    with pytest.raises(ValueError, match="mask"):
        flows.AdditiveCoupling(4, torch.tensor([1, 0, 1, 0]), 8, 1)
    with pytest.raises(ValueError, match="mask"):
        flows.AffineCoupling(4, torch.ones(4, dtype=torch.bool), 8, 1)
    with pytest.raises(ValueError, match=r"\(5,\)"):
        flows.AdditiveCoupling(5, flows.alternating_mask(4, 0), 8, 1)
    with pytest.raises(ValueError, match="prior"):
        flows.NICE(4, prior="cauchy")


def test_init_from_data_gives_the_prior_spread():
    torch.manual_seed(0)
    model = flows.NICE(4, 2, 8, 1)
    x = torch.randn(5000, 4) * torch.tensor([0.01, 0.1, 1.0, 10.0])
    model.init_from_data(x)
    z, _ = model(x)
    assert torch.allclose(z.std(0), torch.full((4,), math.pi / math.sqrt(3)), rtol=0.05)


def _toy_data(n=2000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g) * torch.tensor([2.0, 0.5]) + torch.tensor([1.0, -1.0])


def test_training_increases_likelihood_and_returns_history():
    torch.manual_seed(0)
    train_x, test_x = _toy_data(), _toy_data(500, 1)
    model = flows.RealNVP(2, 2, 16, 1)
    before = flows.evaluate_log_likelihood(model, test_x)
    model, hist = flows.train(model, train_x, flows.TrainConfig(epochs=5, batch_size=100, lr=1e-2, progress=False), test_data=test_x)
    assert set(hist) == {"epoch", "step", "seconds", "train_log_likelihood", "test_log_likelihood",
                         "epoch_complete", "stop_reason"}
    assert hist["epoch"] == [1, 2, 3, 4, 5] and hist["step"][-1] == 100
    assert hist["epoch_complete"] == [True] * 5 and hist["stop_reason"] == "completed"
    # The exact optimum is the Gaussian's entropy; training must get close to it.
    best = -(0.5 * math.log(2 * math.pi * math.e) * 2 + math.log(2.0 * 0.5))
    assert hist["test_log_likelihood"][-1] > before + 1.0
    assert hist["test_log_likelihood"][-1] > best - 0.15


def test_nan_in_training_data_is_reported_as_data():
    model = flows.RealNVP(2, 2, 8, 1)
    bad = _toy_data(300)
    bad[150] = float("nan")
    with pytest.raises(ValueError, match=r"train_data contains 2 NaN"):
        flows.train(model, bad, flows.TrainConfig(epochs=1, batch_size=300, progress=False))


def test_nan_from_the_transform_stops_training_naming_step_and_input():
    model = flows.RealNVP(2, 2, 8, 1)

    calls = []

    def poison(batch, generator):  # the third batch comes out of the transform as NaN
        calls.append(1)
        return batch * float("nan") if len(calls) == 3 else batch

    with pytest.raises(FloatingPointError, match=r"step 2: the loss is not finite.*input batch contains NaN"):
        flows.train(model, _toy_data(300), flows.TrainConfig(epochs=1, batch_size=100, progress=False), transform=poison)


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path):
    train_x = _toy_data()
    cfg = dict(batch_size=200, lr=1e-2, progress=False, seed=3)
    torch.manual_seed(0)
    straight, hist_straight = flows.train(flows.RealNVP(2, 2, 8, 1), train_x, flows.TrainConfig(epochs=4, **cfg))

    ckpt = str(tmp_path / "ckpt.pt")
    torch.manual_seed(0)
    flows.train(flows.RealNVP(2, 2, 8, 1), train_x, flows.TrainConfig(epochs=2, checkpoint_path=ckpt, **cfg))
    state = torch.load(ckpt, weights_only=True)  # plain state dicts and numbers: safe to load
    assert state["loop_state"]["epoch"] == 2
    torch.manual_seed(123)  # a different init, overwritten by the checkpoint
    resumed, hist_resumed = flows.train(flows.RealNVP(2, 2, 8, 1), train_x, flows.TrainConfig(epochs=4, checkpoint_path=ckpt, **cfg))
    assert hist_resumed["epoch"] == [1, 2, 3, 4]
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6)
    assert list(tmp_path.iterdir()) == [tmp_path / "ckpt.pt"], "no temporary files may be left behind"


# ----------------------------------------------------------------------------
# Property tests over random dims, masks and batch sizes (B = 0 included)
# ----------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@st.composite
def _dims_and_masks(draw):
    dim = draw(st.integers(2, 10))
    kind = draw(st.sampled_from(["alternating0", "alternating1", "random"]))
    if kind.startswith("alternating"):
        mask = flows.alternating_mask(dim, int(kind[-1]))
    else:
        bits = draw(st.lists(st.booleans(), min_size=dim, max_size=dim).filter(lambda b: any(b) and not all(b)))
        mask = torch.tensor(bits)
    return dim, mask, draw(st.integers(0, 5)), draw(st.integers(0, 2**16))


def _reference_coupling(x, mask, shift):
    """The boolean-index form of eq. (6)-(7), written independently: y[:, ~mask] = x2 + shift."""
    y = x.clone()
    y[:, ~mask] = x[:, ~mask] + shift
    return y


@settings(max_examples=60, deadline=None)
@given(_dims_and_masks(), st.sampled_from(["additive", "affine"]))
def test_coupling_round_trip_and_log_det_match_slogdet(case, kind):
    dim, mask, batch, seed = case
    torch.manual_seed(seed)
    make = flows.AdditiveCoupling if kind == "additive" else flows.AffineCoupling
    layer = _perturb(make(dim, mask, 8, 1), seed=seed).double()
    x = torch.randn(batch, dim, dtype=torch.float64)
    y, log_det = layer(x)
    assert y.shape == (batch, dim) and log_det.shape == (batch,)
    assert torch.equal(y[:, mask], x[:, mask])  # x1 passes through unchanged
    x_rec, inv_log_det = layer.inverse(y)
    assert torch.allclose(x_rec, x, atol=1e-10) and torch.allclose(inv_log_det, -log_det, atol=1e-10)
    for i in range(batch):
        assert torch.allclose(log_det[i], _autograd_logdet(layer, x[i]), atol=1e-8)
    if kind == "additive":  # the fast split/merge equals boolean indexing exactly
        shift = layer.shift_net(x[:, mask])
        assert torch.equal(y, _reference_coupling(x, mask, shift))


@settings(max_examples=25, deadline=None)
@given(_dims_and_masks())
def test_fast_partition_gradients_equal_boolean_indexing(case):
    dim, mask, batch, seed = case
    torch.manual_seed(seed)
    layer = _perturb(flows.AdditiveCoupling(dim, mask, 8, 1), seed=seed)
    x = torch.randn(batch, dim, requires_grad=True)
    weights = torch.randn(batch, dim)
    (layer(x)[0] * weights).sum().backward()
    fast = [x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]
    x.grad = None
    layer.zero_grad()
    (_reference_coupling(x, mask, layer.shift_net(x[:, mask])) * weights).sum().backward()
    slow = [x.grad] + [p.grad for p in layer.parameters()]
    for a, b in zip(fast, slow):
        assert torch.allclose(a, b, atol=1e-6)


def test_a_mask_changed_in_place_is_seen():
    mask = flows.alternating_mask(4, 0)
    net = lambda x1: torch.ones_like(x1)
    x = torch.zeros(1, 4)
    assert flows.additive_coupling_forward(x, mask, net)[0].tolist() == [[0, 1, 0, 1]]
    mask[:] = torch.tensor([True, True, False, False])
    assert flows.additive_coupling_forward(x, mask, net)[0].tolist() == [[0, 0, 1, 1]]


@pytest.mark.parametrize("num_coupling", [2, 3, 4])
def test_init_from_data_centres_every_shifted_coordinate(num_coupling):
    torch.manual_seed(0)
    x = torch.randn(2000, 6) * torch.arange(1.0, 7.0) + 3 * torch.arange(6.0) + 1
    model = _perturb(flows.NICE(6, num_coupling, 8, 1), std=0.1)
    before, _ = model(x)
    model.init_from_data(x)
    z, _ = model(x)
    assert torch.allclose(z.mean(0), torch.zeros(6), atol=1e-4)
    assert torch.allclose(z.std(0), torch.full((6,), math.pi / math.sqrt(3)), rtol=1e-4)
    assert before.mean(0).abs().max() > 1  # the centring did something
    off = flows.NICE(6, num_coupling, 8, 1)
    off.load_state_dict(_perturb(flows.NICE(6, num_coupling, 8, 1), std=0.1).state_dict())
    off.init_from_data(x, center=False)
    assert off(x)[0].mean(0).abs().max() > 1
