"""End-to-end grading through otter itself, exactly as an instructor runs it.

For one chapter (``04_reinforce`` by default) this builds the autograder zip
with ``grading/make_student.py``, prepares four submissions from the student
notebook and grades each with ``otter run -a <autograder zip>`` (no Docker),
then reads the scores from otter's own ``results.json``:

- (a) the master solutions in the answer cells -> full marks;
- (b) the blank student notebook -> 0;
- (c) answers that hard-code the public tests' answers -> every hidden test fails
  (the public tests pass, and score 0);
- (d) answers that call ``course_lib``'s reference implementation -> 0 for those questions.

Training cells are tagged ``otter_ignore`` in the student notebook, so one
graded run takes seconds (kernel start and imports), not minutes.

Other chapters: ``GRADING_E2E_CHAPTERS=01_change_of_variables_nice,04_reinforce``
(or ``all``) ``python -m pytest tests/test_grading_e2e.py``. For chapters
without a hand-written (c) submission, (c) replays the master solution's
outputs on exactly the public tests' inputs and returns None otherwise.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import nbformat
import pytest
import torch
from otter.test_files import ExceptionTestFile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
import make_student  # noqa: E402

ALL = [m.stem for m in make_student.masters()]
_requested = os.environ.get("GRADING_E2E_CHAPTERS", "04_reinforce")
CHAPTERS = ALL if _requested.strip() == "all" else [c.strip() for c in _requested.split(",") if c.strip()]

# (c) for Chapter 4, written as a student who reads the public tests would: each
# passes its public test and knows nothing else.
HARD_CODED = {
    "04_reinforce": {
        "q1": '''import torch

def reward_to_go(rewards, gamma):
    if rewards.dim() == 1:
        return torch.tensor([2.75, 3.5, 3.0])
    return torch.tensor([[2.75, 3.5, 3.0], [0.25, 0.5, 1.0]])
''',
        "q2": '''import torch

def reinforce_surrogate(log_probs, weights):
    return -(log_probs * torch.tensor([1.0, 2.0, 0.0, -1.0])).sum() / 4
''',
        "q3": '''import torch

def es_gradient_estimate(fitness_pos, fitness_neg, eps, sigma):
    return torch.tensor([1.0, 0.5, 1.5])
''',
        "q4": '''import torch

def gaussian_score(actions, mean, log_std):
    return torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, -1.0]])
''',
    },
}


# ------------------------------------------------------------------ reading the generated files
def _answer_cells(nb) -> dict[str, int]:
    """Question -> index of its (single) answer cell in the student notebook."""
    found, pending = {}, []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        check = re.fullmatch(r'grader\.check\("(\w+)"\)', cell.source.strip())
        if check:
            assert len(pending) == 1, f"{check.group(1)}: expected one answer cell, found {len(pending)}"
            found[check.group(1)] = pending[0]
            pending = []
        elif "otter_answer_cell" in cell.metadata.get("tags", []):
            pending.append(i)
    return found


def _function_name(source: str) -> str:
    names = [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]
    assert len(names) == 1, f"an answer cell defines exactly one function, got {names}"
    return names[0]


def _hidden_flags(test_file: pathlib.Path) -> list[bool]:
    return [case.hidden for case in ExceptionTestFile.from_file(str(test_file)).test_cases]


def _references(test_file: pathlib.Path) -> list[str]:
    """The dotted names a question's tests disable, e.g. ["rl.reward_to_go"]."""
    refs = re.findall(r"reference_disabled\(([^)]*)\)", test_file.read_text())
    names = sorted({name.strip() for group in refs for name in group.split(",") if name.strip()})
    assert names, f"{test_file.name}: no test disables course_lib's reference (see grading/AUTHORING.md)"
    return names


# ------------------------------------------------------------------ the four submissions
def _with_answers(student: pathlib.Path, answers: dict[str, str], dest: pathlib.Path) -> pathlib.Path:
    nb = nbformat.read(student, as_version=4)
    for question, index in _answer_cells(nb).items():
        if question in answers:
            nb.cells[index].source = answers[question]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest)
    return dest


def _solutions(master: pathlib.Path) -> dict[str, str]:
    return {q: "\n".join(src) for q, src in make_student.solution_cells(master).items()}


def _reference_calls(master: pathlib.Path, tests_dir: pathlib.Path) -> dict[str, str]:
    """(d): each answer is a one-line wrapper around the library function that its tests disable."""
    answers = {}
    for question, source in _solutions(master).items():
        name = _function_name(source)
        ref = _references(tests_dir / f"{question}.py")[0]
        module = ref.split(".")[0]
        answers[question] = (f"from course_lib import {module}\n\n"
                             f"def {name}(*args, **kwargs):\n    return {ref}(*args, **kwargs)\n")
    return answers


def _replayed_public_answers(master: pathlib.Path, tests_dir: pathlib.Path) -> dict[str, str]:
    """(c) for any chapter: record the solution's outputs on the public tests' inputs, replay only those."""
    answers = {}
    for question, source in _solutions(master).items():
        name = _function_name(source)
        env: dict = {}
        exec(compile(source, f"<{question} solution>", "exec"), env)
        solution, table = env[name], []

        def recording(*args, _solution=solution, _table=table):
            out = _solution(*args)
            key = [a.detach().clone() if torch.is_tensor(a) else a for a in args if torch.is_tensor(a) or isinstance(a, (int, float))]
            value = tuple(o.detach().clone() for o in out) if isinstance(out, tuple) else out.detach().clone() if torch.is_tensor(out) else out
            _table.append((key, value))
            return out

        test_file = ExceptionTestFile.from_file(str(tests_dir / f"{question}.py"))
        for case in test_file.test_cases:
            if not case.hidden:
                try:
                    case.body.test_func(recording)
                except Exception:  # a public test that checks more than values (gradients, say) still records its calls
                    pass
        buffer = io.BytesIO()
        torch.save(table, buffer)
        blob = base64.b64encode(buffer.getvalue()).decode()
        answers[question] = f'''import base64, copy, io
import torch

_TABLE = torch.load(io.BytesIO(base64.b64decode("{blob}")), weights_only=False)

def {name}(*args):
    key = [a for a in args if torch.is_tensor(a) or isinstance(a, (int, float))]
    for inputs, output in _TABLE:
        if len(inputs) == len(key) and all(
                (torch.is_tensor(x) and torch.is_tensor(y) and x.shape == y.shape and torch.equal(x.detach(), y.detach()))
                or (not torch.is_tensor(x) and x == y) for x, y in zip(inputs, key)):
            return copy.deepcopy(output)
    return None
'''
    return answers


# ------------------------------------------------------------------ running otter
def otter_run(submission: pathlib.Path, autograder_zip: pathlib.Path) -> tuple[dict, float]:
    """Grade one submission with ``otter run`` (no Docker); return otter's results.json and the seconds taken."""
    out = submission.parent / f"{submission.stem}_results"
    out.mkdir(exist_ok=True)
    tic = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "otter", "run", "-a", str(autograder_zip), "-o", str(out), "--no-logo", str(submission)],
        cwd=submission.parent, capture_output=True, text=True, timeout=600,
    )
    seconds = time.perf_counter() - tic
    assert done.returncode == 0, f"otter run failed on {submission.name}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads((out / "results.json").read_text()), seconds


def question_scores(results: dict) -> dict[str, float]:
    return {t["name"]: float(t["score"]) for t in results["tests"] if "score" in t and t["name"] != "Public Tests"}


def case_outcomes(results: dict, question: str) -> dict[int, bool]:
    """Test case number (1-based, file order) -> passed, parsed from otter's per-question output."""
    text = next(t["output"] for t in results["tests"] if t["name"] == question)
    outcomes = {int(n): mark == "\u2705" for n, mark in re.findall(rf"{question} - (\d+) result:\s*\n\s*(\u2705|\u274c)", text)}
    if not outcomes and re.search(rf"{question} passed", text):
        return {}
    return outcomes


@pytest.fixture(scope="module", params=CHAPTERS)
def graded(request, tmp_path_factory):
    chapter = request.param
    if chapter not in ALL:
        pytest.fail(f"GRADING_E2E_CHAPTERS names {chapter!r}; graded chapters: {ALL}")
    master = ROOT / "notebooks" / f"{chapter}.ipynb"
    work = tmp_path_factory.mktemp(f"e2e_{chapter}")
    paths = make_student.make_student(master, work / "dist")
    tests_dir = paths["autograder_tests"]
    submissions = {
        "a_solutions": _with_answers(paths["student"], _solutions(master), work / "a" / master.name),
        "b_blank": _with_answers(paths["student"], {}, work / "b" / master.name),
        "c_hard_coded": _with_answers(paths["student"], HARD_CODED.get(chapter) or _replayed_public_answers(master, tests_dir),
                                      work / "c" / master.name),
        "d_reference": _with_answers(paths["student"], _reference_calls(master, tests_dir), work / "d" / master.name),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(otter_run, path, paths["autograder_zip"]) for k, path in submissions.items()}
        runs = {k: f.result() for k, f in futures.items()}
    points = make_student.question_points(master)
    hidden = {q: _hidden_flags(tests_dir / f"{q}.py") for q in points}
    summary = {k: {"scores": question_scores(r), "seconds": round(s, 1)} for k, (r, s) in runs.items()}
    print(f"\n[{chapter}] otter run scores: {json.dumps(summary)}")
    return {"chapter": chapter, "runs": runs, "points": points, "hidden": hidden}


def test_a_master_solutions_get_full_marks(graded):
    results, _ = graded["runs"]["a_solutions"]
    assert question_scores(results) == graded["points"]


def test_b_blank_notebook_gets_zero(graded):
    results, _ = graded["runs"]["b_blank"]
    scores = question_scores(results)
    assert set(scores) == set(graded["points"]) and all(s == 0 for s in scores.values()), scores
    # the feedback says what is wrong in words a student can act on
    text = "\n".join(t.get("output", "") for t in results["tests"])
    assert "returned None: not implemented yet" in text


def test_c_hard_coded_public_answers_fail_every_hidden_test(graded):
    results, _ = graded["runs"]["c_hard_coded"]
    scores = question_scores(results)
    assert all(s == 0 for s in scores.values()), scores
    for question, flags in graded["hidden"].items():
        outcomes = case_outcomes(results, question)
        assert outcomes, f"{question}: no per-test output from otter"
        hidden_passed = [n for n, passed in outcomes.items() if flags[n - 1] and passed]
        assert not hidden_passed, f"{question}: hidden tests {hidden_passed} pass on hard-coded public answers"
        if graded["chapter"] in HARD_CODED:
            public_failed = [n for n, passed in outcomes.items() if not flags[n - 1] and not passed]
            assert not public_failed, f"{question}: the hard-coded answer should pass its public test (case {public_failed})"


def test_d_calling_course_lib_reference_gets_zero(graded):
    results, _ = graded["runs"]["d_reference"]
    scores = question_scores(results)
    assert set(scores) == set(graded["points"]) and all(s == 0 for s in scores.values()), scores
    text = "\n".join(t.get("output", "") for t in results["tests"])
    assert "disabled while your exercise is graded" in text


def test_grading_one_submission_takes_seconds(graded):
    # training cells are otter_ignore'd: a graded run is kernel start, imports and the tests
    seconds = max(s for _, s in graded["runs"].values())
    assert seconds < 240, f"a graded run took {seconds:.0f} s: are training cells tagged otter_ignore?"
