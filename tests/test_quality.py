"""course_lib.quality: the MNIST Inception score and confident fraction, the shipped classifier, bad input."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from course_lib import data, pretrained, quality

torch.set_num_threads(1)
SHARED_MNIST = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
HAVE_OFFICIAL_TEST = os.path.exists(os.path.join(SHARED_MNIST, "t10k-images-idx3-ubyte.gz"))


@pytest.fixture(scope="module")
def digits():
    """The 1,000 embedded test digits as grey images in [0, 1] (N, 28, 28), and their labels."""
    images, labels = data.load_mnist("test", source="embedded")
    return torch.from_numpy(images).float() / 255.0, torch.from_numpy(labels)


# ----------------------------------------------------------------------------
# The formula, against hand-computed values
# ----------------------------------------------------------------------------
def hand_inception_score(p: np.ndarray) -> float:
    """exp(mean_x sum_y p(y|x) log(p(y|x) / p(y))), written out with loops (0 log 0 = 0)."""
    n, k = p.shape
    marginal = [sum(p[i, y] for i in range(n)) / n for y in range(k)]
    total = 0.0
    for i in range(n):
        for y in range(k):
            if p[i, y] > 0:
                total += p[i, y] * math.log(p[i, y] / marginal[y])
    return math.exp(total / n)


P = np.array([[0.9, 0.1], [0.5, 0.5]])
#: by hand: p(y) = (0.7, 0.3); KL_1 = 0.9 ln(9/7) + 0.1 ln(1/3) = 0.116321, KL_2 = 0.5 ln(5/7) + 0.5 ln(5/3) = 0.087177, IS = exp(0.101749)
HAND = math.exp((0.9 * math.log(0.9 / 0.7) + 0.1 * math.log(0.1 / 0.3) + 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)) / 2)


def wrong_swapped(p: np.ndarray) -> float:
    """exp(mean_x KL(p(y) || p(y|x))): the KL the wrong way round."""
    m = p.mean(0)
    return math.exp(float(np.mean([(m * np.log(m / row)).sum() for row in p])))


def wrong_entropy(p: np.ndarray) -> float:
    """exp(mean_x H(p(y|x))): mean per-sample entropy, no marginal."""
    return math.exp(float(np.mean([-(row * np.log(row)).sum() for row in p])))


def wrong_marginal_entropy(p: np.ndarray) -> float:
    """exp(H(p(y))): diversity only, recognisability ignored."""
    m = p.mean(0)
    return math.exp(float(-(m * np.log(m)).sum()))


def test_inception_score_matches_the_hand_computed_value():
    assert HAND == pytest.approx(1.107106, abs=1e-6)
    assert hand_inception_score(P) == pytest.approx(HAND, abs=1e-12)
    assert quality.inception_score_from_probs(torch.tensor(P)) == pytest.approx(HAND, abs=1e-12)


@pytest.mark.parametrize("wrong", [wrong_swapped, wrong_entropy, wrong_marginal_entropy])
def test_the_hand_check_catches_a_wrong_formula(wrong):
    """The check above (|IS - HAND| < 1e-6) fails for each wrong formula: it is falsifiable."""
    assert abs(wrong(P) - HAND) > 1e-2


@pytest.mark.parametrize("seed", range(5))
def test_inception_score_matches_the_loop_formula_on_random_probabilities(seed):
    g = torch.Generator().manual_seed(seed)
    p = torch.softmax(3 * torch.randn(7, 10, generator=g, dtype=torch.float64), 1)
    p[0] = torch.nn.functional.one_hot(torch.tensor(3), 10).double()   # exact zeros: 0 log 0 = 0
    assert quality.inception_score_from_probs(p) == pytest.approx(hand_inception_score(p.numpy()), rel=1e-12)


def test_inception_score_extremes_and_confident_fraction():
    eye = torch.eye(10, dtype=torch.float64)
    assert quality.inception_score_from_probs(eye) == pytest.approx(10.0)             # confident, uniform classes
    assert quality.inception_score_from_probs(eye[[3] * 10]) == pytest.approx(1.0)    # confident, one class
    assert quality.inception_score_from_probs(torch.full((5, 10), 0.1)) == pytest.approx(1.0)   # undecided
    p = torch.tensor([[0.95, 0.05], [0.9, 0.1], [0.89, 0.11], [0.5, 0.5]])
    assert quality.confident_fraction_from_probs(p) == pytest.approx(0.5)             # >= 0.9 counts
    assert quality.confident_fraction_from_probs(p, threshold=0.5) == pytest.approx(1.0)


@pytest.mark.parametrize(
    "probs, match",
    [
        (np.eye(3), "must be a torch.Tensor"),
        (torch.eye(3)[0], r"shape \(N, K\)"),
        (torch.zeros(0, 10), r"shape \(N, K\)"),
        (torch.tensor([[0.5, 0.6]]), "sum to 1"),
        (torch.tensor([[1.5, -0.5]]), "sum to 1"),
        (torch.tensor([[float("nan"), 1.0]]), "NaN"),
        (torch.eye(3, dtype=torch.long), "floating point"),
    ],
)
def test_probs_bad_input(probs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        quality.inception_score_from_probs(probs)


def test_confident_fraction_bad_threshold():
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="threshold"):
            quality.confident_fraction_from_probs(torch.eye(3), threshold=bad)


# ----------------------------------------------------------------------------
# The shipped classifier: sanity of the measure on real and degenerate images
# ----------------------------------------------------------------------------
def test_shipped_classifier_file():
    assert os.path.getsize(quality.CLASSIFIER_PATH) <= 2_000_000
    assert pretrained.file_sha256(quality.CLASSIFIER_PATH) == quality.CLASSIFIER_SHA256
    model = quality.load_classifier()
    assert isinstance(model, quality.MNISTClassifier) and not model.training
    assert quality.load_classifier() is model                               # cached
    with pytest.raises(pretrained.PretrainedFileError, match="expected 0{64}"):
        quality.load_classifier(quality.CLASSIFIER_PATH, sha256="0" * 64)


def test_real_digits_score_high_and_are_confident(digits):
    x, y = digits
    q = quality.sample_quality(x, labels=y)
    assert q["inception_score"] >= 9.0
    assert q["confident_fraction"] >= 0.9
    assert q["class_agreement"] >= 0.97
    binary = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) < x).float()
    qb = quality.sample_quality(binary, labels=y)                        # binary samples read alike
    assert qb["inception_score"] >= 9.0 and qb["class_agreement"] >= 0.95


@pytest.mark.skipif(not HAVE_OFFICIAL_TEST, reason="the offline official MNIST files are not here")
def test_accuracy_on_the_official_test_digits():
    images, labels = data.load_mnist("test", source="mnist", root=SHARED_MNIST, download=False)
    x = torch.from_numpy(images).float() / 255.0
    assert quality.accuracy(quality.load_classifier(), x, labels) >= 0.98
    q = quality.sample_quality(x)
    assert q["inception_score"] == pytest.approx(quality.REFERENCE["grey"]["inception_score"], abs=1e-3)
    assert q["confident_fraction"] == pytest.approx(quality.REFERENCE["grey"]["confident_fraction"], abs=1e-3)


def test_noise_and_constant_images_score_near_one():
    g = torch.Generator().manual_seed(0)
    noise = quality.sample_quality(torch.rand(1000, 784, generator=g))
    assert noise["inception_score"] < 2.0 and noise["confident_fraction"] < 0.2
    binary_noise = quality.sample_quality((torch.rand(1000, 784, generator=g) < 0.5).float())
    assert binary_noise["inception_score"] < 2.0
    for value in (0.0, 0.3, 1.0):
        assert quality.inception_score(torch.full((50, 28, 28), value)) == pytest.approx(1.0, abs=1e-9)


def test_one_class_scores_near_one_while_confident(digits):
    x, y = digits
    threes = x[y == 3]
    q = quality.sample_quality(threes)
    assert q["inception_score"] < 1.5
    assert q["confident_fraction"] >= 0.85
    assert q["class_counts"][3] >= 0.95 * len(threes)


def test_two_classes_score_near_two(digits):
    x, y = digits
    q = quality.sample_quality(x[(y == 0) | (y == 1)])
    assert 1.7 < q["inception_score"] < 2.05


def test_invariant_to_permuting_the_batch_and_to_the_input_layout(digits):
    x, _ = digits
    x = x[:300]
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(1))
    base = quality.inception_score(x)
    assert quality.inception_score(x[perm]) == pytest.approx(base, rel=1e-9)
    assert quality.confident_fraction(x[perm]) == quality.confident_fraction(x)
    for layout in (x[:, None], x.reshape(-1, 784), x.numpy(), x.double(), x > 0.5):
        expected = quality.inception_score(x > 0.5) if layout.dtype in (torch.bool,) else base
        assert quality.inception_score(layout) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.rand(5, 3, 28, 28), r"images must have shape \(N, 1, 28, 28\), \(N, 28, 28\) or \(N, 784\)"),
        (torch.rand(5, 27, 27), "images must have shape"),
        (torch.rand(5, 783), "images must have shape"),
        (torch.rand(784), "images must have shape"),
        (torch.rand(0, 784), "at least one image"),
        (torch.randint(0, 256, (5, 784), dtype=torch.uint8), "divide them by 255"),
        (torch.rand(5, 784) * 255, r"values in \[0, 1\].*divide them by 255"),
        (torch.rand(5, 784) - 0.5, r"values in \[0, 1\]"),
        (torch.full((5, 784), float("nan")), "NaN"),
        ([[0.0] * 784], "must be a torch.Tensor or numpy array"),
    ],
)
def test_images_bad_input(images, match):
    for fn in (quality.inception_score, quality.confident_fraction, quality.sample_quality):
        with pytest.raises((TypeError, ValueError), match=match):
            fn(images)


def test_labels_and_classifier_bad_input(digits):
    x, y = digits
    with pytest.raises(ValueError, match="labels must be 10 integer classes"):
        quality.sample_quality(x[:10], labels=y[:9])
    with pytest.raises(ValueError, match="labels must be 10 integer classes"):
        quality.sample_quality(x[:10], labels=y[:10].float())
    with pytest.raises(ValueError, match=r"labels must be classes in 0..9"):
        quality.sample_quality(x[:10], labels=y[:10] + 5)
    with pytest.raises(TypeError, match="classifier must be an nn.Module"):
        quality.inception_score(x[:10], classifier="cnn")
    with pytest.raises(ValueError, match=r"classifier must give \(N, 10\) logits"):
        quality.inception_score(x[:10], classifier=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3)))


def test_format_quality_line(digits):
    x, y = digits
    line = quality.format_quality(quality.sample_quality(x[:100], labels=y[:100]))
    assert line.startswith("inception_score=") and " confident_fraction=" in line and " class_agreement=" in line
    assert line.endswith(" n=100")


def test_classifier_save_load_round_trip_and_training_bad_input(tmp_path):
    torch.manual_seed(0)
    model = quality.MNISTClassifier(channels=(4, 8), hidden=16).eval()
    path = tmp_path / "c.pt"
    sha = quality.save_classifier(model, path, note="test")
    back = quality.load_classifier(path, sha256=sha)
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(back(x), model(x))
    with pytest.raises(TypeError, match="model must be an MNISTClassifier"):
        quality.save_classifier(torch.nn.Linear(2, 2), path)
    with pytest.raises(ValueError, match="channels"):
        quality.MNISTClassifier(channels=(4,))
    with pytest.raises(ValueError, match="dropout"):
        quality.MNISTClassifier(dropout=1.0)
    images = np.zeros((4, 28, 28), dtype=np.uint8)
    with pytest.raises(ValueError, match="labels must be 4 integer classes"):
        quality.train_classifier(model, images, [0, 1, 2])
    with pytest.raises(ValueError, match="images must"):
        quality.train_classifier(model, images.astype(np.float32), [0, 1, 2, 3])
    with pytest.raises(ValueError, match="checkpoint_path must be None"):
        quality.ClassifierConfig(checkpoint_path=str(tmp_path / "ck.pt"))


def test_training_learns_a_trivial_task():
    """Two 'classes' told apart by which half of the image is lit: a few steps are enough."""
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(200, 28, 28, dtype=torch.uint8)
    labels = torch.arange(200) % 2
    images[labels == 0, :14] = 255
    images[labels == 1, 14:] = 255
    images = (images.float() * (torch.rand(images.shape, generator=g) < 0.7)).to(torch.uint8)
    torch.manual_seed(0)
    model = quality.MNISTClassifier(channels=(4, 8), hidden=16)
    model, hist = quality.train_classifier(model, images, labels, quality.ClassifierConfig(epochs=3, batch_size=20, progress=False))
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert quality.accuracy(model, images.float() / 255.0, labels) >= 0.95
