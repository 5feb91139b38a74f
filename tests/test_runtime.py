"""Profile, device, seeding, grading fallback, latent interpolation and widgets."""

import random

import numpy as np
import pytest
import torch

import course_lib
from course_lib.grading import outputs_match, use_or_fallback
from course_lib.latent import interpolate


def test_profile_env_wins(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "full")
    assert course_lib.profile() == "full"
    monkeypatch.setenv("COURSE_PROFILE", "Small")
    assert course_lib.profile() == "small"


def test_profile_defaults_to_cuda_availability(monkeypatch):
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert course_lib.profile() == "full"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert course_lib.profile() == "small"


def test_bad_profile_raises(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "huge")
    with pytest.raises(ValueError, match="COURSE_PROFILE"):
        course_lib.profile()


def test_by_profile_picks_the_entry(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "small")
    assert course_lib.by_profile({"small": 1, "full": 2}) == 1
    with pytest.raises(ValueError, match="full"):
        course_lib.by_profile({"small": 1}, "full")


def test_get_device_order(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert course_lib.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert course_lib.get_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert course_lib.get_device().type == "cpu"


def test_seed_everything_repeats_all_generators():
    course_lib.seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    course_lib.seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == b
    with pytest.raises(ValueError, match="seed"):
        course_lib.seed_everything(-1)


def test_use_or_fallback(capsys):
    ref = lambda x: (x * 2, x.sum())
    good = lambda x: (2 * x, x.sum())
    stub = lambda x: None
    wrong = lambda x: (x, x.sum())
    probe = (torch.randn(3),)
    assert use_or_fallback(good, ref, probe, "E") is good
    assert "using your implementation" in capsys.readouterr().out
    for bad, why in ((stub, "returned None"), (wrong, "differs"), (lambda x: 1 / 0, "ZeroDivisionError")):
        assert use_or_fallback(bad, ref, probe, "E") is ref
        out = capsys.readouterr().out
        assert "not done" in out and why in out and "reference implementation" in out


def test_outputs_match_shapes_and_none():
    assert outputs_match(torch.ones(3), np.ones(3))
    assert not outputs_match(torch.ones(3), torch.ones(1, 3))
    assert not outputs_match(None, None)


@pytest.mark.parametrize("method", ["linear", "spherical"])
def test_interpolate_endpoints(method):
    z0, z1 = torch.randn(10), torch.randn(10)
    path = interpolate(z0, z1, 5, method)
    assert path.shape == (5, 10)
    assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)


def test_spherical_interpolation_keeps_the_norm():
    z0 = torch.randn(500)
    z1 = torch.randn(500)
    z1 = z1 / z1.norm() * z0.norm()
    sl = interpolate(z0, z1, 11, "spherical").norm(dim=1)
    li = interpolate(z0, z1, 11, "linear").norm(dim=1)
    assert torch.allclose(sl, sl[0].expand(11), rtol=1e-4)
    assert li[5] < 0.8 * li[0]  # the straight line dips towards the origin


def test_interpolate_bad_input():
    with pytest.raises(ValueError, match="steps"):
        interpolate(torch.zeros(3), torch.ones(3), 1)
    with pytest.raises(ValueError, match="method"):
        interpolate(torch.zeros(3), torch.ones(3), 3, "cubic")


def test_player_static_and_live(monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from course_lib import widgets

    calls = []

    def draw(fig, a, b):
        calls.append((a, b))
        fig.add_subplot(1, 1, 1).plot([a, b])

    html = widgets.player(draw, {"a": [1, 2], "b": [3]}, static=True)
    assert "<script" in html.data and set(calls) == {(1, 3), (2, 3)}
    box = widgets.player(draw, {"a": [1, 2], "b": [3]}, static=False)
    assert len(box.children) == 3  # two sliders and the output
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "1")
    assert widgets.is_static()
    with pytest.raises(ValueError, match="controls"):
        widgets.player(draw, {"a": []})


def test_set_num_threads_defaults_to_one_thread_in_the_small_profile(monkeypatch):
    """Issue 20: without COURSE_NUM_THREADS the small (CPU) profile runs on one thread;
    COURSE_NUM_THREADS overrides it; the full profile keeps torch's setting."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.delenv("COURSE_NUM_THREADS", raising=False)
        monkeypatch.setenv("COURSE_PROFILE", "small")
        assert course_lib.set_num_threads() == 1
        monkeypatch.setenv("COURSE_NUM_THREADS", "2")
        assert course_lib.set_num_threads() == 2
        monkeypatch.delenv("COURSE_NUM_THREADS")
        monkeypatch.setenv("COURSE_PROFILE", "full")
        torch.set_num_threads(2)
        assert course_lib.set_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_set_num_threads_also_limits_numpys_blas():
    """NumPy's BLAS (and other loaded native pools) get the same count as torch: a scikit-learn fit
    in a chapter cell must not oversubscribe a busy 2-core machine."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    np.linalg.eigh(np.eye(3))                                     # make sure NumPy's BLAS is loaded
    before = torch.get_num_threads()
    with threadpool_limits(limits=None):                          # restores every pool afterwards
        try:
            course_lib.set_num_threads(1)
            pools = threadpool_info()
            assert pools, "no native thread pool found"
            assert all(p["num_threads"] == 1 for p in pools), [(p["internal_api"], p["num_threads"]) for p in pools]
        finally:
            torch.set_num_threads(before)
