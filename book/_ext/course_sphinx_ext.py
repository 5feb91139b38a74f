"""The book's Sphinx extension: what a reader sees of a master notebook.

Loaded by ``_config.yml`` (``sphinx.local_extensions: {course_sphinx_ext: book/_ext}``;
``make book`` rewrites that path to an absolute one in the per-profile config it
writes under ``_build/``). It is part of the book, not of ``course_lib``: it
imports nothing from the library, and ``pip install course-lib`` does not ship
it. It changes only the rendered page, never a notebook:

* **Exercise cells.** Code cells inside an otter ``# BEGIN SOLUTION`` block
  (or holding the marker themselves) are collapsed behind a "Show solution"
  toggle, public test cells behind "Show test"; otter, nbval and prompt
  markers (``# BEGIN SOLUTION``, ``# END SOLUTION``, ``# NBVAL_CHECK_OUTPUT``,
  ``x = 1  # SOLUTION`` ...) are removed from the displayed source.
* **Equation numbers per chapter.** Displayed equations of
  ``notebooks/NN_slug`` are numbered (N.1), (N.2), ... with N read from the
  file name; references ``{eq}`` follow. Other pages number (1), (2), ...
  Sphinx's own ``numfig`` numbering runs across the whole book instead.
* **Alt text.** A figure output without ``alt`` gets one: the cell's
  ``mystnb.figure.caption`` metadata, else the first comment line of its
  code, else "Figure k, a code-cell output in section <title> of <page>",
  never the image's file hash.
* **Author-year bibliography labels** ("Dinh et al., 2014") that match the
  in-text ``author_year`` citations (style ``course_author_year``).
* **Scripts.** Each page loads a script body once (sphinx-thebe adds its
  ``const THEBE_JS_URL`` twice); the jupyter-widgets state and its require.js
  / embed / font-awesome CDN scripts are dropped, since the book's widgets
  are kernel-free players that need none of them.
* **No master notebook in the site.** The download menu keeps "print to
  PDF" but not the ``.ipynb``/``.md`` source (a master notebook holds the
  solutions and hidden tests); ``_config.yml`` sets ``html_copy_source: false``
  so ``_sources/`` is not published either.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes

# Lines that are grading machinery, not part of the code a reader studies.
_MARKER_LINE = re.compile(
    r"^\s*(#\s*(BEGIN|END)\s+(SOLUTION|TESTS?|QUESTION|PROMPT)\b.*"
    r"|#\s*NBVAL_\w+.*"
    r"|#\s*(SOLUTION|OTTER)\b.*"
    r"|(\"\"\"|''')\s*#\s*(BEGIN|END)\s+(TEST CONFIG|PROMPT)\b.*)$"
)
_TRAILING_SOLUTION = re.compile(r"\s*#\s*SOLUTION(\s+NO\s+PROMPT)?\s*$")
_PROMPT_BLOCK = re.compile(
    r"^[ \t]*(\"\"\"|''')\s*#\s*BEGIN PROMPT.*?^[ \t]*(\"\"\"|''')\s*#\s*END PROMPT[^\n]*\n?",
    re.M | re.S,
)
_CHAPTER = re.compile(r"(?:^|/)(\d+)_[^/]*$")


def strip_markers(source: str) -> str:
    """``source`` without otter/nbval marker lines, ``# SOLUTION`` suffixes or prompt blocks."""
    source = _PROMPT_BLOCK.sub("", source)
    lines = []
    for line in source.splitlines():
        if _MARKER_LINE.match(line):
            continue
        lines.append(_TRAILING_SOLUTION.sub("", line))
    return "\n".join(lines).strip("\n")


def chapter_number(docname: str) -> int | None:
    """N for ``notebooks/NN_slug`` (``notebooks/04_reinforce`` -> 4), else None."""
    match = _CHAPTER.search(docname)
    return int(match.group(1)) if match and docname.startswith("notebooks/") else None


def cell_roles(path: Path) -> dict[int, str]:
    """Map code-cell index -> "solution" or "test" from otter's raw-cell markers in a notebook."""
    import nbformat

    roles: dict[int, str] = {}
    block = None
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        first = cell.source.lstrip().splitlines()[0].strip() if cell.source.strip() else ""
        if cell.cell_type == "raw":
            if re.match(r"#\s*BEGIN\s+SOLUTION", first):
                block = "solution"
            elif re.match(r"#\s*BEGIN\s+TESTS?\b", first):
                block = "test"
            elif re.match(r"#\s*END\s+(SOLUTION|TESTS?|QUESTION)", first):
                block = None
            continue
        if cell.cell_type != "code":
            continue
        if re.search(r"#\s*BEGIN\s+SOLUTION|#\s*SOLUTION\b", cell.source):
            roles[i] = "solution"
        elif block:
            roles[i] = block
    return roles


_PROMPTS = {
    "solution": ("Show solution", "Hide solution"),
    "test": ("Show test", "Hide test"),
}


def _first_comment(source: str) -> str | None:
    for line in source.splitlines():
        text = line.strip()
        if _MARKER_LINE.match(text):
            continue
        if text.startswith("#"):
            text = text.lstrip("#").strip()
            if len(text) > 3:
                return text
        elif text:
            return None
    return None


def process_cells(app, doctree) -> None:
    """Collapse solutions and tests with their own labels, strip markers, give figures alt text."""
    env = app.env
    docname = env.docname
    path = Path(env.doc2path(docname))
    roles = cell_roles(path) if path.suffix == ".ipynb" else {}
    title = next(iter(doctree.findall(nodes.title)), None)
    page = title.astext() if title is not None else docname
    n_figures = 0
    for cell in doctree.findall(nodes.container):
        if cell.get("nb_element") != "cell_code":
            continue
        source = ""
        for block in cell.findall(nodes.literal_block):
            parent = block.parent
            if parent is None or parent.get("nb_element") != "cell_code_source":
                continue
            source = block.astext()
            cleaned = strip_markers(source)
            if cleaned != source:
                block.children = [nodes.Text(cleaned)]
                block.rawsource = cleaned
        role = roles.get(cell.get("cell_index"))
        if role:
            if cell.get("hide_mode") not in ("input", "input+output", "all"):
                cell["hide_mode"] = "input"
            cell["prompt_show"], cell["prompt_hide"] = _PROMPTS[role]
        for image in cell.findall(nodes.image):
            n_figures += 1
            if image.get("alt"):
                continue
            caption = None
            if isinstance(image.parent, nodes.figure):
                caps = list(image.parent.findall(nodes.caption))
                caption = caps[0].astext() if caps else None
            meta = cell.get("cell_metadata", {}) or {}
            caption = caption or (meta.get("mystnb", {}) or {}).get("figure", {}).get("caption")
            image["alt"] = caption or _first_comment(source) or _section_alt(cell, n_figures, page)


def _section_alt(node, k: int, page: str) -> str:
    """ "Figure k, a code-cell output in section <title> of <page>" (the enclosing section's title)."""
    parent = node.parent
    while parent is not None and not isinstance(parent, nodes.section):
        parent = parent.parent
    titles = list(parent.findall(nodes.title)) if parent is not None else []
    section = titles[0].astext() if titles else None
    if section and section != page:
        return f"Figure {k}, a code-cell output in section “{section}” of {page}"
    return f"Figure {k}, a code-cell output of {page}"


def number_per_chapter(app, env) -> list[str]:
    """Renumber displayed equations and figures per page: (N.k) in chapter N, (k) elsewhere."""
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        chapter = chapter_number(docname)
        new = {}
        for figtype, numbers in by_type.items():
            order = sorted(numbers, key=lambda key: numbers[key])
            prefix = (chapter,) if chapter is not None else ()
            new[figtype] = {key: prefix + (k + 1,) for k, key in enumerate(order)}
        if new != by_type:
            env.toc_fignumbers[docname] = new
            changed.append(docname)
    return changed


def _script_body(script) -> str:
    attrs = getattr(script, "attributes", {}) or {}
    return attrs.get("body", "") if isinstance(attrs, dict) else ""


def _drop_source_downloads(buttons: list) -> list:
    """The header buttons without the source downloads (.ipynb / .md): they are the masters."""
    kept = []
    for button in buttons:
        if button.get("label") in ("download-notebook-button", "download-source-button"):
            continue
        if isinstance(button.get("buttons"), list):
            button = dict(button, buttons=_drop_source_downloads(button["buttons"]))
        kept.append(button)
    return kept


def clean_page(app, pagename, templatename, context, doctree) -> None:
    """One copy of each inline script; no jupyter-widgets state or CDN loaders; no master downloads."""
    if isinstance(context.get("header_buttons"), list):
        context["header_buttons"] = _drop_source_downloads(context["header_buttons"])
    scripts = context.get("script_files")
    if not scripts:
        return
    seen = set()
    kept = []
    for script in scripts:
        attrs = getattr(script, "attributes", {}) or {}
        filename = getattr(script, "filename", None) or ""  # None and "" both mean an inline script
        if attrs.get("type") == "application/vnd.jupyter.widget-state+json":
            continue
        if any(cdn in str(filename) for cdn in ("require.min.js", "@jupyter-widgets/html-manager")):
            continue
        key = (str(filename), _script_body(script))
        if key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def _register_bibliography_style() -> None:
    from pybtex.plugin import register_plugin
    from pybtex.style.formatting.plain import Style as PlainStyle
    from pybtex.style.labels import BaseLabelStyle

    class AuthorYearLabelStyle(BaseLabelStyle):
        """Labels like the in-text author_year citations: "Williams, 1992", "Kingma and Welling, 2013", "Dinh et al., 2014"."""

        def format_labels(self, sorted_entries):
            used: dict[str, int] = {}
            labels = []
            for entry in sorted_entries:
                people = entry.persons.get("author") or entry.persons.get("editor") or []
                last = [" ".join(p.last_names) or str(p) for p in people]
                if not last:
                    who = entry.fields.get("title", entry.key)[:20]
                elif len(last) == 1:
                    who = last[0]
                elif len(last) == 2:
                    who = f"{last[0]} and {last[1]}"
                else:
                    who = f"{last[0]} et al."
                who = who.replace("{", "").replace("}", "")
                labels.append(f"{who}, {entry.fields.get('year', 'n.d.')}")
            counts = {label: labels.count(label) for label in labels}
            for label in labels:
                if counts[label] > 1:
                    used[label] = used.get(label, 0) + 1
                    yield label + "abcdefghijklmnopqrstuvwxyz"[used[label] - 1]
                else:
                    yield label

    class AuthorYearStyle(PlainStyle):
        """pybtex's plain style (sorted by author, year, title) with author-year labels."""

        default_label_style = "course_author_year"

    register_plugin("pybtex.style.labels", "course_author_year", AuthorYearLabelStyle)
    register_plugin("pybtex.style.formatting", "course_author_year", AuthorYearStyle)


def setup(app):
    _register_bibliography_style()
    app.connect("doctree-read", process_cells)
    app.connect("env-get-updated", number_per_chapter, priority=900)
    app.connect("html-page-context", clean_page, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
