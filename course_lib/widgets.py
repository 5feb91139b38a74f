"""Widgets that are live in Jupyter/Colab and still work in the static book.

The pattern every chapter follows:

* compute everything the widget shows first (plain tensors and arrays);
* write a ``draw(fig, **values)`` function that draws one view on an empty
  matplotlib figure;
* call :func:`player` with the controls and their values.

In a live kernel (Jupyter, Colab) :func:`player` shows ipywidgets controls
that redraw the figure. When the book is built (``COURSE_STATIC_WIDGETS=1``,
set by ``make book``) it renders every combination of control values as a
frame of a ``matplotlib.animation.FuncAnimation`` and embeds it with
``to_jshtml()``: a JavaScript slider that needs no kernel.
"""

from __future__ import annotations

import itertools
import os
from typing import Callable, Sequence

__all__ = ["is_static", "player", "source"]


def is_static() -> bool:
    """True when widgets must render without a kernel (``COURSE_STATIC_WIDGETS=1``)."""
    return os.environ.get("COURSE_STATIC_WIDGETS", "0") == "1"


def player(
    draw: Callable,
    controls: dict[str, Sequence],
    *,
    static: bool | None = None,
    figsize: tuple[float, float] = (8, 3),
    interval_ms: int = 200,
    dpi: int = 72,
):
    """Show ``draw(fig, **values)`` with one control per entry of ``controls``.

    Args:
        draw: draws one view on an empty figure; receives the figure and one
            keyword argument per control.
        controls: ordered mapping from control name to the list of its values.
        static: force the kernel-free JavaScript version (True) or the live
            ipywidgets version (False); default :func:`is_static`.
        figsize: matplotlib figure size in inches.
        interval_ms: delay between frames when the static version plays.
        dpi: resolution of the static frames; every frame is embedded as an
            image, so this sets the page's size.

    Returns:
        The ipywidgets box (live) or an ``IPython.display.HTML`` (static),
        so the notebook cell displays it as its value.

    Raises:
        ValueError: if ``controls`` is empty or a control has no values.
    """
    import matplotlib.pyplot as plt

    if not controls or any(len(v) == 0 for v in controls.values()):
        raise ValueError("controls must map each control name to a non-empty list of values")
    static = is_static() if static is None else static
    names = list(controls)

    if static:
        from IPython.display import HTML
        from matplotlib import animation

        combos = list(itertools.product(*(controls[n] for n in names)))
        fig = plt.figure(figsize=figsize, dpi=dpi)

        def frame(i):
            fig.clear()
            draw(fig, **dict(zip(names, combos[i])))
            return []

        anim = animation.FuncAnimation(fig, frame, frames=len(combos), interval=interval_ms, blit=False)
        html = anim.to_jshtml(default_mode="once")
        plt.close(fig)
        return HTML(html)

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


def source(obj):
    """Syntax-highlighted source of a ``course_lib`` object, for showing the implementation in a chapter.

    Chapters never copy library code; they display it with this, so the book
    and the library cannot drift apart.
    """
    import inspect

    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")
