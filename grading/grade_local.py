#!/usr/bin/env python3
"""Grade a folder of submissions locally, without Docker, and write a gradebook CSV.

Each submission (a student's ``.ipynb``, or the ``.zip`` that ``grader.export()``
wrote) is graded with ``otter run`` against the chapter's autograder zip, in
this Python environment: install the packages of ``grading/requirements.txt``
first (``pip install -r grading/requirements.txt otter-grader==<version>``;
in a clone of this repository ``pip install -e .`` is enough). The autograder
runs every answer in separate processes (``grading/sandbox.py``), with a time
limit per call, so one submission takes seconds.

Usage::

    python grading/grade_local.py --autograder dist/04_reinforce/autograder/04_reinforce-autograder.zip \\
        --submissions submissions/04_reinforce --out grades/04_reinforce [--jobs 2] [--force] \\
        [--time-limit 600] [--question-time-limit 10]

Writes ``<out>/gradebook.csv``: one row per submission, always (file, one
column per question, total, possible, seconds, error: why a submission has
no scores, e.g. "timed out after 600 s" or otter's last error line), rewritten
after every graded submission, so nothing is lost when one misbehaves or the
run is interrupted; ``<out>/results/<file>.json`` (otter's full results, with
the feedback of every test); and ``<out>/similarity.csv`` (answers that match
course_lib's reference or another submission up to names and formatting,
``grading/similarity.py``; ``--no-similarity`` skips it).

Exit status: 0 when every submission was graded, 1 when some have an error, 2
for bad arguments.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = pathlib.Path(__file__).resolve().parent


def _run(command: list[str], *, cwd: str, env: dict, seconds: float) -> tuple[int | None, str, str]:
    """Run ``command`` in its own session; kill the whole group after ``seconds``. None: it timed out."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=seconds)
        return process.returncode, out, err
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        out, err = process.communicate()
        return None, out, err
    finally:
        if process.poll() is None:
            process.kill()


def grade_one(submission: pathlib.Path, autograder: pathlib.Path, results_dir: pathlib.Path, *,
              time_limit: float = 600.0, question_time_limit: float | None = None) -> dict:
    """Run ``otter run`` on one submission; return a gradebook row (scores per question, total, error).

    The row always comes back: a submission that runs past ``time_limit``
    seconds (the whole ``otter run``, killed with its process group) or makes
    otter fail gets an ``error`` instead of scores.
    """
    row: dict = {"file": submission.name}
    tic = time.perf_counter()
    env = dict(os.environ)
    if question_time_limit:
        env["COURSE_GRADING_TIME_LIMIT"] = str(question_time_limit)
    try:
        with tempfile.TemporaryDirectory(prefix="grade_") as tmp:
            code, out, err = _run([sys.executable, "-m", "otter", "run", "-a", str(autograder), "-o", tmp,
                                   "--no-logo", str(submission)], cwd=tmp, env=env, seconds=time_limit)
            row["seconds"] = round(time.perf_counter() - tic, 1)
            results_file = pathlib.Path(tmp) / "results.json"
            if code is None:
                row["error"] = f"timed out after {time_limit:g} s (otter run was stopped)"
                return row
            if code != 0 or not results_file.is_file():
                lines = [line for line in (err or out or "").strip().splitlines() if line.strip()]
                row["error"] = lines[-1][:300] if lines else f"otter run exited with {code}"
                return row
            results = json.loads(results_file.read_text())
    except Exception as exc:  # a broken file, a full disk: this submission gets a row saying so
        row.setdefault("seconds", round(time.perf_counter() - tic, 1))
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return row
    (results_dir / f"{submission.name}.json").write_text(json.dumps(results, indent=1))
    for test in results.get("tests", []):
        if "score" in test and test.get("name") != "Public Tests":
            row[test["name"]] = test["score"]
            row.setdefault("possible", 0.0)
            row["possible"] += float(test.get("max_score") or 0.0)
    row["total"] = results.get("score", sum(v for k, v in row.items() if k.startswith("q") and isinstance(v, (int, float))))
    if "possible" not in row:
        row["error"] = "otter returned no scores: " + "; ".join(
            str(t.get("output", ""))[:200] for t in results.get("tests", []))[:300]
    return row


def write_gradebook(rows: list[dict], path: pathlib.Path) -> None:
    questions = sorted({k for r in rows for k in r if k.startswith("q")}, key=lambda q: (len(q), q))
    columns = ["file", *questions, "total", "possible", "seconds", "error"]
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(sorted(rows, key=lambda r: r["file"]))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grade_local.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--autograder", required=True, help="the chapter's autograder zip (make student writes it)")
    parser.add_argument("--submissions", required=True, help="folder of .ipynb or .zip submissions")
    parser.add_argument("--out", required=True, help="folder for gradebook.csv, similarity.csv and results/ (created)")
    parser.add_argument("--jobs", type=int, default=1, help="submissions graded at once (default 1)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing gradebook.csv")
    parser.add_argument("--time-limit", type=float, default=600.0,
                        help="seconds for one whole submission; past it otter run is killed and the row says so (default 600)")
    parser.add_argument("--question-time-limit", type=float, default=None,
                        help="seconds for one call of a student's function (default: the autograder's, 10)")
    parser.add_argument("--no-similarity", action="store_true", help="do not write similarity.csv")
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
    if args.time_limit <= 0 or (args.question_time_limit is not None and args.question_time_limit <= 0):
        return fail("time limits must be positive")
    submissions = sorted(p for p in folder.iterdir() if p.suffix in (".ipynb", ".zip"))
    if not submissions:
        return fail(f"no .ipynb or .zip file in {args.submissions}")
    (out / "results").mkdir(parents=True, exist_ok=True)
    gradebook = out / "gradebook.csv"

    rows: dict[str, dict] = {s.name: {"file": s.name, "error": "not graded yet"} for s in submissions}
    lock = threading.Lock()
    write_gradebook(list(rows.values()), gradebook)

    def job(submission: pathlib.Path) -> dict:
        row = grade_one(submission.resolve(), autograder.resolve(), out / "results",
                        time_limit=args.time_limit, question_time_limit=args.question_time_limit)
        with lock:
            rows[submission.name] = row
            write_gradebook(list(rows.values()), gradebook)
        status = f"error: {row['error']}" if "error" in row else f"{row['total']:g} / {row['possible']:g}"
        print(f"{row['file']}: {status} ({row.get('seconds', 0)} s)", flush=True)
        return row

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(job, submissions))
    except KeyboardInterrupt:
        with lock:
            for row in rows.values():
                if row.get("error") == "not graded yet":
                    row["error"] = "not graded (interrupted)"
            write_gradebook(list(rows.values()), gradebook)
        print(f"interrupted; gradebook so far: {gradebook}", file=sys.stderr)
        return 1
    print(f"gradebook: {gradebook}")
    if not args.no_similarity:
        sys.path.insert(0, str(HERE))
        try:
            import similarity

            flags, unreadable = similarity.check_folder(autograder, submissions)
            similarity.write_csv(flags, out / "similarity.csv")
            print(f"similarity: {len(flags)} flag(s) in {out / 'similarity.csv'}"
                  + "".join(f"\n  could not read {u}" for u in unreadable))
        except Exception as exc:  # the flags are a help, never a reason to lose the gradebook
            print(f"similarity: not written ({type(exc).__name__}: {exc})", file=sys.stderr)
    return 1 if any("error" in r for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
