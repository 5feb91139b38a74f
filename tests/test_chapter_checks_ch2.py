"""The numeric checks of Chapter 2 catch the wrong formulas their sentences name.

CHAPTER_STANDARD: a check is *proven falsifiable* by a test that feeds it the wrong
formula its sentence names and asserts that it fails. Each check cell of
``notebooks/02_pixelcnn.ipynb`` starts with a marker line ``# CHECK: <label>`` and
defines the check as a function of the implementation under test. These tests read
that cell, execute only its imports and ``def`` statements (nothing that trains or
plots), and call the check with the right implementation (it must pass) and with
each wrong one (it must raise ``AssertionError``). The helpers are those of
``tests/test_chapter_checks_rl.py``.
"""

from __future__ import annotations

import copy
import itertools
import math
from unittest import mock

import pytest
import torch
import torch.nn.functional as F

from course_lib import autoregressive as ar
from tests.test_chapter_checks_rl import fails, load_check

CH2 = "02_pixelcnn.ipynb"


def all_binary_images(c, h, w):
    """Every binary image of shape (c, h, w), in itertools.product order (as the notebook's cell 7)."""
    bits = torch.tensor(list(itertools.product([0.0, 1.0], repeat=c * h * w)), dtype=torch.float64)
    return bits.reshape(-1, c, h, w)


def _globals():
    return {"ar": ar, "F": F, "itertools": itertools, "copy": copy, "all_binary_images": all_binary_images}


# ------------------------------------------------------------------ eq-bernoulli-nll
def _nll_right(logits, x):
    return (x * F.softplus(-logits) + (1 - x) * F.softplus(logits)).flatten(1).sum(1)


def _nll_ignores_x(logits, x):
    # -sum log sigmoid(l): the NLL of the all-ones image, whatever x is
    return F.softplus(-logits).flatten(1).sum(1) + 0 * x.flatten(1).sum(1)


def _nll_swapped(logits, x):
    # x and 1 - x swapped
    return ((1 - x) * F.softplus(-logits) + x * F.softplus(logits)).flatten(1).sum(1)


def _nll_log10(logits, x):
    return _nll_right(logits, x) / math.log(10)


def test_bernoulli_nll_check_passes_the_library_and_the_right_formula():
    check = load_check(CH2, "eq-bernoulli-nll", **_globals())["check_bernoulli_nll"]
    check(ar.bernoulli_nll)
    check(_nll_right)


@pytest.mark.parametrize("wrong", [_nll_ignores_x, _nll_swapped, _nll_log10])
def test_bernoulli_nll_check_fails_the_wrong_formulas(wrong):
    check = load_check(CH2, "eq-bernoulli-nll", **_globals())["check_bernoulli_nll"]
    assert fails(check, wrong)


def test_the_old_zero_logit_check_could_not_tell_them_apart():
    """Why the check changed: with all logits 0, the x-ignoring and swapped formulas give the right number."""
    x = (torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    zero = torch.zeros_like(x)
    for wrong in (_nll_ignores_x, _nll_swapped):
        assert torch.allclose(wrong(zero, x), _nll_right(zero, x))


# ------------------------------------------------------------------ causality (all four models)
def _check_causal():
    return load_check(CH2, "causality", **_globals())["check_causal"]


@pytest.mark.parametrize("make", [
    lambda: ar.PixelCNN(hidden_channels=6, num_layers=2),
    lambda: ar.PixelCNN(in_channels=3, hidden_channels=6, num_layers=1),
    lambda: ar.GatedPixelCNN(hidden_channels=6, num_layers=2),
    lambda: ar.RowLSTM(hidden_channels=4, num_layers=1),
    lambda: ar.DiagonalBiLSTM(hidden_channels=4, num_layers=1),
])
def test_causality_check_passes_the_four_models(make):
    torch.manual_seed(0)
    model = make().double()
    _check_causal()(model, type(model).__name__, model.in_channels, 5)


def test_causality_check_fails_a_pixelcnn_with_mask_b_first():
    torch.manual_seed(0)
    model = ar.PixelCNN(hidden_channels=6, num_layers=2).double()
    model.input_conv.mask[:, :, 3, 3] = 1.0                     # mask B in the first layer: sees its own pixel
    assert fails(_check_causal(), model, "leaky PixelCNN", 1, 5)


def test_causality_check_fails_a_colour_mask_that_lets_g_read_g():
    torch.manual_seed(0)
    model = ar.PixelCNN(in_channels=3, hidden_channels=6, num_layers=1).double()
    model.input_conv.mask[:, :, 3, 3] = 1.0                     # every colour group reads every colour of its pixel
    assert fails(_check_causal(), model, "leaky colour PixelCNN", 3, 4)


def test_causality_check_fails_a_gated_pixelcnn_without_the_down_shift():
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(hidden_channels=6, num_layers=2).double()
    with mock.patch.object(ar.core, "_down_shift", lambda t: t):  # the vertical stack reaches h unshifted
        assert fails(_check_causal(), model, "unshifted Gated PixelCNN", 1, 5)


def test_causality_check_fails_a_gated_pixelcnn_without_the_first_right_shift():
    torch.manual_seed(0)
    model = ar.GatedPixelCNN(hidden_channels=6, num_layers=2).double()
    with mock.patch.object(ar.core, "_right_shift", lambda t: t):  # the first horizontal layer sees its own pixel
        assert fails(_check_causal(), model, "unshifted horizontal stack", 1, 5)


def test_causality_check_fails_a_diagonal_bilstm_without_the_down_shift():
    torch.manual_seed(0)
    model = ar.DiagonalBiLSTM(hidden_channels=4, num_layers=1).double()
    with mock.patch.object(ar.pixelrnn, "_down_shift", lambda t: t):
        assert fails(_check_causal(), model, "unshifted Diagonal BiLSTM", 1, 5)


# ------------------------------------------------------------------ sampling
def _tiny_models():
    torch.manual_seed(0)
    models = {
        "PixelCNN": ar.PixelCNN(hidden_channels=8, num_layers=2, first_kernel_size=3),
        "Gated PixelCNN": ar.GatedPixelCNN(hidden_channels=8, num_layers=2, first_kernel_size=3),
        "Row LSTM": ar.RowLSTM(hidden_channels=8, num_layers=1, first_kernel_size=3),
        "Diagonal BiLSTM": ar.DiagonalBiLSTM(hidden_channels=8, num_layers=1, first_kernel_size=3),
    }
    out = {}
    for name, model in models.items():
        model = model.double()
        with torch.no_grad():
            for w in model.parameters():
                w.mul_(3.0)
        out[name] = model
    return out


def _sample_right(model, n, shape, generator):
    return model.sample(n, shape, generator=generator)


def _sample_by_hand(model, n, shape, generator, flip=False):
    x = torch.zeros(n, *shape, dtype=torch.float64)
    with torch.no_grad():
        for i in range(shape[1]):
            for j in range(shape[2]):
                logit = model(x)[:, 0, i, j]
                x[:, 0, i, j] = torch.bernoulli(torch.sigmoid(-logit if flip else logit), generator=generator)
    return x


def _sample_flipped(model, n, shape, generator):
    # x_i = 1 with probability 1 - sigmoid(l_i)
    return _sample_by_hand(model, n, shape, generator, flip=True)


def _sample_parallel(model, n, shape, generator):
    # every pixel at once, from the logits of a blank image: ignores the pixels drawn before
    with torch.no_grad():
        return torch.bernoulli(torch.sigmoid(model(torch.zeros(n, *shape, dtype=torch.float64))), generator=generator)


@pytest.fixture(scope="module")
def tiny_models():
    return _tiny_models()


@pytest.mark.parametrize("name", ["PixelCNN", "Gated PixelCNN", "Row LSTM", "Diagonal BiLSTM"])
def test_sampling_check_passes_the_library_and_a_hand_written_sampler(tiny_models, name):
    check = load_check(CH2, "sampling", **_globals())["check_sampler"]
    check(tiny_models[name], _sample_right, name)
    check(tiny_models[name], _sample_by_hand, name)


@pytest.mark.parametrize("name", ["PixelCNN", "Gated PixelCNN", "Row LSTM", "Diagonal BiLSTM"])
@pytest.mark.parametrize("wrong", [_sample_parallel, _sample_flipped])
def test_sampling_check_fails_the_wrong_samplers(tiny_models, name, wrong):
    check = load_check(CH2, "sampling", **_globals())["check_sampler"]
    assert fails(check, tiny_models[name], wrong, name)


# ------------------------------------------------------------------ class conditioning
@pytest.fixture(scope="module")
def shipped_and_digits():
    from course_lib import data

    model, _ = ar.load_pretrained()
    images, labels = data.load_mnist("test", source="embedded")
    x = ar.binarize_fixed(images, seed=1)[:100]
    y = torch.from_numpy(labels)[:100].long()
    return model.eval(), x, y


def test_conditioning_check_passes_the_shipped_model(shipped_and_digits):
    model, x, y = shipped_and_digits
    check = load_check(CH2, "class-conditioning", **_globals())["check_conditioning"]
    check(model, x, y)


def test_conditioning_check_fails_a_model_that_ignores_its_label(shipped_and_digits):
    model, x, y = shipped_and_digits
    deaf = copy.deepcopy(model)
    with torch.no_grad():
        for layer in deaf.layers:
            layer.embed.weight.zero_()                          # every label gives the same likelihood
    check = load_check(CH2, "class-conditioning", **_globals())["check_conditioning"]
    assert fails(check, deaf, x, y)


def test_conditioning_check_fails_misaligned_labels(shipped_and_digits):
    model, x, y = shipped_and_digits
    check = load_check(CH2, "class-conditioning", **_globals())["check_conditioning"]
    assert fails(check, model, x, (y + 1) % 10)


# ------------------------------------------------------------------ citations (issue 22: 2016a / 2016b)
def test_the_two_van_den_oord_2016_papers_cite_as_2016a_and_2016b(tmp_path):
    """A one-page Sphinx build with the book's bibliography and course_sphinx_ext's styles."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("sphinxcontrib.bibtex")
    root = Path(__file__).resolve().parents[1]
    (tmp_path / "conf.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(root / 'book' / '_ext')!r})\n"
        "import course_sphinx_ext\n"
        "course_sphinx_ext._register_bibliography_style()\n"
        "extensions = ['sphinxcontrib.bibtex']\n"
        f"bibtex_bibfiles = [{str(root / 'book' / 'references.bib')!r}]\n"
        "bibtex_reference_style = 'course_author_year'\n"
        "bibtex_default_style = 'course_author_year'\n"
    )
    (tmp_path / "index.rst").write_text(
        "Test\n====\n\nA :cite:p:`vandenoord2016pixelcnn` B :cite:p:`vandenoord2016conditional` "
        "C :cite:t:`vandenoord2016pixelcnn` D :cite:p:`kingma2014vae`\n\n.. bibliography::\n   :all:\n"
    )
    subprocess.run([sys.executable, "-m", "sphinx", "-q", "-b", "html", str(tmp_path), str(tmp_path / "_build")],
                   check=True, capture_output=True)
    text = re.sub(r"<[^>]+>", "", (tmp_path / "_build" / "index.html").read_text(encoding="utf-8")).replace("\xa0", " ")
    cites = re.findall(r"[ABCD] (\[[^\]]*\]|van den Oord et al\. \[[^\]]*\])", text)
    # the book's bibliography lists every entry (:all:), with three van den Oord et al. 2016 papers
    assert all(re.fullmatch(r"\[van den Oord et al\., 2016[abc]\]", c) for c in cites[:2]) and cites[0] != cites[1], cites
    assert cites[2] == "van den Oord et al. [" + cites[0][-6:] and cites[3] == "[Kingma and Welling, 2014]", cites
    assert cites[0] in text.split("D [Kingma")[1] and cites[1] in text.split("D [Kingma")[1]   # the bibliography agrees


# ------------------------------------------------------------------ causal self-attention (issue 22 §4)
class _AttentionModel(torch.nn.Module):
    """As in the notebook's §2.8: a pointwise embedding, one mask-A-like attention layer, a 1x1 output."""

    in_channels = 1

    def __init__(self, kind, size=None, channels=6):
        super().__init__()
        self.embed = torch.nn.Conv2d(1, channels, 1)
        self.attend = ar.CausalSelfAttention2d(channels, kind, size, include_self=False)
        self.head = torch.nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        return self.head(torch.relu(self.attend(self.embed(x))))


@pytest.mark.parametrize("kind,size", [("full", None), ("local1d", 3), ("local2d", 2)])
def test_causality_check_passes_masked_attention(kind, size):
    torch.manual_seed(0)
    _check_causal()(_AttentionModel(kind, size).double(), f"attention {kind}", 1, 5)


def test_causality_check_fails_attention_without_its_mask():
    torch.manual_seed(0)
    model = _AttentionModel("full").double()
    everything = lambda h, w, *args, **kwargs: torch.ones(h * w, h * w, dtype=torch.bool)  # noqa: E731
    with mock.patch.object(ar.attention, "attention_mask", everything):
        assert fails(_check_causal(), model, "unmasked attention", 1, 5)


def test_attention_with_include_self_keeps_a_residual_and_stays_causal_after_mask_a():
    torch.manual_seed(0)

    class Stack(torch.nn.Module):
        in_channels = 1

        def __init__(self):
            super().__init__()
            self.input_conv = ar.MaskedConv2d(1, 6, 3, "A")
            self.attend = ar.CausalSelfAttention2d(6, "local2d", 2, include_self=True)
            self.head = torch.nn.Conv2d(6, 1, 1)

        def forward(self, x):
            return self.head(torch.relu(self.attend(self.input_conv(x))))

    _check_causal()(Stack().double(), "mask A + attention", 1, 5)


def test_attention_mask_neighbourhoods():
    full = ar.attention_mask(3, 4, "full", include_self=False)
    assert torch.equal(full, torch.ones(12, 12, dtype=torch.bool).tril(-1))
    local1d = ar.attention_mask(3, 4, "local1d", 2, include_self=False)
    assert local1d.sum(1).tolist() == [0, 1] + [2] * 10
    local2d = ar.attention_mask(4, 5, "local2d", 1, include_self=True)
    row, col = 2, 2
    allowed = local2d[row * 5 + col].reshape(4, 5)
    expected = torch.zeros(4, 5, dtype=torch.bool)
    expected[1, 1:4] = True
    expected[2, 1:3] = True
    assert torch.equal(allowed, expected)


@pytest.mark.parametrize("call,message", [
    (lambda: ar.attention_mask(0, 4), "height"),
    (lambda: ar.attention_mask(3, 4, "global"), "kind"),
    (lambda: ar.attention_mask(3, 4, "local1d"), "size"),
    (lambda: ar.attention_mask(3, 4, "local2d", 0), "size"),
    (lambda: ar.CausalSelfAttention2d(0), "channels"),
    (lambda: ar.CausalSelfAttention2d(4, "local1d"), "size"),
    (lambda: ar.CausalSelfAttention2d(4)(torch.zeros(1, 3, 2, 2)), "x must have shape"),
])
def test_attention_bad_inputs(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ dilated causal convolutions (issue 22 §4)
class _RasterStack(torch.nn.Module):
    """Kernel-2 causal convolutions along the raster order with the given dilations (and an optional shift)."""

    in_channels = 1

    def __init__(self, dilations, shift=True, channels=3):
        super().__init__()
        self.dilations, self.shift = list(dilations), shift
        self.convs = torch.nn.ModuleList(torch.nn.Conv1d(1 if l == 0 else channels, channels, 2, dilation=d)
                                         for l, d in enumerate(self.dilations))
        self.head = torch.nn.Conv1d(channels, 1, 1)

    def forward(self, x):
        b, c, h, w = x.shape
        s = x.flatten(2)
        if self.shift:
            s = F.pad(s, (1, 0))[:, :, :-1]
        for d, conv in zip(self.dilations, self.convs):
            s = torch.tanh(conv(F.pad(s, (d, 0))))
        return self.head(s).reshape(b, 1, h, w)


def _dilated_check():
    return load_check(CH2, "dilated-field", **_globals(), check_causal=_check_causal())["check_dilated_fields"]


def test_dilated_field_check_passes_doubling_dilations():
    torch.manual_seed(0)
    _dilated_check()(lambda L, dilated: _RasterStack([2 ** l if dilated else 1 for l in range(L)]), max_layers=5)


def test_dilated_field_check_fails_dilations_that_do_not_double():
    torch.manual_seed(0)
    assert fails(_dilated_check(), lambda L, dilated: _RasterStack([l + 1 if dilated else 1 for l in range(L)]), max_layers=5)


def test_dilated_field_check_fails_a_stack_without_the_shift():
    torch.manual_seed(0)
    assert fails(_dilated_check(), lambda L, dilated: _RasterStack([2 ** l if dilated else 1 for l in range(L)], shift=False),
                 max_layers=5)


# ------------------------------------------------------------------ MADE: masking a dense layer (issue 22 §4)
def _made_check():
    return load_check(CH2, "made-masks", **_globals(), check_causal=_check_causal())["check_made"]


def _shuffled(d):
    return torch.randperm(d, generator=torch.Generator().manual_seed(d + 1))


@pytest.mark.parametrize("seed", [None, 0])
def test_made_check_passes_the_library_made_in_a_shuffled_order(seed):
    torch.manual_seed(0)
    _made_check()(lambda d: ar.MADE(d, (2 * d, d), order=_shuffled(d), seed=seed), 3, 6)


def _made_with_output_mask(d, strict):
    model = ar.MADE(d, (2 * d, 2 * d), order=_shuffled(d))
    degrees = ar.made_degrees(d, model.hidden_sizes, model.order)
    out = degrees[0][:, None] > degrees[-1][None, :] if strict else degrees[0][:, None] >= degrees[-1][None, :]
    with torch.no_grad():
        model.layers[-1].mask.copy_(out)
    return model


def test_made_check_passes_the_output_mask_written_out_with_strict_gt():
    torch.manual_seed(0)
    _made_check()(lambda d: _made_with_output_mask(d, strict=True), 3, 6)


def test_made_check_fails_an_output_mask_built_with_geq():
    torch.manual_seed(0)
    assert fails(_made_check(), lambda d: _made_with_output_mask(d, strict=False), 3, 6)


def test_made_check_fails_a_made_whose_masks_ignore_its_order():
    def make(d):
        model = ar.MADE(d, (2 * d, 2 * d), order=_shuffled(d))
        with torch.no_grad():                                # the masks of the identity order
            for layer, mask in zip(model.layers, ar.made_masks(ar.made_degrees(d, model.hidden_sizes))):
                layer.mask.copy_(mask)
        return model

    torch.manual_seed(0)
    assert fails(_made_check(), make, 3, 6)
