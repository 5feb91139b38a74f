"""MADE (course_lib.autoregressive.made): the autoregressive property, exact normalization, bad inputs.

Every property is measured by a helper (``future_gradient``, ``total_probability``)
that is also fed deliberately wrong masks (an output mask built with ``>=``,
hidden masks left out, masks that ignore the ordering), written into a model's
mask buffers here, never into the library, and must flag them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import autoregressive as ar
from course_lib.autoregressive import attention, core, made, pixelrnn, pretrained, training


# ------------------------------------------------------------------ helpers (independent of the library's masks)
def jacobian(model, num_probes=3, seed=0):
    """|d logit_i / d x_j| summed over random real inputs in [0, 1): (D, D), float64."""
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros(model.num_inputs, model.num_inputs, dtype=torch.float64)
    for _ in range(num_probes):
        x = torch.rand(model.num_inputs, generator=gen, dtype=torch.float64)
        jac = torch.autograd.functional.jacobian(lambda v: model(v[None])[0], x)
        total += jac.abs()
    return total


def future_gradient(model, order):
    """Largest |d logit_i / d x_j| over the pairs with order[j] >= order[i] (must be exactly 0)."""
    order = torch.as_tensor(order)
    future = order[None, :] >= order[:, None]                     # [i, j]: j is not earlier than i
    return jacobian(model)[future].max().item()


def missing_past(model, order):
    """Number of pairs order[j] < order[i] with no path from input j to logit i through the masks.

    Counted structurally (the product of the 0/1 masks counts the paths): a gradient
    can be zero by accident when the ReLUs on the only paths are off for every probe.
    """
    order = torch.as_tensor(order)
    past = order[None, :] < order[:, None]
    paths = torch.eye(model.num_inputs, dtype=torch.float64)
    for layer in model.layers:
        paths = layer.mask.double() @ paths                          # (out, D): paths from each input
    return int((paths[past] == 0).sum())


def all_binary_vectors(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)), dtype=torch.float64)


def total_probability(model):
    """Sum of exp(log_prob) over all 2**D binary vectors (float64)."""
    with torch.no_grad():
        return model.log_prob(all_binary_vectors(model.num_inputs)).exp().sum().item()


def paper_masks(m0, hidden_degrees, output_strict=True):
    """The masks written out entry by entry from the paper's definitions (loops, no broadcasting).

    ``output_strict=False`` is the wrong formula: the output mask with >= instead of >.
    """
    layers = [m0] + hidden_degrees
    masks = []
    for below, above in zip(layers[:-1], layers[1:]):
        masks.append(torch.tensor([[1.0 if above[k] >= below[j] else 0.0 for j in range(len(below))]
                                   for k in range(len(above))]))
    last = layers[-1]
    keep = (lambda d, k: m0[d] > last[k]) if output_strict else (lambda d, k: m0[d] >= last[k])
    masks.append(torch.tensor([[1.0 if keep(d, k) else 0.0 for k in range(len(last))] for d in range(len(m0))]))
    return masks


def with_masks(model, masks):
    """The model with its mask buffers overwritten (a scratch copy's way of trying a wrong formula)."""
    with torch.no_grad():
        for layer, mask in zip(model.layers, masks):
            layer.mask.copy_(mask.to(layer.mask.dtype))
    return model


def _degrees_as_lists(model):
    m0 = (model.order + 1).tolist()
    return m0, [ar.made_degrees(model.num_inputs, model.hidden_sizes, model.order)[l + 1].tolist()
                for l in range(len(model.hidden_sizes))]


ORDERS = {
    "identity": list(range(6)),
    "reversed": list(range(6))[::-1],
    "shuffled": [3, 0, 5, 1, 4, 2],
}


# ------------------------------------------------------------------ the autoregressive property, by gradient
@pytest.mark.parametrize("name", ORDERS)
@pytest.mark.parametrize("hidden", [(8,), (10, 7), (5, 12, 9)])
def test_logit_i_never_depends_on_x_j_at_or_after_i_in_the_order(name, hidden):
    torch.manual_seed(0)
    model = ar.MADE(6, hidden, order=ORDERS[name]).double()
    assert future_gradient(model, ORDERS[name]) == 0.0
    assert total_probability(model) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(2, 7), hidden=st.lists(st.integers(1, 12), min_size=1, max_size=3),
       perm_seed=st.integers(0, 10_000), degree_seed=st.one_of(st.none(), st.integers(0, 10_000)))
def test_property_any_order_any_widths_random_or_cyclic_degrees(d, hidden, perm_seed, degree_seed):
    order = np.random.default_rng(perm_seed).permutation(d)
    torch.manual_seed(perm_seed)
    model = ar.MADE(d, hidden, order=order, seed=degree_seed).double()
    assert future_gradient(model, order) == 0.0
    assert total_probability(model) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("name", ORDERS)
def test_with_enough_cyclic_hidden_units_every_logit_reads_its_whole_past(name):
    torch.manual_seed(1)
    model = ar.MADE(6, (12, 12), order=ORDERS[name]).double()
    assert missing_past(model, ORDERS[name]) == 0
    assert future_gradient(model, ORDERS[name]) == 0.0


def test_first_variable_in_the_order_has_a_constant_logit():
    torch.manual_seed(0)
    model = ar.MADE(5, (8,), order=[2, 4, 0, 1, 3]).double()
    x = torch.rand(7, 5, dtype=torch.float64)
    logits = model(x)
    assert torch.allclose(logits[:, 2], logits[0, 2].expand(7))        # x_2 is predicted first: from nothing


# ------------------------------------------------------------------ exact normalization
@pytest.mark.parametrize("order", [None, [7, 6, 5, 4, 3, 2, 1, 0], [2, 5, 0, 7, 1, 3, 6, 4]])
@pytest.mark.parametrize("seed", [None, 3])
def test_probabilities_of_all_2_to_the_d_vectors_sum_to_one(order, seed):
    torch.manual_seed(0)
    model = ar.MADE(8, (16, 16), order=order, seed=seed).double()
    with torch.no_grad():
        for layer in model.layers:                                   # large weights: far from uniform
            layer.weight.mul_(3.0)
    p = model.log_prob(all_binary_vectors(8)).exp()
    assert p.max().item() > 2 / 256                                # not the uniform distribution
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)


def test_log_prob_is_the_sum_of_bernoulli_log_likelihoods_in_nats():
    torch.manual_seed(0)
    model = ar.MADE(4, (6,)).double()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    p1 = torch.sigmoid(model(x))
    expected = torch.log(torch.where(x == 1, p1, 1 - p1)).sum(1)
    assert torch.allclose(model.log_prob(x), expected)
    assert torch.allclose(model.log_prob(x.long()), expected)          # integer 0/1 input is accepted


# ------------------------------------------------------------------ the masks against the paper's definitions
@pytest.mark.parametrize("order", [None, [3, 0, 5, 1, 4, 2]])
@pytest.mark.parametrize("seed", [None, 0])
def test_masks_equal_the_papers_definitions_entry_by_entry(order, seed):
    degrees = ar.made_degrees(6, (9, 4), order=order, seed=seed)
    m0, hidden = degrees[0].tolist(), [m.tolist() for m in degrees[1:]]
    for got, want in zip(ar.made_masks(degrees), paper_masks(m0, hidden)):
        assert torch.equal(got.float(), want)
    model = ar.MADE(6, (9, 4), order=order, seed=seed)
    for layer, want in zip(model.layers, paper_masks(m0, hidden)):
        assert torch.equal(layer.mask, want)


def test_degrees_stay_in_range_and_cyclic_degrees_cover_one_to_d_minus_one():
    d = 7
    for seed in (None, 0, 1, 2):
        degrees = ar.made_degrees(d, (20, 3, 20), order=[6, 5, 4, 3, 2, 1, 0], seed=seed)
        assert sorted(degrees[0].tolist()) == list(range(1, d + 1))
        assert degrees[0].tolist() == [7, 6, 5, 4, 3, 2, 1]
        lo = 1
        for m in degrees[1:]:
            assert int(m.min()) >= lo and int(m.max()) <= d - 1
            lo = int(m.min())
    assert set(ar.made_degrees(d, (6,))[1].tolist()) == set(range(1, d))


# ------------------------------------------------------------------ the helpers catch wrong masks
def _model_and_degrees(order, hidden=(10, 8)):
    torch.manual_seed(0)
    model = ar.MADE(6, hidden, order=order).double()
    m0, hidden_degrees = _degrees_as_lists(model)
    return model, m0, hidden_degrees


@pytest.mark.parametrize("name", ORDERS)
def test_an_output_mask_built_with_geq_lets_logit_i_see_x_i_and_is_caught(name):
    model, m0, hidden = _model_and_degrees(ORDERS[name])
    wrong = with_masks(model, paper_masks(m0, hidden, output_strict=False))
    assert future_gradient(wrong, ORDERS[name]) > 0.0
    jac = jacobian(wrong)
    assert (jac.diagonal() > 0).any()                               # some logit reads its own variable
    assert abs(total_probability(wrong) - 1.0) > 1e-6                # float64 sums to 1 within 1e-12


def test_a_missing_hidden_mask_is_caught():
    model, m0, hidden = _model_and_degrees(ORDERS["shuffled"])
    masks = paper_masks(m0, hidden)
    masks[0] = torch.ones_like(masks[0])                            # the first layer reads every input
    wrong = with_masks(model, masks)
    assert future_gradient(wrong, ORDERS["shuffled"]) > 0.0
    assert abs(total_probability(wrong) - 1.0) > 1e-6                # float64 sums to 1 within 1e-12


def test_masks_that_ignore_the_ordering_are_caught_by_the_ordered_check():
    model, _, _ = _model_and_degrees(ORDERS["shuffled"])
    identity = ar.made_degrees(6, model.hidden_sizes)               # degrees of the identity order
    wrong = with_masks(model, [m.double() for m in ar.made_masks(identity)])
    assert future_gradient(wrong, ORDERS["shuffled"]) > 0.0         # leaks in the order the model claims
    assert future_gradient(wrong, ORDERS["identity"]) == 0.0        # (causal in some other order)


def test_hidden_masks_built_with_strict_gt_cut_the_last_step_of_the_past_and_are_caught():
    model, m0, hidden = _model_and_degrees(ORDERS["identity"], hidden=(12, 12))
    layers = [m0] + hidden
    masks = [torch.tensor([[1.0 if above[k] > below[j] else 0.0 for j in range(len(below))] for k in range(len(above))])
             for below, above in zip(layers[:-1], layers[1:])] + paper_masks(m0, hidden)[-1:]
    assert missing_past(with_masks(model, masks), ORDERS["identity"]) > 0     # still causal, but blind to x_{i-1}


def test_a_mask_applied_once_to_the_weight_is_undone_by_one_sgd_step_but_masked_linear_is_not():
    torch.manual_seed(0)
    mask = ar.made_masks(ar.made_degrees(4, (5,)))[-1]              # (4, 5); output 0 (degree 1) reads nothing
    naive = torch.nn.Linear(5, 4).double()
    with torch.no_grad():
        naive.weight.mul_(mask)                                      # masked once, at construction
    layer = ar.MaskedLinear(5, 4, mask).double()
    for module in (naive, layer):
        opt = torch.optim.SGD(module.parameters(), lr=0.5)
        module(torch.rand(8, 5, dtype=torch.float64)).pow(2).sum().backward()
        opt.step()
    assert (naive.weight[~mask] != 0).any()                          # the step filled the masked weights in
    with torch.no_grad():
        layer.weight.normal_()                                       # even foreign weights cannot unmask it
    x = torch.rand(3, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(layer(x)[:, 0].sum(), x)
    assert torch.equal(grad, torch.zeros_like(grad))


# ------------------------------------------------------------------ bad inputs
BAD = [
    (lambda: ar.MADE(1), ValueError, "num_inputs"),
    (lambda: ar.MADE(2.5), TypeError, "num_inputs"),
    (lambda: ar.MADE(True), TypeError, "num_inputs"),
    (lambda: ar.MADE(4, ()), ValueError, "hidden_sizes"),
    (lambda: ar.MADE(4, (8, 0)), ValueError, "hidden_sizes"),
    (lambda: ar.MADE(4, (3.5,)), ValueError, "hidden_sizes"),
    (lambda: ar.MADE(4, 8), TypeError, "hidden_sizes"),
    (lambda: ar.MADE(4, "8"), TypeError, "hidden_sizes"),
    (lambda: ar.MADE(4, (8,), order=[0, 1, 2]), ValueError, "order"),
    (lambda: ar.MADE(4, (8,), order=[0, 1, 1, 2]), ValueError, "order"),
    (lambda: ar.MADE(4, (8,), order=[1, 2, 3, 4]), ValueError, "order"),
    (lambda: ar.MADE(4, (8,), order=[0.0, 1.0, 2.0, 3.0]), TypeError, "order"),
    (lambda: ar.MADE(4, (8,), order="0123"), TypeError, "order"),
    (lambda: ar.MADE(4, (8,), order=3), TypeError, "order"),
    (lambda: ar.MADE(4, (8,), seed=-1), ValueError, "seed"),
    (lambda: ar.MADE(4, (8,), seed=1.5), TypeError, "seed"),
    (lambda: ar.MADE(4, (8,))(torch.zeros(2, 3)), ValueError, "x must have shape"),
    (lambda: ar.MADE(4, (8,))(torch.zeros(4)), ValueError, "x must have shape"),
    (lambda: ar.MADE(4, (8,))(torch.zeros(1, 2, 4)), ValueError, "x must have shape"),
    (lambda: ar.MADE(4, (8,))(np.zeros((2, 4))), TypeError, "x must be a torch.Tensor"),
    (lambda: ar.MADE(4, (8,)).log_prob(torch.full((2, 4), 0.5)), ValueError, "x must contain only 0 and 1"),
    (lambda: ar.MADE(4, (8,)).log_prob(torch.zeros(2, 5)), ValueError, "x must have shape"),
    (lambda: ar.made_masks([torch.arange(1, 4)]), ValueError, "degrees"),
    (lambda: ar.made_masks(torch.arange(1, 4)), TypeError, "degrees"),
    (lambda: ar.made_masks([torch.arange(1, 4), torch.rand(3)]), ValueError, r"degrees\[1\]"),
    (lambda: ar.MaskedLinear(3, 2, torch.ones(3, 2)), ValueError, "mask must have shape"),
    (lambda: ar.MaskedLinear(3, 2, torch.full((2, 3), 0.5)), ValueError, "mask must contain only 0 and 1"),
    (lambda: ar.MaskedLinear(3, 2, [[1, 1, 1], [1, 1, 1]]), TypeError, "mask must be a torch.Tensor"),
    (lambda: ar.MaskedLinear(0, 2, torch.ones(2, 0)), ValueError, "in_features"),
    (lambda: ar.MaskedLinear(3, 2, torch.ones(2, 3))(torch.zeros(2, 4)), ValueError, "x must have shape"),
]


@pytest.mark.parametrize("call, exc, message", BAD)
def test_bad_input_raises_naming_the_argument(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_order_accepts_lists_tuples_numpy_and_tensors_alike():
    for order in ([2, 0, 1], (2, 0, 1), np.array([2, 0, 1]), torch.tensor([2, 0, 1])):
        assert ar.MADE(3, (4,), order=order).order.tolist() == [2, 0, 1]


def test_every_existing_public_name_is_still_importable():
    for module in (core, attention, made, pixelrnn, training, pretrained):
        for name in module.__all__:
            assert name in ar.__all__ and getattr(ar, name) is getattr(module, name)
    assert {"MADE", "MaskedLinear", "made_masks", "made_degrees"} <= set(ar.__all__)
