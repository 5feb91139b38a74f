#!/usr/bin/env python3
"""Grade a folder of submissions locally, without Docker, and write a gradebook CSV.

Each submission (a student's ``.ipynb``, or the ``.zip`` that ``grader.export()``
wrote) is graded with ``otter run`` against the chapter's autograder zip, in
this Python environment: install the packages of ``grading/requirements.txt``
first (``pip install -r grading/requirements.txt otter-grader==<version>``;
in a clone of this repository ``pip install -e .`` is enough). Training cells
are skipped at grading, so one submission takes seconds.

Usage::

    python grading/grade_local.py --autograder dist/04_reinforce/autograder/04_reinforce-autograder.zip \\
        --submissions submissions/04_reinforce --out grades/04_reinforce [--jobs 2] [--force]

Writes ``<out>/gradebook.csv`` (one row per submission: file, one column per
question, total, possible, seconds, error) and ``<out>/results/<file>.json``
(otter's full results, with the feedback of every test).
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor


def grade_one(submission: pathlib.Path, autograder: pathlib.Path, results_dir: pathlib.Path) -> dict:
    """Run ``otter run`` on one submission; return a gradebook row (scores per question, total, error)."""
    row: dict = {"file": submission.name}
    tic = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="grade_") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "otter", "run", "-a", str(autograder), "-o", tmp, "--no-logo", str(submission)],
            capture_output=True, text=True, cwd=tmp,
        )
        row["seconds"] = round(time.perf_counter() - tic, 1)
        results_file = pathlib.Path(tmp) / "results.json"
        if done.returncode != 0 or not results_file.is_file():
            lines = (done.stderr or done.stdout).strip().splitlines()
            row["error"] = lines[-1] if lines else f"otter run exited with {done.returncode}"
            return row
        results = json.loads(results_file.read_text())
    (results_dir / f"{submission.name}.json").write_text(json.dumps(results, indent=1))
    for test in results["tests"]:
        if "score" in test and test["name"] != "Public Tests":
            row[test["name"]] = test["score"]
            row.setdefault("possible", 0.0)
            row["possible"] += float(test.get("max_score") or 0.0)
    row["total"] = results.get("score", sum(v for k, v in row.items() if k.startswith("q") and isinstance(v, (int, float))))
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grade_local.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--autograder", required=True, help="the chapter's autograder zip (make student writes it)")
    parser.add_argument("--submissions", required=True, help="folder of .ipynb or .zip submissions")
    parser.add_argument("--out", required=True, help="folder for gradebook.csv and results/ (created)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing gradebook.csv")
    args = parser.parse_args(argv)

    def fail(message: str) -> int:
        print(f"grade_local: error: {message}", file=sys.stderr)
        return 2

    autograder, folder, out = pathlib.Path(args.autograder), pathlib.Path(args.submissions), pathlib.Path(args.out)
    if not autograder.is_file() or autograder.suffix != ".zip":
        return fail(f"--autograder {args.autograder} is not a zip file (run `make student` to build it)")
    if not folder.is_dir():
        return fail(f"--submissions {args.submissions} is not a folder")
    if out.exists() and not out.is_dir():
        return fail(f"--out {args.out} is a file, not a folder")
    if (out / "gradebook.csv").exists() and not args.force:
        return fail(f"{out / 'gradebook.csv'} exists; pass --force to overwrite it")
    if args.jobs < 1:
        return fail(f"--jobs must be at least 1, got {args.jobs}")
    submissions = sorted(p for p in folder.iterdir() if p.suffix in (".ipynb", ".zip"))
    if not submissions:
        return fail(f"no .ipynb or .zip file in {args.submissions}")
    (out / "results").mkdir(parents=True, exist_ok=True)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda s: grade_one(s.resolve(), autograder.resolve(), out / "results"), submissions))
    questions = sorted({k for r in rows for k in r if k.startswith("q")}, key=lambda q: (len(q), q))
    columns = ["file", *questions, "total", "possible", "seconds", "error"]
    with open(out / "gradebook.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    for r in rows:
        status = f"error: {r['error']}" if "error" in r else f"{r['total']:g} / {r['possible']:g}"
        print(f"{r['file']}: {status} ({r['seconds']} s)")
    print(f"gradebook: {out / 'gradebook.csv'}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
