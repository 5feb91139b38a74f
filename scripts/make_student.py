#!/usr/bin/env python3
"""Generate student versions and autograder zips from the master chapter notebooks.

For every notebook in ``notebooks/`` that has an ``# ASSIGNMENT CONFIG`` cell:

1. ``otter assign`` writes ``<out>/<chapter>/student/`` (solutions replaced by
   ``...``, hidden tests removed) and ``<out>/<chapter>/autograder/`` (all
   tests, and the autograder zip for Gradescope or ``otter grade``).
2. The student notebook gets a first cell that installs ``course_lib`` and
   ``otter-grader`` when they are missing (Colab) and writes the public tests
   into ``./tests``, where ``otter.Notebook()`` looks for them; and the
   book-only cell tags (collapsed/removed cells) are dropped.

Usage: ``python scripts/make_student.py [--out dist] [notebook ...]``
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
REPO_URL = "https://github.com/dgm-drl-book/course-book"
BOOK_ONLY_TAGS = {"hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell"}
SETUP_TAG = "student-setup"

SETUP_TEMPLATE = '''\
# Setup for Colab or any fresh Python: install course_lib and otter-grader if they
# are missing, then write this chapter's public tests to ./tests for otter.Notebook().
import importlib.util, os, subprocess, sys
_missing = [pkg for mod, pkg in (("course_lib", "git+{repo}"), ("otter", "otter-grader"))
            if importlib.util.find_spec(mod) is None]
if _missing:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *_missing], check=True)
PUBLIC_TESTS = {tests}
os.makedirs("tests", exist_ok=True)
for _name, _text in PUBLIC_TESTS.items():
    with open(os.path.join("tests", _name), "w") as _f:
        _f.write(_text)
print("course_lib and otter-grader ready;", len(PUBLIC_TESTS), "public test files in ./tests")
'''


def is_master(path: pathlib.Path) -> bool:
    """True when the notebook starts an otter assignment (an ``# ASSIGNMENT CONFIG`` raw cell)."""
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "raw" and c.source.lstrip().startswith("# ASSIGNMENT CONFIG") for c in nb.cells)


def solution_cells(master: pathlib.Path) -> dict[str, list[str]]:
    """Question name -> source of its solution code cells, read from otter's raw markers."""
    nb = nbformat.read(master, as_version=4)
    sols: dict[str, list[str]] = {}
    question, in_solution = None, False
    for cell in nb.cells:
        src = cell.source.strip()
        if cell.cell_type == "raw" and src.startswith("# BEGIN QUESTION"):
            question = re.search(r"name:\s*(\S+)", src).group(1)
            sols[question] = []
        elif cell.cell_type == "raw" and src.startswith("# BEGIN SOLUTION"):
            in_solution = True
        elif cell.cell_type == "raw" and src.startswith("# END SOLUTION"):
            in_solution = False
        elif in_solution and cell.cell_type == "code":
            sols[question].append(cell.source)
    return sols


def setup_cell(tests_dir: pathlib.Path) -> nbformat.NotebookNode:
    """The first cell of a student notebook, with the public tests embedded."""
    tests = {p.name: p.read_text() for p in sorted(tests_dir.glob("*.py"))}
    body = "{\n" + "".join(f"    {name!r}: {text!r},\n" for name, text in tests.items()) + "}"
    cell = nbformat.v4.new_code_cell(SETUP_TEMPLATE.format(repo=REPO_URL, tests=body))
    cell.metadata["tags"] = [SETUP_TAG]
    return cell


def make_student(master: pathlib.Path, out: pathlib.Path) -> dict[str, pathlib.Path]:
    """Run otter assign on one master notebook and post-process the student notebook.

    Returns:
        Paths: ``student`` (notebook), ``student_tests`` (public tests folder),
        ``autograder_tests`` (all tests), ``autograder_zip``.

    Raises:
        subprocess.CalledProcessError: when otter assign fails.
    """
    dest = out / master.stem
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    subprocess.run(
        [sys.executable, "-m", "otter", "assign", "-v", str(master), str(dest)],
        check=True, cwd=master.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    student = dest / "student" / master.name
    nb = nbformat.read(student, as_version=4)
    for cell in nb.cells:
        tags = [t for t in cell.metadata.get("tags", []) if t not in BOOK_ONLY_TAGS]
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
    nb.cells.insert(0, setup_cell(dest / "student" / "tests"))
    nbformat.write(nb, student)
    zips = sorted((dest / "autograder").glob("*.zip"))
    return {
        "student": student,
        "student_tests": dest / "student" / "tests",
        "autograder_tests": dest / "autograder" / "tests",
        "autograder_zip": zips[-1] if zips else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="dist", help="output folder (default: dist)")
    parser.add_argument("notebooks", nargs="*", help="master notebooks (default: every one in notebooks/)")
    args = parser.parse_args()
    masters = [pathlib.Path(p).resolve() for p in args.notebooks] or sorted((ROOT / "notebooks").glob("*.ipynb"))
    out = pathlib.Path(args.out).resolve()
    for master in masters:
        if not is_master(master):
            print(f"skip {master.name}: no '# ASSIGNMENT CONFIG' cell")
            continue
        paths = make_student(master, out)
        print(json.dumps({k: str(v) for k, v in paths.items()}))


if __name__ == "__main__":
    sys.exit(main())
