"""Widgets that are live in Jupyter/Colab and still work in the static book.

The pattern every chapter follows:

* compute everything the widget shows first (plain tensors and arrays);
* write a ``draw(fig, **values)`` function that draws one view on an empty
  matplotlib figure;
* call :func:`player` with one control per parameter and its values.

In a live kernel (Jupyter, Colab) :func:`player` shows one ipywidgets slider
per control that redraws the figure. When the book is built
(``COURSE_STATIC_WIDGETS=1``, set by ``make book``) it draws every
combination of control values once, stores each as a compact PNG data URI,
and writes a small kernel-free HTML/JavaScript player: one labelled range
input per control (showing the control's name and current value), a play
button, and an image that scales to the reader's screen. The number of frames
is the product of the control sizes; a player with more than ``max_frames``
frames is refused with a message that says how big the page would be.
"""

from __future__ import annotations

import base64
import hashlib
import html as html_lib
import io
import itertools
import json
import math
import os
import re

import numpy as np
from typing import Callable, Sequence

from course_lib import checks

__all__ = ["is_static", "player", "source", "fold_docstrings", "source_url", "MAX_FRAMES", "house_style",
           "smallest_text_px", "check_readable", "PHONE_COLUMN_PX", "MIN_TEXT_PX", "MAX_FIGURE_WIDTH_IN", "glue"]

#: Default cap on the number of frames of a kernel-free player. With frames of
#: 20 to 40 kB (a 6 x 3 inch figure at 80 dpi) this keeps one player under
#: about 2 MB, the page budget of the book.
MAX_FRAMES = 48

#: The book's text column on a 400 px phone, in CSS px, and the smallest figure text a
#: reader should meet there (the book's house figure style, ``CHAPTER_STANDARD.md``).
PHONE_COLUMN_PX = 368
MIN_TEXT_PX = 8.0
#: The widest figure, in inches, whose 10 pt text stays at least ``MIN_TEXT_PX`` when the
#: image is shrunk to ``PHONE_COLUMN_PX``: 10 pt is 10/72 inch, so the text measures
#: ``10 / 72 * 368 / width`` CSS px, 8.2 px at 6.2 inches (independent of the dpi).
MAX_FIGURE_WIDTH_IN = 6.2

#: The house style's rcParams: every text at least 10 pt, figures 6.2 inches wide at most.
HOUSE_RC = {
    "figure.figsize": (MAX_FIGURE_WIDTH_IN, 3.4),
    "figure.dpi": 100,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10,
    "figure.titlesize": 11,
    "legend.framealpha": 0.9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def house_style() -> None:
    """Set matplotlib's rcParams to the book's figure style (:data:`HOUSE_RC`).

    Every text is at least 10 pt and the default figure is ``MAX_FIGURE_WIDTH_IN``
    (6.2) inches wide, so that a figure shrunk to a phone's 368 px column keeps its
    text at :data:`MIN_TEXT_PX` (8 px) or more. Wider content goes on more rows
    (``plt.subplots(2, 2)`` rather than ``(1, 4)``), not on a wider figure.
    Chapters call it once in their setup cell; :func:`check_readable` verifies a figure.
    """
    import matplotlib as mpl

    mpl.rcParams.update(HOUSE_RC)


def smallest_text_px(fig, column_px: float = PHONE_COLUMN_PX) -> tuple[float, str]:
    """The smallest visible text of ``fig`` in CSS px when the image is shown ``column_px`` wide.

    A figure narrower than the column is shown at its natural size (one image pixel
    per CSS px at the figure's dpi); a wider one is scaled down to the column.

    Args:
        fig: a matplotlib figure (drawn here, without rendering, so tick labels exist).
        column_px: the width the image is shown at when it is wider (default: a phone).

    Returns:
        ``(px, text)``: the size and the text itself (``(inf, "")`` for a figure with no text).

    Raises:
        TypeError: ``fig`` is not a matplotlib figure.
        ValueError: ``column_px`` is not positive.
    """
    import matplotlib.figure
    import matplotlib.text

    if not isinstance(fig, matplotlib.figure.Figure):
        raise checks.ArgumentTypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    column_px = checks.positive_float("column_px", column_px)
    fig.draw_without_rendering()
    natural_px = fig.get_figwidth() * fig.dpi
    scale = min(1.0, column_px / natural_px)
    best, where = math.inf, ""
    for t in fig.findobj(matplotlib.text.Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        px = t.get_fontsize() * fig.dpi / 72 * scale
        if px < best:
            best, where = px, t.get_text()
    return best, where


def _smallest_text_pt(fig) -> float:
    """The smallest visible text of a drawn figure, in points (``inf`` when it has none)."""
    import matplotlib.text

    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes, default=math.inf)


def check_readable(fig, min_px: float = MIN_TEXT_PX, column_px: float = PHONE_COLUMN_PX) -> float:
    """Raise unless every text of ``fig`` stays at least ``min_px`` CSS px in a ``column_px`` column.

    Returns:
        The smallest text size in CSS px.

    Raises:
        ValueError: naming the smallest text, its size, and the figure's width.
    """
    px, text = smallest_text_px(fig, column_px)
    if px < min_px:
        raise ValueError(f"fig: the text {text!r} would be {px:.1f} px on a {column_px:g} px phone column "
                         f"(want >= {min_px:g} px); the figure is {fig.get_figwidth():.1f} inches wide: keep it "
                         f"<= {MAX_FIGURE_WIDTH_IN} inches with 10 pt text (course_lib.widgets.house_style)")
    return px


def is_static() -> bool:
    """True when widgets must render without a kernel (``COURSE_STATIC_WIDGETS=1``)."""
    return os.environ.get("COURSE_STATIC_WIDGETS", "0") == "1"


#: Palette size of a player's PNG frames (:func:`_frame_png`).
FRAME_COLORS = 64


def show_compact(fig, dpi: int = 72, colors: int = FRAME_COLORS):
    """Show ``fig`` as a palette PNG of ``colors`` colours at ``dpi``, then close it.

    Matplotlib's inline PNG is full RGBA; a figure of noisy pixels (draws from a
    decoder, say) compresses badly in it. The palette PNG of :func:`_frame_png`
    looks the same for grey images at a fraction of the bytes, which keeps a
    chapter under the browser test's page budget. Returns the IPython ``Image``
    it displayed.

    Raises:
        ValueError: ``dpi`` < 10 or ``colors`` outside 2..256 (named).
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image as IPythonImage, display

    if not isinstance(dpi, int) or dpi < 10:
        raise ValueError(f"dpi must be an int >= 10, got {dpi!r}")
    if not isinstance(colors, int) or not 2 <= colors <= 256:
        raise ValueError(f"colors must be an int from 2 to 256, got {colors!r}")
    image = IPythonImage(data=_frame_png(fig, dpi, colors))
    plt.close(fig)
    display(image)
    return image


def _frame_png(fig, dpi: int, colors: int = FRAME_COLORS) -> bytes:
    """The figure as PNG bytes, reduced to a :data:`FRAME_COLORS`-colour palette (a few times smaller).

    A player's frames are line plots, grey digits and a few colour maps: 64 colours keep
    their look (antialiased edges included) at about a quarter less than 256, which keeps
    a chapter with a 49-frame player under the browser test's 1.5 MB compressed page budget.
    A figure already at ``dpi`` is read straight from its Agg canvas: the same pixels as
    ``savefig`` without encoding and decoding a PNG first (about a third less time per frame).
    """
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow ships with matplotlib
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        return buf.getvalue()
    if fig.dpi == dpi and hasattr(fig.canvas, "buffer_rgba"):
        fig.canvas.draw()
        rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    else:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi)
        buf.seek(0)
        rgb = Image.open(buf).convert("RGB")
    image = rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    out = io.BytesIO()
    image.save(out, format="png", optimize=True)
    return out.getvalue()


def _label(value) -> str:
    """How a control value is shown next to its slider."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _validate(draw, controls, figsize, interval_ms, dpi, max_frames) -> dict[str, list]:
    if not callable(draw):
        raise checks.ArgumentTypeError(f"draw must be a callable draw(fig, **values), got {type(draw).__name__}")
    if not isinstance(controls, dict):
        raise checks.ArgumentTypeError(
            f"controls must be a dict from control name to a list of values, got {type(controls).__name__}"
        )
    if not controls:
        raise ValueError("controls must map each control name to a non-empty list of values, got an empty dict")
    out = {}
    for name, values in controls.items():
        if not isinstance(name, str) or not name:
            raise checks.ArgumentTypeError(f"controls keys must be non-empty str control names, got {name!r}")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise checks.ArgumentTypeError(
                f"controls[{name!r}] must be a list of values, got {type(values).__name__}"
            )
        if len(values) == 0:
            raise ValueError(f"controls must map each control name to a non-empty list of values; controls[{name!r}] is empty")
        out[name] = list(values)
    if not (isinstance(figsize, (tuple, list)) and len(figsize) == 2):
        raise checks.ArgumentTypeError(f"figsize must be a (width, height) pair in inches, got {figsize!r}")
    for v in figsize:
        checks.positive_float("figsize", v)
    checks.positive_int("interval_ms", interval_ms)
    checks.positive_int("dpi", dpi)
    checks.positive_int("max_frames", max_frames)
    return out


def player(
    draw: Callable,
    controls: dict[str, Sequence],
    *,
    static: bool | None = None,
    figsize: tuple[float, float] = (MAX_FIGURE_WIDTH_IN, 3),
    interval_ms: int = 200,
    dpi: int = 72,
    max_frames: int = MAX_FRAMES,
    alt: str | None = None,
):
    """Show ``draw(fig, **values)`` with one labelled control per entry of ``controls``.

    Args:
        draw: draws one view on an empty figure; receives the figure and one
            keyword argument per control.
        controls: ordered mapping from control name to the list of its values;
            each control becomes one slider labelled with its name and value.
        static: force the kernel-free version (True) or the live ipywidgets
            version (False); default :func:`is_static`.
        figsize: matplotlib figure size in inches, ``(width, height)``. The
            static image scales down to the reader's screen, so keep it
            narrow (``MAX_FIGURE_WIDTH_IN``, 6.2 inches, with 10 pt text) for phones.
        interval_ms: delay between frames when the static version plays.
        dpi: resolution of the static frames (dots per inch); every frame is
            embedded as an image, so this sets the page's size.
        max_frames: the most frames (product of the control sizes) the static
            version renders; more raises ``ValueError`` before drawing them.
        alt: what the player shows, the start of the static image's
            alternative text for screen readers. Each frame's text adds what
            that frame's figure says (its titles, axis labels and kind of
            plot, read from the figure) and the current control values.
            Default: the name of ``draw`` and the control names.

    Returns:
        The ipywidgets box (live) or an ``IPython.display.HTML`` (static),
        so the notebook cell displays it as its value.

    Raises:
        ValueError: ``controls`` is empty, a control has no values, a size
            argument is not positive, or (static) the controls give more than
            ``max_frames`` frames; the message says how big the page would be.
        TypeError: ``draw`` is not callable, ``controls`` is not a dict of
            lists, or a size argument has the wrong type.

    References:
        The page budget (under 2 MB) and the one-control-per-parameter rule
        are the book's house standard (``CHAPTER_STANDARD.md``, "Widgets").
    """
    import matplotlib.pyplot as plt

    controls = _validate(draw, controls, figsize, interval_ms, dpi, max_frames)
    static = is_static() if static is None else static
    names = list(controls)

    if static:
        from IPython.display import HTML

        combos = list(itertools.product(*(controls[n] for n in names)))
        fig = plt.figure(figsize=figsize, dpi=dpi)
        try:
            images = []
            frame_alts = []
            text_pt = math.inf
            for i, combo in enumerate(combos):
                fig.clear()
                draw(fig, **dict(zip(names, combo)))
                images.append(_frame_png(fig, dpi))
                frame_alts.append(_figure_text(fig))
                # The smallest text over the frames, in points (read by the browser test's
                # figure-font check with the dpi: text px = pt * dpi / 72 * shown / natural width).
                text_pt = min(text_pt, _smallest_text_pt(fig))
                if i == 0 and len(combos) > max_frames:
                    sizes = " x ".join(f"{len(controls[n])} {n}" for n in names)
                    total = _size(_page_bytes(len(combos), len(images[0])))
                    raise ValueError(
                        f"max_frames: the controls give {len(combos)} frames ({sizes}), more than "
                        f"max_frames={max_frames}; at {_size(len(images[0]))} per frame the page "
                        f"would carry about {total} of images. Use fewer values per control, a "
                        f"smaller figsize or dpi, or raise max_frames if the page stays under 2 MB."
                    )
        finally:
            plt.close(fig)
        return HTML(_static_html(names, controls, images, interval_ms, alt or _default_alt(draw, names), frame_alts,
                                 text_pt=text_pt, dpi=dpi))

    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()
    sliders = {
        n: widgets.SelectionSlider(options=list(controls[n]), description=n, continuous_update=False)
        for n in names
    }

    def redraw(_=None):
        with out:
            out.clear_output(wait=True)
            fig = plt.figure(figsize=figsize)
            draw(fig, **{n: s.value for n, s in sliders.items()})
            display(fig)
            plt.close(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*sliders.values(), out])


def _default_alt(draw, names) -> str:
    what = getattr(draw, "__name__", "figure").replace("_", " ").strip() or "figure"
    return f"Player: {what}, controlled by " + ", ".join(names)


def _plain(text: str) -> str:
    """Matplotlib mathtext as plain words: ``$\\pi_\\theta$`` -> ``pi_theta``."""
    text = re.sub(r"\\(mathrm|mathbf|mathit|mathcal|operatorname|text)\s*", "", text)
    text = re.sub(r"\\([A-Za-z]+)", r"\1", text)
    return re.sub(r"\s+", " ", text.replace("$", "").replace("{", "").replace("}", "")).strip()


def _figure_text(fig) -> str:
    """What a drawn figure says in words: its title, each panel's title, axis labels and kind of plot."""
    parts = []
    suptitle = getattr(fig, "_suptitle", None)
    if suptitle is not None and suptitle.get_text().strip():
        parts.append(_plain(suptitle.get_text()))
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        title = " ".join(t for t in (ax.get_title("left"), ax.get_title(), ax.get_title("right")) if t.strip())
        kind = ("image" if ax.images else "bars" if ax.patches and not ax.lines else
                f"{len(ax.lines)} curve{'s' if len(ax.lines) != 1 else ''}" if ax.lines else
                "scatter plot" if ax.collections else "")
        xlabel, ylabel = _plain(ax.get_xlabel()), _plain(ax.get_ylabel())
        axes = f"{ylabel or 'value'} against {xlabel}" if xlabel else (ylabel if ylabel else "")
        panel = ", ".join(p for p in (_plain(title), kind, axes) if p)
        if panel:
            parts.append(panel)
    return "; ".join(parts)


# The player's script: reads its frames from the JSON block next to it, maps
# the controls' positions to a frame index (the last control varies fastest,
# as in itertools.product) and shows it. ``play`` steps through every frame.
_PLAYER_JS = """
(function () {
  var root = document.getElementById("%(id)s");
  if (!root || root.dataset.ready) return;
  root.dataset.ready = "1";
  var data = JSON.parse(root.querySelector("script.cl-player-data").textContent);
  var img = root.querySelector("img.cl-player-image");
  var inputs = root.querySelectorAll("input.cl-player-range");
  var outputs = root.querySelectorAll("output.cl-player-value");
  var button = root.querySelector("button.cl-player-play");
  var timer = null;
  function index() {
    var k = 0;
    for (var i = 0; i < inputs.length; i++) k = k * data.sizes[i] + Number(inputs[i].value);
    return k;
  }
  function show() {
    var parts = [];
    for (var i = 0; i < inputs.length; i++) {
      var value = data.values[i][Number(inputs[i].value)];
      outputs[i].textContent = value;
      parts.push(data.names[i] + " = " + value);
    }
    var k = index();
    img.src = data.images[k];
    img.alt = data.alt + (data.frames && data.frames[k] ? ". " + data.frames[k] : "") + ". " + parts.join(", ");
  }
  function step() {
    for (var i = inputs.length - 1; i >= 0; i--) {
      var v = Number(inputs[i].value) + 1;
      if (v < data.sizes[i]) { inputs[i].value = v; show(); return true; }
      inputs[i].value = 0;
    }
    show();
    return false;
  }
  function stop() { clearInterval(timer); timer = null; button.textContent = "\\u25B6 play"; }
  button.addEventListener("click", function () {
    if (timer) { stop(); return; }
    button.textContent = "\\u275A\\u275A pause";
    timer = setInterval(function () { if (!step()) stop(); }, data.interval);
  });
  for (var i = 0; i < inputs.length; i++) inputs[i].addEventListener("input", function () { stop(); show(); });
  show();
})();
"""


def _static_html(names, controls, images, interval_ms, alt, frame_alts=None, text_pt=math.inf, dpi=None) -> str:
    """The kernel-free player: one labelled ``<input type=range>`` per control, frames as PNG data URIs."""
    uris = ["data:image/png;base64," + base64.b64encode(b).decode("ascii") for b in images]
    digest = hashlib.sha1("".join(uris).encode() + json.dumps(names).encode()).hexdigest()[:12]
    pid = f"cl-player-{digest}"
    data = {
        "names": names,
        "sizes": [len(controls[n]) for n in names],
        "values": [[_label(v) for v in controls[n]] for n in names],
        "images": uris,
        "interval": int(interval_ms),
        "alt": alt,
        "frames": list(frame_alts) if frame_alts else [],
    }
    # "</" must not end the <script> block early.
    payload = json.dumps(data).replace("</", "<\\/")
    first_alt = alt + (f". {frame_alts[0]}" if frame_alts and frame_alts[0] else "") + ". " + ", ".join(
        f"{n} = {_label(controls[n][0])}" for n in names)
    sizes = (f'data-text-pt="{text_pt:g}" ' if math.isfinite(text_pt) else "") + (f'data-dpi="{dpi}" ' if dpi else "")
    rows = []
    for i, n in enumerate(names):
        size = len(controls[n])
        first = html_lib.escape(_label(controls[n][0]))
        disabled = " disabled" if size == 1 else ""
        rows.append(
            f'<label class="cl-player-control"><span class="cl-player-name">{html_lib.escape(n)}</span>'
            f'<input class="cl-player-range" type="range" min="0" max="{size - 1}" step="1" value="0"'
            f' aria-label="{html_lib.escape(n)}"{disabled}>'
            f'<output class="cl-player-value">{first}</output></label>'
        )
    return (
        f'<div class="cl-player" id="{pid}">'
        f'<img class="cl-player-image" src="{uris[0]}" alt="{html_lib.escape(first_alt)}" '
        f'{sizes}style="max-width:100%;height:auto">'
        f'<div class="cl-player-controls">{"".join(rows)}'
        f'<button type="button" class="cl-player-play">\u25B6 play</button></div>'
        f'<script type="application/json" class="cl-player-data">{payload}</script>'
        f"<script>{_PLAYER_JS % {'id': pid}}</script>"
        f"{_PLAYER_STYLE}</div>"
    )


# Inline so the player looks right in Jupyter as well as in the book (the book's
# CSS in book/_static/course.css refines it, dark mode included).
_PLAYER_STYLE = (
    "<style>.cl-player{max-width:100%}.cl-player-controls{display:flex;flex-wrap:wrap;gap:.25rem 1rem;"
    "align-items:center;font-size:.9rem}.cl-player-control{display:flex;align-items:center;gap:.4rem}"
    ".cl-player-value{min-width:3.5em;font-variant-numeric:tabular-nums}</style>"
)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.0f} kB"


def _page_bytes(n_frames: int, frame_bytes: int) -> int:
    """Bytes ``n_frames`` PNG frames of ``frame_bytes`` each add to a page as base64 data URIs."""
    return n_frames * 4 * math.ceil(frame_bytes / 3)


#: Where :func:`source` links the full text of a listing: ``<url>/<path>#L<first>-L<last>``.
#: ``COURSE_SOURCE_URL`` overrides it; otherwise the repository this package was
#: installed from (its ``Homepage`` URL, which ``grading/make_student.py --sync-urls``
#: keeps equal to the book's ``_config.yml`` ``repository.url``) on branch ``main``.
DEFAULT_REPOSITORY = "https://github.com/dgm-drl-book/course-book"


def glue(name: str, value, display: bool = True):
    """myst-nb's ``glue`` where myst-nb is installed (the book build); a plain display elsewhere.

    Chapters put measured numbers into their prose with ``glue`` (never typing them).
    Students run the chapters in Colab or Jupyter, and the autograder in its own image,
    where myst-nb is not installed: there this shows ``value`` when ``display`` is true
    (as ``glue`` does) and does nothing else, so the notebook runs the same everywhere.

    Args:
        name: the key the prose refers to (``{glue:text}`name```).
        value: any object (a number, a string, a figure).
        display: also show the value in the cell's output.

    Raises:
        TypeError: ``name`` is not a non-empty string.
    """
    if not isinstance(name, str) or not name:
        raise checks.ArgumentTypeError(f"name must be a non-empty str, got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return None
    return myst_glue(name, value, display=display)


def source_url() -> str:
    """The base URL of the library's files in its repository (``.../blob/main``); see :data:`DEFAULT_REPOSITORY`."""
    url = os.environ.get("COURSE_SOURCE_URL", "").strip()
    if url:
        return url.rstrip("/")
    repo = DEFAULT_REPOSITORY
    try:
        from importlib.metadata import PackageNotFoundError, metadata

        for entry in metadata("course-lib").get_all("Project-URL") or []:
            label, _, value = entry.partition(",")
            if label.strip().lower() in ("homepage", "repository", "source") and value.strip().startswith("http"):
                repo = value.strip()
                break
    except (ImportError, PackageNotFoundError):  # pragma: no cover - not installed (a plain checkout)
        pass
    return repo.rstrip("/") + "/blob/main"


def fold_docstrings(text: str) -> str:
    """``text`` (Python source) with every docstring cut to its first line, marked with "[...]".

    Module, class, function and method docstrings all fold; a one-line
    docstring stays as it is. Source that does not parse is returned unchanged.
    """
    import ast
    import textwrap

    dedented = textwrap.dedent(text)
    try:
        tree = ast.parse(dedented)
    except SyntaxError:
        return text
    lines = text.splitlines()
    spans = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        body = node.body
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            continue
        doc = body[0]
        if doc.end_lineno == doc.lineno:
            continue
        summary = next((ln.strip() for ln in doc.value.value.strip().splitlines() if ln.strip()), "")
        first = lines[doc.lineno - 1]
        lead = first[: len(first) - len(first.lstrip())]
        quote = '"""' if '"""' in first else "\'\'\'"
        prefix = first.lstrip()[: first.lstrip().index(quote)]  # r, b, u prefixes
        summary = summary.replace(quote, "")
        spans.append((doc.lineno - 1, doc.end_lineno, f"{lead}{prefix}{quote}{summary} [...]{quote}"))
    for begin, end, replacement in sorted(spans, reverse=True):
        lines[begin:end] = [replacement]
    return "\n".join(lines)


def source(obj):
    """Syntax-highlighted source of a ``course_lib`` object, for showing the implementation in a chapter.

    Chapters never copy library code; they display it with this, so the book
    and the library cannot drift apart. The code is shown with every docstring
    folded to its summary line (:func:`fold_docstrings`), so a listing is the
    code a reader studies, about a screen; below it, a link to the full text in
    the repository, docstring included (:func:`source_url`). It is returned as
    Markdown (a fenced code block and the link), so the book highlights it with
    its own (light or dark) code style and Jupyter/Colab with theirs.

    Args:
        obj: a module, class, function or method whose source is available.

    Returns:
        An ``IPython.display.Markdown`` holding a fenced ``python`` code block
        and a link to the full source.

    Raises:
        TypeError: ``obj`` has no retrievable source (a builtin, an instance).
    """
    import inspect

    from IPython.display import Markdown

    try:
        text = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise checks.ArgumentTypeError(f"obj must be a module, class or function with source code: {err}") from err
    code = fold_docstrings(text.rstrip())
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    fence = "`" * max(3, longest + 1)
    block = f"{fence}python\n{code}\n{fence}"
    link = _source_link(obj, text)
    return Markdown(f"{block}\n\n{link}" if link else block)


def _source_link(obj, text: str) -> str | None:
    """A Markdown link to ``obj``'s lines in the repository, or None outside a package directory."""
    import inspect
    import pathlib

    try:
        path = pathlib.Path(inspect.getsourcefile(obj) or "").resolve()
        _, first = inspect.getsourcelines(obj)
    except (TypeError, OSError):
        return None
    parts = path.parts
    if "course_lib" not in parts:
        return None
    rel = "/".join(parts[len(parts) - 1 - parts[::-1].index("course_lib"):])
    first = max(first, 1)
    last = first + len(text.rstrip().splitlines()) - 1
    name = getattr(obj, "__qualname__", getattr(obj, "__name__", rel))
    return f"Full source of `{name}` with its docstring: [{rel}, lines {first}–{last}]({source_url()}/{rel}#L{first}-L{last})"
