"""Sphinx extension: the book's Colab button and notebook download lead to the student notebooks.

The book is built from the master notebooks ``notebooks/NN_slug.ipynb``, which
hold the solutions and the hidden tests. For every chapter page with a student
version ``student/NN_slug.ipynb`` (written by ``grading/make_student.py``):

- the launch buttons (Colab, and Binder/JupyterHub if configured) open
  ``student/NN_slug.ipynb`` instead of the master;
- the download menu gets "student .ipynb", a link to the student notebook in
  the repository (``<repository url>/raw/<branch>/student/NN_slug.ipynb``):
  no notebook is copied into the site;
- (``course_sphinx_ext`` removes the master's own .ipynb/.md downloads.)

Enabled in ``_config.yml`` under ``sphinx.local_extensions`` (it lives in ``book/_ext/``, beside
``course_sphinx_ext``).
"""

from __future__ import annotations

import pathlib

__all__ = ["setup"]

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
                    button["url"] = button["url"].replace(master_rel, student_rel).replace(
                        master_rel.replace("/", "%2F"), student_rel.replace("/", "%2F"))
        if group.get("label") == "download-buttons":
            group["buttons"].insert(0, {
                "type": "link",
                "url": _raw_url(app, student_rel),
                "text": "student .ipynb",
                "tooltip": "Download the student notebook (exercises to do, public tests)",
                "icon": "fas fa-code",
                "label": "download-student-notebook-button",
            })


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
