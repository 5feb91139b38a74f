"""The book's Sphinx extensions (book/_ext/): marker stripping, exercise roles, per-chapter numbering, labels, student links."""

import pathlib
import sys
import types

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("docutils")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))  # the book's extensions are not part of course_lib
import course_sphinx_ext as sphinx_ext  # noqa: E402

MARKERS = [
    "# BEGIN SOLUTION",
    "    # END SOLUTION",
    "# NBVAL_CHECK_OUTPUT",
    "# NBVAL_IGNORE_OUTPUT",
    "# BEGIN TESTS",
    "# END QUESTION",
    '""" # BEGIN TEST CONFIG',
    '""" # END TEST CONFIG',
    "# SOLUTION",
]

code_line = st.text(alphabet="abcxyz_=+()0123456789 ", min_size=1, max_size=30).filter(lambda s: s.strip())


@settings(max_examples=40, deadline=None)
@given(lines=st.lists(code_line, min_size=1, max_size=8), markers=st.lists(st.sampled_from(MARKERS), max_size=4),
       data=st.data())
def test_strip_markers_removes_marker_lines_and_keeps_code(lines, markers, data):
    mixed = list(lines)
    for m in markers:
        mixed.insert(data.draw(st.integers(0, len(mixed))), m)
    out = sphinx_ext.strip_markers("\n".join(mixed))
    for m in MARKERS:
        assert m.strip() not in out.splitlines()
    assert [ln for ln in out.splitlines()] == [ln for ln in "\n".join(lines).strip("\n").splitlines()]


def test_strip_markers_inline_solution_and_prompt_block():
    src = 'x = 3  # SOLUTION\n""" # BEGIN PROMPT\nx = ...\n""" # END PROMPT\ny = x + 1'
    assert sphinx_ext.strip_markers(src) == "x = 3\ny = x + 1"


@pytest.mark.parametrize(
    "docname, expected",
    [("notebooks/04_reinforce", 4), ("notebooks/01_change_of_variables_nice", 1), ("notebooks/12_x", 12),
     ("book/notation", None), ("book/04_x", None), ("notebooks/intro", None)],
)
def test_chapter_number(docname, expected):
    assert sphinx_ext.chapter_number(docname) == expected


def test_cell_roles_from_otter_raw_markers(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1"),                       # 0 plain
        nbformat.v4.new_raw_cell("# BEGIN QUESTION\nname: q1"),  # 1
        nbformat.v4.new_raw_cell("# BEGIN SOLUTION"),            # 2
        nbformat.v4.new_code_cell("def f(): return 1"),          # 3 solution
        nbformat.v4.new_raw_cell("# END SOLUTION"),              # 4
        nbformat.v4.new_raw_cell("# BEGIN TESTS"),               # 5
        nbformat.v4.new_code_cell("def test_f(f): assert f()"),  # 6 test
        nbformat.v4.new_raw_cell("# END TESTS"),                 # 7
        nbformat.v4.new_code_cell("y = 2"),                       # 8 plain
        nbformat.v4.new_code_cell("z = 3  # SOLUTION"),           # 9 inline solution
    ]
    path = tmp_path / "04_x.ipynb"
    nbformat.write(nb, path)
    assert sphinx_ext.cell_roles(path) == {3: "solution", 6: "test", 9: "solution"}


def test_number_per_chapter_restarts_in_each_chapter():
    env = types.SimpleNamespace(toc_fignumbers={
        "book/intro": {"displaymath": {"equation-a": (1,)}},
        "notebooks/01_nice": {"displaymath": {"equation-b": (3,), "equation-c": (2,)}},
        "notebooks/04_reinforce": {"displaymath": {"equation-d": (12,), "equation-e": (13,)},
                                   "figure": {"fig-x": (5,)}},
    })
    changed = sphinx_ext.number_per_chapter(None, env)
    assert env.toc_fignumbers["notebooks/01_nice"]["displaymath"] == {"equation-c": (1, 1), "equation-b": (1, 2)}
    assert env.toc_fignumbers["notebooks/04_reinforce"]["displaymath"] == {"equation-d": (4, 1), "equation-e": (4, 2)}
    assert env.toc_fignumbers["notebooks/04_reinforce"]["figure"] == {"fig-x": (4, 1)}
    assert env.toc_fignumbers["book/intro"]["displaymath"] == {"equation-a": (1,)}
    assert set(changed) == {"notebooks/01_nice", "notebooks/04_reinforce"}
    assert sphinx_ext.number_per_chapter(None, env) == [], "renumbering is idempotent"


def test_author_year_labels():
    from pybtex.database import parse_string
    from pybtex.plugin import find_plugin

    sphinx_ext._register_bibliography_style()
    bib = parse_string(
        """
        @article{a, author = {Williams, Ronald J.}, title = {T1}, journal = {J}, year = {1992}}
        @article{b, author = {Kingma, Diederik and Welling, Max}, title = {T2}, journal = {J}, year = {2014}}
        @article{c, author = {Dinh, Laurent and Krueger, David and Bengio, Yoshua}, title = {T3}, journal = {J}, year = {2014}}
        @article{d, author = {Dinh, Laurent and Sohl-Dickstein, Jascha and Bengio, Samy}, title = {T4}, journal = {J}, year = {2014}}
        """,
        "bibtex",
    )
    style = find_plugin("pybtex.style.formatting", "course_author_year")()
    labels = {e.key: e.label for e in style.format_entries(bib.entries.values())}
    assert labels["a"] == "Williams, 1992"
    assert labels["b"] == "Kingma and Welling, 2014"
    assert sorted([labels["c"], labels["d"]]) == ["Dinh et al., 2014a", "Dinh et al., 2014b"]


# ------------------------------------------------------------------ launch buttons open the student notebook
@pytest.mark.parametrize("interface", ["classic", "jupyterlab"])
def test_every_launch_button_opens_the_student_notebook(interface):
    """sphinx-book-theme's own Colab, Binder and JupyterHub URLs, then course_sphinx_student: student/ only."""
    launch = pytest.importorskip("sphinx_book_theme.header_buttons.launch")
    import course_sphinx_student

    stem = sorted((ROOT / "student").glob("*.ipynb"))[-1].stem
    page = f"notebooks/{stem}"
    theme = {"repository_url": "https://github.com/some-course/a-book", "repository_branch": "main", "path_to_docs": "",
             "launch_buttons": {"colab_url": "https://colab.research.google.com", "binderhub_url": "https://mybinder.org",
                                "jupyterhub_url": "https://hub.example.edu", "deepnote_url": "https://deepnote.com",
                                "notebook_interface": interface}}

    class Config(dict):  # the theme reads app.config["html_theme_options"], the extension app.config.html_theme_options
        html_theme_options = theme

    app = types.SimpleNamespace(
        srcdir=str(ROOT), outdir=str(ROOT / "_build" / "html"), config=Config(html_theme_options=theme),
        env=types.SimpleNamespace(doc2path=lambda name: str(ROOT / f"{name}.ipynb"), metadata={page: {"kernelspec": {}}}))
    context = {"pagename": page, "sourcename": f"{page}.ipynb", "header_buttons": [
        {"label": "download-buttons", "buttons": []}],
        "github_url": "https://github.com", "github_user": "some-course", "github_repo": "a-book"}
    launch.add_launch_buttons(app, page, "page.html", context, None)
    buttons = {b["text"]: b["url"] for g in context["header_buttons"] if g["label"] == "launch-buttons" for b in g["buttons"]}
    assert set(buttons) == {"Colab", "Binder", "JupyterHub", "Deepnote"}
    assert all(f"{stem}.ipynb" in u and "student" not in u for u in buttons.values()), "the theme links the master"

    course_sphinx_student._point_at_students(app, page, "page.html", context, None)
    urls = {b["text"]: b["url"] for g in context["header_buttons"] if g["label"] == "launch-buttons" for b in g["buttons"]}
    ui = "tree" if interface == "classic" else "lab/tree"
    assert urls["Colab"] == f"https://colab.research.google.com/github/some-course/a-book/blob/main/student/{stem}.ipynb"
    assert urls["Binder"] == f"https://mybinder.org/v2/gh/some-course/a-book/main?urlpath={ui}/student/{stem}.ipynb"
    assert urls["JupyterHub"].startswith("https://hub.example.edu/hub/user-redirect/git-pull?")
    assert f"urlpath={ui}/a-book/student/{stem}.ipynb" in urls["JupyterHub"]
    assert f"%2Fmain%2Fstudent/{stem}.ipynb" in urls["Deepnote"]  # the theme leaves the path itself unencoded
    for url in urls.values():
        assert "notebooks" not in url, url
    download = next(g for g in context["header_buttons"] if g["label"] == "download-buttons")["buttons"][0]
    assert download["url"] == f"https://github.com/some-course/a-book/raw/main/student/{stem}.ipynb"


@pytest.mark.parametrize("url, expected", [
    ("https://mybinder.org/v2/gh/o/r/main?urlpath=tree/notebooks/04_x.ipynb",
     "https://mybinder.org/v2/gh/o/r/main?urlpath=tree/student/04_x.ipynb"),
    ("https://hub/hub/user-redirect/git-pull?repo=https%3A//github.com/o/r&urlpath=lab/tree/r/notebooks/04_x.ipynb&branch=main",
     "https://hub/hub/user-redirect/git-pull?repo=https%3A//github.com/o/r&urlpath=lab/tree/r/student/04_x.ipynb&branch=main"),
    ("https://deepnote.com/launch?url=https%3A%2F%2Fgithub.com%2Fo%2Fr%2Fblob%2Fmain%2Fnotebooks%2F04_x.ipynb",
     "https://deepnote.com/launch?url=https%3A%2F%2Fgithub.com%2Fo%2Fr%2Fblob%2Fmain%2Fstudent%2F04_x.ipynb"),
    ("https://colab.research.google.com/github/o/r/blob/main/notebooks/05_y.ipynb",
     "https://colab.research.google.com/github/o/r/blob/main/notebooks/05_y.ipynb"),  # another chapter: unchanged
])
def test_student_launch_url(url, expected):
    import course_sphinx_student

    assert course_sphinx_student.student_launch_url(url, "notebooks/04_x.ipynb", "student/04_x.ipynb") == expected


def test_bibliography_entries_are_list_items():
    body = '<div role="list" class="citation-list">\n<div class="citation" id="id1" role="doc-biblioentry">x</div>\n</div>'
    out = sphinx_ext.fix_aria(body)
    assert "doc-biblioentry" not in out and out.count('role="listitem"') == 1 and 'role="list"' in out


def test_mathjax_files_follow_the_config():
    config = types.SimpleNamespace(mathjax_path="mathjax/tex-chtml.js",
                                   mathjax3_config={"loader": {"load": ["[tex]/mathtools", "ui/lazy"]}})
    assert sphinx_ext.mathjax_files(config) == ["tex-chtml.js", "input/tex/extensions/mathtools.js"]
    config.mathjax_path = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
    assert sphinx_ext.mathjax_files(config) == []


def test_written_page_fixes_drop_fontawesome_js_and_the_search_label():
    page = (
        '  <script defer src="../_static/scripts/fontawesome.js?digest=55c2"></script>\n'
        '<button class="btn search-button-field search-button__button pst-js-only" aria-label="Search" '
        'data-bs-placement="bottom">Search <kbd>Ctrl</kbd></button>'
    )
    out = page
    for pattern, replacement in sphinx_ext._PAGE_FIXES:
        out = pattern.sub(replacement, out)
    assert "fontawesome.js" not in out and 'aria-label="Search"' not in out
    assert out.startswith('<button class="btn search-button-field search-button__button pst-js-only" data-bs-placement')


def test_toggle_context_names_the_exercise_or_the_code():
    from docutils import nodes

    cell = nodes.container()
    assert sphinx_ext._toggle_context("solution", "2", "x = 1", cell, "Ch") == "to Exercise 2"
    assert sphinx_ext._toggle_context("test", "2b", "x = 1", cell, "Ch") == "for Exercise 2b"
    assert sphinx_ext._toggle_context(None, None, "# Load the data set\nx = 1", cell, "Ch") == "for: Load the data set"
    section = nodes.section("", nodes.title(text="4.2 Results"), cell)
    assert section is not None
    assert sphinx_ext._toggle_context(None, None, "x = 1", cell, "Ch") == "in section “4.2 Results”"


def test_content_images_load_lazily_once():
    body = '<p><img alt="a" src="x.png"/></p><img loading="eager" src="y.png"/>'
    out = sphinx_ext.lazy_images(body)
    assert out == '<p><img loading="lazy" alt="a" src="x.png"/></p><img loading="eager" src="y.png"/>'
    assert sphinx_ext.lazy_images(out) == out


def test_icon_codepoints_keep_used_classes_and_theme_icons():
    css = ('.fa-bars:before,.fa-navicon:before{content:"\\f0c9"}.fa-rocket:before{content:"\\f135"}'
           '@media (min-width:960px){.fa-moon:before{content:"\\f186"}}'
           ':root{--pst-icon-bell:"\uf0f3"}.admonition>.admonition-title:after{content:"\\f05a"}'
           '.fa-solid,.fas{font-weight:900}')
    assert sphinx_ext.icon_codepoints(css, {"fa-bars", "fa-moon"}) == {0xF0C9, 0xF186, 0xF0F3, 0xF05A}
    assert sphinx_ext.icon_codepoints(css, set()) == {0xF0F3, 0xF05A}
