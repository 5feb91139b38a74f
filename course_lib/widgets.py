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
from typing import Callable, Sequence

from course_lib import checks

__all__ = ["is_static", "player", "source", "MAX_FRAMES"]

#: Default cap on the number of frames of a kernel-free player. With frames of
#: 20 to 40 kB (a 6 x 3 inch figure at 80 dpi) this keeps one player under
#: about 2 MB, the page budget of the book.
MAX_FRAMES = 48


def is_static() -> bool:
    """True when widgets must render without a kernel (``COURSE_STATIC_WIDGETS=1``)."""
    return os.environ.get("COURSE_STATIC_WIDGETS", "0") == "1"


def _frame_png(fig, dpi: int) -> bytes:
    """The figure as PNG bytes, reduced to a 256-colour palette (about 2-3x smaller, same look)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow ships with matplotlib
        return buf.getvalue()
    buf.seek(0)
    image = Image.open(buf).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
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
    figsize: tuple[float, float] = (8, 3),
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
            narrow (at most about 8 inches) for phones.
        interval_ms: delay between frames when the static version plays.
        dpi: resolution of the static frames (dots per inch); every frame is
            embedded as an image, so this sets the page's size.
        max_frames: the most frames (product of the control sizes) the static
            version renders; more raises ``ValueError`` before drawing them.
        alt: alternative text of the static image, for screen readers; the
            current control values are appended. Default: the name of
            ``draw`` and the control names.

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
            for i, combo in enumerate(combos):
                fig.clear()
                draw(fig, **dict(zip(names, combo)))
                images.append(_frame_png(fig, dpi))
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
        return HTML(_static_html(names, controls, images, interval_ms, alt or _default_alt(draw, names)))

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
    return f"{what}, controlled by " + ", ".join(names)


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
    img.src = data.images[index()];
    img.alt = data.alt + ": " + parts.join(", ");
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


def _static_html(names, controls, images, interval_ms, alt) -> str:
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
    }
    # "</" must not end the <script> block early.
    payload = json.dumps(data).replace("</", "<\\/")
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
        f'<img class="cl-player-image" src="{uris[0]}" alt="{html_lib.escape(alt)}" '
        f'style="max-width:100%;height:auto">'
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


def source(obj):
    """Syntax-highlighted source of a ``course_lib`` object, for showing the implementation in a chapter.

    Chapters never copy library code; they display it with this, so the book
    and the library cannot drift apart. The source is returned as a Markdown
    code block, so the book highlights it with its own (light or dark) code
    style and Jupyter/Colab with theirs.

    Args:
        obj: a module, class, function or method whose source is available.

    Returns:
        An ``IPython.display.Markdown`` holding a fenced ``python`` code block.

    Raises:
        TypeError: ``obj`` has no retrievable source (a builtin, an instance).
    """
    import inspect

    from IPython.display import Markdown

    try:
        text = inspect.getsource(obj)
    except (TypeError, OSError) as err:
        raise checks.ArgumentTypeError(f"obj must be a module, class or function with source code: {err}") from err
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return Markdown(f"{fence}python\n{text.rstrip()}\n{fence}")
