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
* **Toggle names.** Every collapsed cell's ``<summary>`` is named by its
  visible text plus a visually hidden context ("Show solution" + " to
  Exercise 2", "Show test" + " for Exercise 2", "Show code cell source" +
  " for: <first comment of the cell>"): no generic ``aria-label="Toggle hidden
  content"`` that differs from what a sighted reader sees (axe's
  label-content-name-mismatch).
* **Bibliography list.** docutils writes the citation list as
  ``role="list"`` holding ``role="doc-biblioentry"`` entries, a role ARIA 1.3
  deprecates and that is no list item; each entry becomes ``role="listitem"``.
* **MathJax in the book.** ``mathjax_path`` in ``_config.yml`` names a file
  under ``_static/mathjax/`` (``mathjax/tex-chtml.js``): the component, the
  TeX extensions the config loads (``[tex]/mathtools``) and the CHTML fonts
  are copied there from the ``django-static-mathjax`` package before the pages
  are written (:func:`copy_mathjax`), so every formula renders offline and no page waits
  for a CDN. A URL in ``mathjax_path`` is left alone.
* **Loading order.** Content images load lazily (``loading="lazy"``), so on a
  slow connection MathJax is not queued behind figures further down. (Preloading
  MathJax was tried: the maths finished no earlier and the first paint came
  later, as the script then competed with the CSS.)
* **Theme weight.** pydata-sphinx-theme loads Font Awesome twice: as a web
  font (its CSS) and as ``scripts/fontawesome.js`` (540 kB compressed, which
  redraws the same icons as SVG); the theme's template writes that script tag
  itself, so :func:`fix_written_pages` removes it from the written pages
  after the build. The web font stays. (The same pass drops the search
  button's ``aria-label="Search"``, which hides its visible "Ctrl+K".)
* **Icon fonts.** The theme's three Font Awesome fonts (about 300 kB) are cut
  to the glyphs the site uses (:func:`subset_icon_fonts`, fontTools); the
  subsets are declared in ``_static/course-icons.css`` after the theme's.
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


_EXERCISE = re.compile(r"^Exercise\s+(\d+[a-z]?)\b")


def _toggle_context(role: str | None, exercise: str | None, source: str, cell, page: str) -> str:
    """What a collapsed cell holds, for its toggle's accessible name ("to Exercise 2", "for: Colab setup")."""
    if role == "solution" and exercise:
        return f"to Exercise {exercise}"
    if role == "test" and exercise:
        return f"for Exercise {exercise}"
    comment = _first_comment(strip_markers(source))
    if comment:
        comment = comment if len(comment) <= 80 else comment[:77].rstrip() + "..."
        return f"for: {comment}"
    parent = cell.parent
    while parent is not None and not isinstance(parent, nodes.section):
        parent = parent.parent
    titles = list(parent.findall(nodes.title)) if parent is not None else []
    return f"in section “{titles[0].astext()}”" if titles else f"in {page}"


def visit_hide_cell(self, node) -> None:
    """myst-nb's ``<details><summary>`` for a collapsed cell, named by its visible text and its context.

    myst-nb writes ``<summary aria-label="Toggle hidden content">`` above the prompt
    "Show solution": an accessible name that is not the visible label. Here the
    name is the visible prompt plus a visually hidden context from
    :func:`process_cells` (``course_toggle_context`` on the cell).
    """
    from html import escape

    context = ""
    parent = node.parent
    while parent is not None and "course_toggle_context" not in parent:
        parent = parent.parent if not isinstance(parent, nodes.document) else None
    if parent is not None:
        context = f'<span class="visually-hidden"> {escape(parent["course_toggle_context"])}</span>'
    classes = " ".join(node["classes"])
    self.body.append(f'<details class="admonition hide {classes}">\n<summary>\n')
    self.body.append(f'<p class="collapsed admonition-title">{escape(node["prompt_show"])}{context}</p>\n')
    self.body.append(f'<p class="expanded admonition-title">{escape(node["prompt_hide"])}{context}</p>\n')
    self.body.append("</summary>\n")


def depart_hide_cell(self, node) -> None:
    self.body.append("</details>\n")


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
    exercise = None
    for cell in doctree.findall(lambda n: isinstance(n, (nodes.container, nodes.strong))):
        if isinstance(cell, nodes.strong):
            match = _EXERCISE.match(cell.astext())
            if match:
                exercise = match.group(1)
            continue
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
        if role or cell.get("hide_mode"):
            cell["course_toggle_context"] = _toggle_context(role, exercise, source, cell, page)
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
    if isinstance(context.get("body"), str):
        context["body"] = lazy_images(fix_aria(context["body"]))
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


_IMG = re.compile(r"<img (?![^>]*\bloading=)")


def lazy_images(body: str) -> str:
    """Every content image loads when the reader nears it (``loading="lazy"``): the maths and the text come first."""
    return _IMG.sub('<img loading="lazy" ', body)


def fix_aria(body: str) -> str:
    """Bibliography entries as list items of their ``role="list"`` (not the deprecated ``doc-biblioentry``)."""
    return body.replace('role="doc-biblioentry"', 'role="listitem"')


_MATHJAX_FONTS = "output/chtml/fonts/woff-v2"


def mathjax_files(config) -> list[str]:
    """The MathJax files the book loads, relative to MathJax's ``es5/``: the component, the TeX extensions, fonts."""
    path = str(config.mathjax_path or "")
    if not path.startswith("mathjax/"):
        return []
    files = [path[len("mathjax/"):]]
    loads = ((config.mathjax3_config or {}).get("loader") or {}).get("load") or []
    for item in loads:
        match = re.fullmatch(r"\[tex\]/([\w-]+)", item)
        if match:
            files.append(f"input/tex/extensions/{match.group(1)}.js")
    return files


def copy_mathjax(app) -> None:
    """Copy the MathJax component, extensions and CHTML fonts into ``_static/mathjax/`` (see the module docstring).

    Runs when the builder starts, before any page is written, so Sphinx stamps the
    script's URL with the file's checksum (``?v=...``) on every build alike.
    """
    if app.builder.format != "html":
        return
    files = mathjax_files(app.config)
    if not files:
        return
    import shutil

    try:
        import mathjax  # django-static-mathjax: MathJax 3's files, no Django needed
    except ImportError as err:
        raise RuntimeError(
            f"mathjax_path = {app.config.mathjax_path!r} needs a local MathJax: pip install django-static-mathjax"
        ) from err
    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    target = Path(app.outdir) / "_static" / "mathjax"
    for rel in files:
        if not (source / rel).is_file():
            raise RuntimeError(f"MathJax file {rel} is not in {source}")
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target / rel)
    fonts = target / _MATHJAX_FONTS
    fonts.mkdir(parents=True, exist_ok=True)
    for font in (source / _MATHJAX_FONTS).glob("*.woff"):
        shutil.copyfile(font, fonts / font.name)


# What the theme's templates write and html-page-context cannot reach, fixed in the written pages.
_PAGE_FIXES = [
    # pydata-sphinx-theme's Font Awesome as SVG script (the web font draws the same icons).
    (re.compile(r'[ \t]*<script defer src="[^"]*_static/scripts/fontawesome\.js[^"]*"></script>\n?'), ""),
    # The search button reads "Search Ctrl+K" but is named "Search" (axe: label-content-name-mismatch);
    # without the aria-label its name is its visible text.
    (re.compile(r'(<button class="btn search-button-field[^"]*")([^>]*?) aria-label="Search"'), r"\1\2"),
]


def fix_written_pages(app, exception) -> None:
    """Apply :data:`_PAGE_FIXES` to every written page (see the module docstring)."""
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = text
        for pattern, replacement in _PAGE_FIXES:
            new = pattern.sub(replacement, new)
        if new != text:
            page.write_text(new, encoding="utf-8")


# Font Awesome as the theme ships it: three whole fonts (solid 156 kB, brands 118 kB, regular) for
# the dozen icons a page shows. subset_icon_fonts() writes subsets of the same fonts holding only the
# glyphs the site uses, and _static/course-icons.css declares them after the theme's @font-face rules
# (the later rule for a family and weight wins), so a browser downloads only the subsets.
_ICON_FONTS = (  # (family, weight, the theme's TrueType file)
    ("Font Awesome 6 Free", 900, "fa-solid-900.ttf"),
    ("Font Awesome 6 Free", 400, "fa-regular-400.ttf"),
    ("Font Awesome 6 Brands", 400, "fa-brands-400.ttf"),
)
_FA_CLASS_RULE = re.compile(r"^\.(fa-[a-z0-9-]+)::?before$")
_CSS_ESCAPE = re.compile(r"\\([0-9a-fA-F]{1,6})\s?")


def _codepoints(declarations: str) -> set[int]:
    """Icon code points written in CSS declarations: ``"\\f0c9"`` escapes and literal private-use characters."""
    found = {int(h, 16) for h in _CSS_ESCAPE.findall(declarations)}
    found |= {ord(ch) for ch in declarations if 0xE000 <= ord(ch) <= 0xF8FF or ord(ch) >= 0xF0000}
    return {cp for cp in found if 0xE000 <= cp <= 0xF8FF or cp >= 0xF0000}


def icon_codepoints(css: str, used_classes: set[str]) -> set[int]:
    """The icon code points a site needs: those of the ``.fa-*`` classes it uses, and every other rule's.

    ``css`` is the theme's (minified) stylesheet; a rule whose selectors are all
    ``.fa-NAME:before`` maps icon classes to code points, any other rule that
    writes a code point (the theme's admonition and link icons) is always kept.
    """
    keep: set[int] = set()
    for chunk in css.split("}"):
        if "{" not in chunk:
            continue
        selectors, declarations = chunk.rsplit("{", 1)
        points = _codepoints(declarations)
        if not points:
            continue
        selectors = selectors.rsplit("{", 1)[-1]  # inside an @media block
        names = [_FA_CLASS_RULE.match(sel.strip()) for sel in selectors.split(",")]
        if all(names):
            if any(m.group(1) in used_classes for m in names):
                keep |= points
        else:
            keep |= points
    return keep


def subset_icon_fonts(app, exception) -> None:
    """Write the Font Awesome subsets and ``_static/course-icons.css`` (see :data:`_ICON_FONTS`)."""
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    webfonts = static / "vendor" / "fontawesome" / "webfonts"
    theme_css = static / "styles" / "pydata-sphinx-theme.css"
    if not theme_css.is_file() or not webfonts.is_dir():
        return
    try:
        from fontTools import subset
        from fontTools.ttLib import TTFont
    except ImportError:  # pragma: no cover - fontTools comes with matplotlib
        return
    used: set[str] = set()
    for path in list(Path(app.outdir).rglob("*.html")) + list(static.rglob("*.js")):
        if "mathjax" in path.parts:
            continue
        used |= set(re.findall(r"\bfa-[a-z0-9-]+", path.read_text(encoding="utf-8", errors="replace")))
    wanted = icon_codepoints(theme_css.read_text(encoding="utf-8"), used)
    out = static / "course-icons"
    out.mkdir(exist_ok=True)
    rules = []
    for family, weight, ttf in _ICON_FONTS:
        if not (webfonts / ttf).is_file():
            continue
        font = TTFont(webfonts / ttf)
        points = sorted(wanted & set(font.getBestCmap()))
        options = subset.Options()
        options.flavor = "woff"  # zlib: no brotli needed; a few kB either way
        options.layout_features = ["*"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=points or [0x20])
        subsetter.subset(font)
        name = ttf.replace(".ttf", ".subset.woff")
        font.flavor = "woff"
        font.save(out / name)
        rules.append(
            f'@font-face {{ font-family: "{family}"; font-style: normal; font-weight: {weight}; font-display: block;\n'
            f'  src: url("course-icons/{name}") format("woff"); }}  /* {len(points)} icons */'
        )
    (static / "course-icons.css").write_text(
        "/* Written by course_sphinx_ext.subset_icon_fonts: the theme's Font Awesome fonts cut to the icons\n"
        " * this site uses. Declared after the theme's own @font-face rules, so these win. */\n"
        + "\n".join(rules) + "\n", encoding="utf-8")


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
                last = [" ".join(p.prelast_names + p.last_names) or str(p) for p in people]   # "van den Oord", as in the text
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
    _register_reference_style()


def _register_reference_style() -> None:
    """In-text citations whose year is the bibliography label's: "van den Oord et al., 2016a" / "2016b".

    sphinxcontrib-bibtex's ``author_year`` reference style prints the entry's year
    field, so two papers with the same first author and year cite alike; this
    style takes the year from the label that ``course_author_year`` gives the entry
    (with its a/b suffix), and is otherwise ``author_year``.
    """
    from pybtex.richtext import Text
    from sphinxcontrib.bibtex.plugin import register_plugin
    from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle
    from sphinxcontrib.bibtex.style.referencing.basic_author_year import (
        BasicAuthorYearParentheticalReferenceStyle,
        BasicAuthorYearTextualReferenceStyle,
    )
    from sphinxcontrib.bibtex.style.template import join, join2, node, post_text, pre_text, reference

    @node
    def labelled_year(children, data):
        """The year part of the entry's label ("2016a"), or its year field."""
        label = getattr(data.get("formatted_entry"), "label", None) or ""
        if ", " in label:
            return Text(label.rsplit(", ", 1)[1])
        return Text(data["entry"].fields.get("year", "n.d."))

    class Parenthetical(BasicAuthorYearParentheticalReferenceStyle):
        def inner(self, role_name):
            return join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[
                pre_text,
                reference[join(sep=self.author_year_sep)[
                    self.person.author_or_editor_or_title(full="s" in role_name), labelled_year]],
                post_text,
            ]

    class Textual(BasicAuthorYearTextualReferenceStyle):
        def inner(self, role_name):
            return join(sep=self.text_reference_sep)[
                self.person.author_or_editor_or_title(full="s" in role_name),
                join[self.bracket.left,
                     join2(sep1=self.pre_text_sep, sep2=self.post_text_sep)[pre_text, reference[labelled_year], post_text],
                     self.bracket.right],
            ]

    class CourseAuthorYearReferenceStyle(AuthorYearReferenceStyle):
        def __post_init__(self):
            super().__post_init__()
            self.styles[0] = Parenthetical(bracket=self.bracket_parenthetical, person=self.person,
                                           author_year_sep=self.author_year_sep, pre_text_sep=self.pre_text_sep,
                                           post_text_sep=self.post_text_sep)
            self.styles[1] = Textual(bracket=self.bracket_textual, person=self.person,
                                     text_reference_sep=self.text_reference_sep, pre_text_sep=self.pre_text_sep,
                                     post_text_sep=self.post_text_sep)
            self.role_style.update((role, style) for style in self.styles[:2] for role in style.role_names())

    register_plugin("sphinxcontrib.bibtex.style.referencing", "course_author_year", CourseAuthorYearReferenceStyle)


def setup(app):
    _register_bibliography_style()
    app.connect("doctree-read", process_cells)
    app.connect("env-get-updated", number_per_chapter, priority=900)
    app.connect("html-page-context", clean_page, priority=900)
    app.connect("builder-inited", copy_mathjax)
    app.connect("build-finished", fix_written_pages)
    app.connect("build-finished", subset_icon_fonts, priority=600)  # after the pages are fixed
    app.add_css_file("course-icons.css")
    try:
        from myst_nb.sphinx_ import HideCodeCellNode
    except ImportError:  # pragma: no cover - myst-nb is what builds the book
        pass
    else:
        app.add_node(HideCodeCellNode, override=True, html=(visit_hide_cell, depart_hide_cell))
    # env_version: bumped when what process_cells stores in the doctrees changes (2: toggle
    # contexts), so Sphinx re-reads every page instead of reusing doctrees without it.
    return {"version": "1.1", "env_version": 2, "parallel_read_safe": True, "parallel_write_safe": True}
