"""The kernel-free player of course_lib.widgets: one labelled control per parameter, a frame cap."""

import base64
import io
import json
import re

import matplotlib
import numpy as np

matplotlib.use("Agg")

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks, widgets


def _draw(fig, **values):
    ax = fig.add_subplot(1, 1, 1)
    ax.set_title(" ".join(f"{k}={v}" for k, v in values.items()))
    ax.plot([0, 1], [0, sum(hash(str(v)) % 7 for v in values.values())])


def _data(html: str) -> dict:
    block = re.search(r'<script type="application/json" class="cl-player-data">(.*?)</script>', html, re.S)
    return json.loads(block.group(1))


def test_static_player_has_one_labelled_control_per_parameter():
    calls = []

    def draw(fig, a, b):
        calls.append((a, b))
        _draw(fig, a=a, b=b)

    html = widgets.player(draw, {"a": [1, 2, 3], "b": ["x", "y"]}, static=True, figsize=(3, 2), dpi=40).data
    # itertools.product order: the last control varies fastest, as the JS index assumes
    assert calls == [(1, "x"), (1, "y"), (2, "x"), (2, "y"), (3, "x"), (3, "y")]
    assert html.count('type="range"') == 2
    assert re.search(r'<span class="cl-player-name">a</span><input[^>]*max="2"', html)
    assert re.search(r'<span class="cl-player-name">b</span><input[^>]*max="1"', html)
    data = _data(html)
    assert data["sizes"] == [3, 2] and data["names"] == ["a", "b"] and data["values"][1] == ["x", "y"]
    assert len(data["images"]) == 6 and all(u.startswith("data:image/png;base64,") for u in data["images"])
    png = base64.b64decode(data["images"][0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(set(data["images"])) == 6, "different control values must give different frames here"
    assert 'alt="' in html and "max-width:100%" in html


def test_static_player_is_deterministic_and_script_safe():
    a = widgets.player(_draw, {"t": [0.5, 1.0]}, static=True, figsize=(2, 2), dpi=30).data
    b = widgets.player(_draw, {"t": [0.5, 1.0]}, static=True, figsize=(2, 2), dpi=30).data
    assert a == b, "same frames, same page (a stable id keeps rebuilt pages identical)"
    tricky = widgets.player(_draw, {"label": ["</script><b>", "ok"]}, static=True, figsize=(2, 2), dpi=30).data
    assert "</script><b>" not in tricky.split('class="cl-player-data">', 1)[1].split("</script>", 1)[0]
    assert _data(tricky)["values"][0][0] == "</script><b>"


@settings(max_examples=8, deadline=None)
@given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_frame_count_is_the_product_of_control_sizes(sizes):
    controls = {f"c{i}": list(range(n)) for i, n in enumerate(sizes)}
    n = 1
    for s in sizes:
        n *= s
    html = widgets.player(_draw, controls, static=True, figsize=(1, 1), dpi=20, max_frames=64).data
    assert len(_data(html)["images"]) == n
    assert html.count('type="range"') == len(sizes)
    assert html.count(" disabled") == sum(s == 1 for s in sizes)


def test_frame_cap_refuses_with_the_page_size():
    drawn = []

    def draw(fig, a, b):
        drawn.append((a, b))
        _draw(fig, a=a, b=b)

    with pytest.raises(ValueError, match=r"max_frames.*12 frames \(4 a x 3 b\).*max_frames=10") as err:
        widgets.player(draw, {"a": [1, 2, 3, 4], "b": [5, 6, 7]}, static=True, figsize=(2, 2), dpi=30, max_frames=10)
    assert len(drawn) == 1, "the cap is checked after one frame, before drawing the rest"
    per_frame, unit = re.search(r"at (\d+) (kB|MB) per frame", str(err.value)).groups()
    total, total_unit = re.search(r"about ([\d.]+) (kB|MB) of images", str(err.value)).groups()
    scale = {"kB": 1e3, "MB": 1e6}
    # 12 frames, base64 (4/3): the stated page size follows from the frame size, which the
    # message rounds to a whole kB (so the true frame size is within half a unit of it)
    low, high = ((float(per_frame) + d) * scale[unit] for d in (-0.5, 0.5))
    assert 12 * 4 / 3 * low * 0.98 <= float(total) * scale[total_unit] <= 12 * 4 / 3 * high * 1.02
    # exactly at the cap is allowed
    widgets.player(_draw, {"a": [1, 2, 3, 4], "b": [5, 6, 7]}, static=True, figsize=(1, 1), dpi=20, max_frames=12)
    assert widgets.MAX_FRAMES == 48


def test_live_player_keeps_one_slider_per_control():
    box = widgets.player(_draw, {"a": [1, 2], "b": [3, 4, 5]}, static=False, figsize=(2, 2))
    sliders = box.children[:-1]
    assert [s.description for s in sliders] == ["a", "b"]
    assert list(sliders[1].options) == [3, 4, 5]


def test_static_switch_follows_the_environment(monkeypatch):
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "1")
    assert widgets.is_static()
    assert "cl-player" in widgets.player(_draw, {"a": [1]}, figsize=(1, 1), dpi=20).data
    monkeypatch.setenv("COURSE_STATIC_WIDGETS", "0")
    assert not widgets.is_static()


@pytest.mark.parametrize(
    "kwargs, exc, name",
    [
        (dict(draw=None), TypeError, "draw"),
        (dict(controls=[("a", [1])]), TypeError, "controls"),
        (dict(controls={}), ValueError, "controls"),
        (dict(controls={"a": []}), ValueError, "controls"),
        (dict(controls={"a": 3}), TypeError, "controls"),
        (dict(controls={"a": "abc"}), TypeError, "controls"),
        (dict(controls={3: [1]}), TypeError, "controls"),
        (dict(figsize=(2,)), TypeError, "figsize"),
        (dict(figsize=(2, -1)), ValueError, "figsize"),
        (dict(interval_ms=0), ValueError, "interval_ms"),
        (dict(dpi=2.5), TypeError, "dpi"),
        (dict(max_frames=0), ValueError, "max_frames"),
    ],
)
def test_player_bad_input(kwargs, exc, name):
    args = dict(draw=_draw, controls={"a": [1, 2]}, static=True, figsize=(1, 1), dpi=20)
    args.update(kwargs)
    draw, controls = args.pop("draw"), args.pop("controls")
    with pytest.raises(exc, match=name):
        widgets.player(draw, controls, **args)
    if exc is TypeError:
        with pytest.raises(checks.ArgumentTypeError):
            widgets.player(draw, controls, **args)


def test_source_is_a_fenced_python_block_of_the_real_source():
    import inspect

    md = widgets.source(widgets.player).data
    assert md.startswith("```python\n")
    block = md.split("\n```", 1)[0] + "\n```"
    assert widgets.fold_docstrings(inspect.getsource(widgets.player).rstrip()) in block
    # the code is all there, only the docstring is folded to its summary line
    assert "controls = _validate(draw, controls, figsize, interval_ms, dpi, max_frames)" in block
    assert '"""Show ``draw(fig, **values)`` with one labelled control per entry of ``controls``. [...]"""' in block
    assert "Raises:" not in block and len(block.splitlines()) < len(inspect.getsource(widgets.player).splitlines())

    def tricky():
        return "```"  # a fence inside the source must not end the block

    md = widgets.source(tricky).data
    assert md.startswith("````python\n") and "\n````" in md


def test_source_links_the_full_text_in_the_repository(monkeypatch):
    import inspect

    lines, first = inspect.getsourcelines(widgets.player)
    monkeypatch.setenv("COURSE_SOURCE_URL", "https://example.org/fork/blob/dev/")
    md = widgets.source(widgets.player).data
    link = md.rsplit("\n\n", 1)[1]
    assert link.startswith("Full source of `player` with its docstring: [course_lib/widgets.py, lines ")
    assert f"(https://example.org/fork/blob/dev/course_lib/widgets.py#L{first}-L{first + len(lines) - 1})" in link
    monkeypatch.delenv("COURSE_SOURCE_URL")
    assert widgets.source_url().endswith("/blob/main") and widgets.source_url().startswith("https://")


def test_fold_docstrings_keeps_code_and_one_line_docstrings():
    src = '''class A:
    r"""Summary of A.

    More text.
    """

    def f(self):
        """One line."""
        return 1

    def g(self):
        """Summary g.

        Args: x
        """
        x = """not a docstring
        two lines"""
        return x'''
    out = widgets.fold_docstrings(src)
    assert out.splitlines() == [
        "class A:",
        '    r"""Summary of A. [...]"""',
        "",
        "    def f(self):",
        '        """One line."""',
        "        return 1",
        "",
        "    def g(self):",
        '        """Summary g. [...]"""',
        '        x = """not a docstring',
        '        two lines"""',
        "        return x",
    ]
    indented = "\n".join("    " + ln if ln else ln for ln in src.splitlines())
    assert widgets.fold_docstrings(indented) == "\n".join("    " + ln if ln else ln for ln in out.splitlines())
    assert widgets.fold_docstrings("def broken(:\n") == "def broken(:\n"


def test_player_alt_text_says_what_each_frame_shows():
    def draw(fig, step, seed):
        ax = fig.add_subplot(1, 2, 1)
        ax.plot([0, 1], [0, step])
        ax.set_title(f"return after {step} steps")
        ax.set_xlabel("episode")
        ax.set_ylabel(r"$G_t$")
        fig.add_subplot(1, 2, 2).imshow([[seed, 1]])

    html = widgets.player(draw, {"step": [1, 2], "seed": [0, 1]}, static=True, figsize=(2, 2), dpi=20).data
    alt = re.search(r'<img class="cl-player-image"[^>]* alt="([^"]*)"', html).group(1)
    assert alt == ("Player: draw, controlled by step, seed. return after 1 steps, 1 curve, G_t against episode; "
                   "image. step = 1, seed = 0")
    frames = _data(html)["frames"]
    assert len(frames) == 4 and frames[2].startswith("return after 2 steps")
    given = widgets.player(draw, {"step": [1], "seed": [0]}, static=True, figsize=(1, 1), dpi=20,
                           alt="Returns of a run").data
    assert 'alt="Returns of a run. return after 1 steps' in given


@pytest.mark.parametrize("obj", [len, 3, "text"])
def test_source_bad_input(obj):
    with pytest.raises(TypeError, match="obj"):
        widgets.source(obj)


# --- the house figure style: text readable on a phone -------------------------------------------


def test_house_style_figure_is_readable_on_a_phone():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        widgets.house_style()
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1], label="a line")
        ax.set_xlabel("x (units)")
        ax.legend()
        px = widgets.check_readable(fig)
        plt.close(fig)
    # 10 pt text in a 6.2-inch figure shrunk to 368 px: 10/72 * 368/6.2 = 8.24 px.
    assert px == pytest.approx(10 / 72 * 368 / 6.2, rel=1e-6)


def test_check_readable_refuses_a_wide_figure_and_names_the_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context():
        widgets.house_style()
        fig, ax = plt.subplots(figsize=(11, 3))
        ax.set_title("wide panel")
        ax.tick_params(labelsize=8)
        with pytest.raises(ValueError, match="inches wide"):
            widgets.check_readable(fig)
        px, text = widgets.smallest_text_px(fig)
        plt.close(fig)
    # tick labels at 8 pt in an 11-inch figure: 8/72 * 368/11 = 3.7 px, the smallest text.
    assert px == pytest.approx(8 / 72 * 368 / 11, rel=1e-6)
    assert text != "wide panel"


def test_smallest_text_px_of_a_narrow_figure_is_its_natural_size():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(3, 2), dpi=100)
    fig.text(0.5, 0.5, "hello", fontsize=12)
    px, text = widgets.smallest_text_px(fig)
    plt.close(fig)
    assert (px, text) == (pytest.approx(12 * 100 / 72), "hello")


@pytest.mark.parametrize("bad, exc", [("fig", TypeError), (None, TypeError)])
def test_smallest_text_px_bad_inputs(bad, exc):
    with pytest.raises(exc, match="fig"):
        widgets.smallest_text_px(bad)


def test_glue_without_myst_nb_shows_the_value_or_nothing(monkeypatch, capsys):
    """Colab and the autograder have no myst-nb: glue must not fail there (it shows the value, or nothing)."""
    import builtins
    import sys

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name == "myst_nb" or name.startswith("myst_nb."):
            raise ImportError("no myst_nb here")
        return real_import(name, *args, **kwargs)

    shown = []
    monkeypatch.setitem(sys.modules, "myst_nb", None)
    monkeypatch.setattr(builtins, "__import__", no_myst)
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda v: shown.append(v))
    assert widgets.glue("x", 3.5, display=False) is None
    assert shown == []
    widgets.glue("x", 3.5)
    assert shown == [3.5]
    with pytest.raises(TypeError, match="name"):
        widgets.glue("", 1)


def test_player_frames_use_a_small_palette():
    """Frames are palette PNGs of at most FRAME_COLORS colours (the page budget of a 49-frame player)."""
    import io

    from PIL import Image

    def draw(fig, k):
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(np.linspace(0, 1, 256 * 8).reshape(32, 64) * k, cmap="viridis")   # a smooth ramp: 2048 levels
        ax.set_title(f"k = {k}")

    html = widgets.player(draw, {"k": [1.0]}, static=True, figsize=(3, 2), dpi=60).data
    image = Image.open(io.BytesIO(base64.b64decode(_data(html)["images"][0].split(",", 1)[1])))
    assert image.mode == "P", f"frame is {image.mode}, not a palette image"
    assert len(image.getcolors(maxcolors=4096)) <= widgets.FRAME_COLORS


def test_frames_read_from_the_canvas_match_savefig():
    """The fast path (pixels straight from the Agg canvas) gives the frame savefig would give."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image

    fig = plt.figure(figsize=(3, 2), dpi=50)
    try:
        ax = fig.add_subplot(1, 1, 1)
        ax.imshow(np.linspace(0, 1, 600).reshape(20, 30), cmap="viridis")
        ax.plot([0, 29], [0, 19], "r-")
        ax.set_title("t = 0.5")
        fast = Image.open(io.BytesIO(widgets._frame_png(fig, 50))).convert("RGB")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=50)
        buf.seek(0)
        reference = Image.open(buf).convert("RGB").quantize(colors=widgets.FRAME_COLORS,
                                                            method=Image.Quantize.MEDIANCUT).convert("RGB")
        slow = Image.open(io.BytesIO(widgets._frame_png(fig, 40))).convert("RGB")   # another dpi: the savefig path
    finally:
        plt.close(fig)
    assert fast.size == reference.size == (150, 100)
    assert np.array_equal(np.asarray(fast), np.asarray(reference))
    assert slow.size == (120, 80)


def test_show_compact_displays_a_palette_png_smaller_than_matplotlibs(monkeypatch):
    """A figure of noisy grey pixels: the shown PNG has the figure's size at dpi, at most `colors`
    colours, and fewer bytes than matplotlib's own PNG; the figure is closed; bad arguments are named."""
    import matplotlib.pyplot as plt
    from PIL import Image

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(4, 2))
    ax.imshow(rng.random((28, 56)), cmap="gray_r")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    image = widgets.show_compact(fig, dpi=72, colors=32)
    assert shown == [image] and not plt.fignum_exists(fig.number)
    png = Image.open(io.BytesIO(image.data))
    assert png.size == (288, 144) and png.mode == "P" and len(png.getcolors()) <= 32
    assert len(image.data) < 0.7 * len(buf.getvalue())
    for bad in ({"dpi": 5}, {"colors": 1}, {"colors": 300}):
        fig, _ = plt.subplots()
        with pytest.raises(ValueError, match=next(iter(bad))):
            widgets.show_compact(fig, **bad)
        plt.close(fig)
