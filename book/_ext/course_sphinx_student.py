"""Sphinx extension: the book's Colab button and notebook download lead to the student notebooks.

The book is built from the master notebooks ``notebooks/NN_slug.ipynb``, which
hold the solutions and the hidden tests. For every chapter page with a student
version ``student/NN_slug.ipynb`` (written by ``grading/make_student.py``):

- the launch buttons open ``student/NN_slug.ipynb`` instead of the master:
  Colab (``.../blob/<branch>/student/NN_slug.ipynb``), Binder
  (``...?urlpath=tree/student/NN_slug.ipynb``) and JupyterHub through
  nbgitpuller (``...&urlpath=tree/<repo>/student/NN_slug.ipynb``), whichever
  ``_config.yml``'s ``launch_buttons`` turns on (see :func:`student_launch_url`);
- the download menu gets "student .ipynb", a link to the student notebook in
  the repository (``<repository url>/raw/<branch>/student/NN_slug.ipynb``):
  no notebook is copied into the site;
- (``course_sphinx_ext`` removes the master's own .ipynb/.md downloads.)

Enabled in ``_config.yml`` under ``sphinx.local_extensions`` (it lives in ``book/_ext/``, beside
``course_sphinx_ext``).
"""

from __future__ import annotations

import pathlib

__all__ = ["setup", "student_launch_url"]

_MASTER_DIR, _STUDENT_DIR = "notebooks", "student"


def _student_notebook(app, pagename: str) -> pathlib.Path | None:
    """The student notebook of a chapter page ``notebooks/<stem>``, or None."""
    if not pagename.startswith(_MASTER_DIR + "/"):
        return None
    path = pathlib.Path(app.srcdir) / _STUDENT_DIR / (pagename.split("/", 1)[1] + ".ipynb")
    return path if path.is_file() else None


def _point_at_students(app, pagename, templatename, context, doctree) -> None:
    student = _student_notebook(app, pagename)
    if student is None:
        return
    master_rel, student_rel = f"{pagename}.ipynb", f"{_STUDENT_DIR}/{student.name}"
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            for button in group.get("buttons", []):
                if "url" in button:
                    button["url"] = student_launch_url(button["url"], master_rel, student_rel)
        if group.get("label") == "download-buttons":
            group["buttons"].insert(0, {
                "type": "link",
                "url": _raw_url(app, student_rel),
                "text": "student .ipynb",
                "tooltip": "Download the student notebook (exercises to do, public tests)",
                "icon": "fas fa-code",
                "label": "download-student-notebook-button",
            })


def student_launch_url(url: str, master_rel: str, student_rel: str) -> str:
    """A launch URL (Colab, Binder, JupyterHub, Deepnote) with the master's repository path made the student's.

    sphinx-book-theme writes the notebook's path relative to the repository
    (``notebooks/NN_slug.ipynb``) in the URL's path (Colab: ``/blob/<branch>/<path>``),
    in a ``urlpath`` query parameter (Binder: ``urlpath=tree/<path>``; JupyterHub's
    nbgitpuller link: ``urlpath=tree/<repo>/<path>``, ``/`` left unescaped) or
    percent-encoded (Deepnote: ``%2F``). Each form becomes the student path; a URL
    that does not name the master is returned unchanged.
    """
    for old, new in ((master_rel, student_rel),
                     (master_rel.replace("/", "%2F"), student_rel.replace("/", "%2F")),
                     (master_rel.replace("/", "%2f"), student_rel.replace("/", "%2F"))):
        url = url.replace(old, new)
    return url


def _raw_url(app, path: str) -> str:
    """``<repository url>/raw/<branch>/<path>`` from ``html_theme_options`` (Jupyter Book's ``repository:``)."""
    opts = app.config.html_theme_options or {}
    repo = str(opts.get("repository_url", "")).rstrip("/")
    branch = opts.get("repository_branch") or "main"
    return f"{repo}/raw/{branch}/{path}" if repo else path


def setup(app):
    # after sphinx-book-theme adds its buttons (priority 501), before course_sphinx_ext cleans them (900)
    app.connect("html-page-context", _point_at_students, priority=800)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
