#!/usr/bin/env python3
"""Check the built HTML: no hidden test, otter or nbval marker is shown; solutions are collapsed behind "Show solution".

Usage: ``python scripts/check_book.py _build/html``. Exits non-zero and lists
the problems when a check fails.
"""

from __future__ import annotations

import pathlib
import re
import sys

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
from make_student import is_master, solution_cells  # noqa: E402  (grading/make_student.py)


def problems_for(master: pathlib.Path, html_dir: pathlib.Path) -> list[str]:
    page = html_dir / "notebooks" / f"{master.stem}.html"
    if not page.exists():
        return [f"{page} was not built"]
    html = page.read_text()
    found = []
    n_solutions = sum(len(cells) for cells in solution_cells(master).values())
    for cell in nbformat.read(master, as_version=4).cells:
        if cell.cell_type == "code" and "hidden: true" in cell.source:
            for name in re.findall(r"def (test_\w+)", cell.source):
                if name in html:
                    found.append(f"{page.name}: hidden test {name} is visible")
    for marker in ("ASSIGNMENT CONFIG", "BEGIN QUESTION", "BEGIN TESTS", "BEGIN SOLUTION", "END SOLUTION",
                   "NBVAL_CHECK_OUTPUT"):
        if marker in html:
            found.append(f"{page.name}: otter/nbval marker '{marker}' is visible")
    collapsed = html.count("tag_hide-input")
    if collapsed < n_solutions:
        found.append(f"{page.name}: {n_solutions} solutions but only {collapsed} collapsed cells")
    toggles = html.count(">Show solution<")
    if toggles < n_solutions:
        found.append(f"{page.name}: {n_solutions} solutions but only {toggles} 'Show solution' toggles")
    copy = html_dir / "_sources" / "notebooks" / master.name
    if copy.exists():
        found.append(f"{copy}: the master notebook (solutions, hidden tests) is published")
    return found


def main(html_dir: str) -> int:
    html_dir = pathlib.Path(html_dir)
    masters = [m for m in sorted((ROOT / "notebooks").glob("*.ipynb")) if is_master(m)]
    problems = [p for m in masters for p in problems_for(m, html_dir)]
    for p in problems:
        print("check_book:", p)
    print(f"check_book: {len(masters)} chapters with exercises checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "_build/html"))
