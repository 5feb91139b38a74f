"""Graded exercises, checked directly on the test files (fast; `test_grading_e2e.py` goes through otter):

(a) solutions pass every test, (b) blank stubs fail every test with "returned None: not
implemented yet", (c) no solution or hidden test leaks into a student file, (d) a blank
student notebook still runs top to bottom, falling back visibly to course_lib, (e) an
answer that wraps course_lib's reference fails every test, (f) the committed student/
notebooks are up to date and follow the authoring rules (grading/AUTHORING.md)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import sys

import nbformat
import pytest
from otter.test_files import ExceptionTestFile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
import make_student  # noqa: E402

MASTERS = [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if make_student.is_master(p)]


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    """Run the instructors' command once per master notebook."""
    out = tmp_path_factory.mktemp("dist")
    return {m.stem: make_student.make_student(m, out) for m in MASTERS}


def _reference_wrappers(master: pathlib.Path, tests_dir: pathlib.Path) -> dict[str, list[str]]:
    """Question -> an answer that only calls the library function its tests disable."""
    answers = {}
    for q, sources in make_student.solution_cells(master).items():
        name = re.search(r"^def (\w+)\(", "\n".join(sources), flags=re.M).group(1)
        refs = re.findall(r"reference_disabled\(([^)]*)\)", (tests_dir / f"{q}.py").read_text())
        ref = refs[0].split(",")[0].strip()
        module = ref.split(".")[0]
        answers[q] = [f"from course_lib import {module}\ndef {name}(*args, **kwargs):\n    return {ref}(*args, **kwargs)\n"]
    return answers


def _student_answers(student: pathlib.Path) -> dict[str, list[str]]:
    """Question name -> source of the answer cells that precede its grader.check cell."""
    nb = nbformat.read(student, as_version=4)
    answers: dict[str, list[str]] = {}
    pending: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        check = re.fullmatch(r'grader\.check\("(\w+)"\)', cell.source.strip())
        if check:
            answers[check.group(1)] = pending
            pending = []
        elif "otter_answer_cell" in cell.metadata.get("tags", []):
            pending.append(cell.source)
    return answers


def _run_tests(sources: list[str], test_file: pathlib.Path):
    env: dict = {}
    for src in sources:
        exec(compile(src, "<exercise>", "exec"), env)
    tf = ExceptionTestFile.from_file(str(test_file))
    tf.run(env)
    return tf.test_case_results


def _cases():
    for master in MASTERS:
        for q in make_student.solution_cells(master):
            yield pytest.param(master.stem, q, id=f"{master.stem}-{q}")


def test_every_chapter_with_exercises_has_at_least_three():
    assert MASTERS, "no master notebook found"
    for master in MASTERS:
        assert len(make_student.solution_cells(master)) >= 3, master.name


@pytest.mark.parametrize("chapter,question", list(_cases()))
def test_a_solutions_pass_public_and_hidden_tests(generated, chapter, question):
    master = ROOT / "notebooks" / f"{chapter}.ipynb"
    results = _run_tests(make_student.solution_cells(master)[question], generated[chapter]["autograder_tests"] / f"{question}.py")
    hidden = [r for r in results if r.test_case.hidden]
    public = [r for r in results if not r.test_case.hidden]
    assert public and hidden, "each exercise needs public and hidden tests"
    failed = [(r.test_case.name, r.message) for r in results if not r.passed]
    assert not failed, failed


@pytest.mark.parametrize("chapter,question", list(_cases()))
def test_b_blank_student_stub_fails_every_test(generated, chapter, question):
    answers = _student_answers(generated[chapter]["student"])
    assert answers.get(question), f"no answer cell found for {question}"
    results = _run_tests(answers[question], generated[chapter]["autograder_tests"] / f"{question}.py")
    vacuous = [r.test_case.name for r in results if r.passed]
    assert not vacuous, f"these tests pass on the blank stub, so they test nothing: {vacuous}"
    unhelpful = [r.test_case.name for r in results if "returned None: not implemented yet" not in (r.message or "")]
    assert not unhelpful, f"on a blank answer these tests must say 'returned None: not implemented yet' (grading.check_close): {unhelpful}"


@pytest.mark.parametrize("chapter,question", list(_cases()))
def test_e_wrapping_the_reference_fails_every_test(generated, chapter, question):
    master = ROOT / "notebooks" / f"{chapter}.ipynb"
    tests_dir = generated[chapter]["autograder_tests"]
    text = (tests_dir / f"{question}.py").read_text()
    n_cases = len(ExceptionTestFile.from_file(str(tests_dir / f"{question}.py")).test_cases)
    assert text.count("reference_disabled(") >= n_cases, "every test calls the student's function inside grading.reference_disabled"
    results = _run_tests(_reference_wrappers(master, tests_dir)[question], tests_dir / f"{question}.py")
    passed = [r.test_case.name for r in results if r.passed]
    assert not passed, f"an answer that calls course_lib's reference passes {passed}"


@pytest.mark.parametrize("chapter", [m.stem for m in MASTERS])
def test_f_points_from_hidden_tests_only(generated, chapter):
    for test_file in sorted(generated[chapter]["autograder_tests"].glob("*.py")):
        cases = ExceptionTestFile.from_file(str(test_file)).test_cases
        public = [c for c in cases if not c.hidden]
        assert public and all(c.points == 0 for c in public), f"{test_file.name}: public tests are worth 0 points"


def test_f_committed_student_notebooks_are_up_to_date():
    assert make_student.main(["--check"]) == 0, "run `make student` and commit student/"


@pytest.mark.parametrize("chapter", [m.stem for m in MASTERS])
def test_c_no_solution_or_hidden_test_in_student_files(generated, chapter):
    master = ROOT / "notebooks" / f"{chapter}.ipynb"
    student_dir = generated[chapter]["student"].parent
    student_text = "\n".join(p.read_text() for p in student_dir.rglob("*") if p.is_file())

    solution_lines = []
    for sources in make_student.solution_cells(master).values():
        for src in sources:
            block = re.findall(r"# BEGIN SOLUTION\n(.*?)# END SOLUTION", src, flags=re.S)
            for line in "\n".join(block).splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    solution_lines.append(line)
    assert solution_lines
    leaked = [line for line in solution_lines if line in student_text]
    assert not leaked, f"solution lines in student files: {leaked}"

    hidden_names = []
    for test_file in generated[chapter]["autograder_tests"].glob("*.py"):
        hidden_names += [c.name for c in ExceptionTestFile.from_file(str(test_file)).test_cases if c.hidden]
    assert hidden_names
    assert not [n for n in hidden_names if n in student_text], "hidden test names in student files"
    assert "hidden=True" not in student_text


@pytest.mark.skipif(os.environ.get("COURSE_RUN_STUDENT_NOTEBOOKS") != "1",
                    reason="executes every chapter a third time (after nbval and the book); set COURSE_RUN_STUDENT_NOTEBOOKS=1 before a release")
@pytest.mark.parametrize("chapter", [m.stem for m in MASTERS])
def test_d_blank_student_notebook_runs_and_falls_back(generated, chapter, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    student_dir = tmp_path / "student"
    shutil.copytree(generated[chapter]["student"].parent, student_dir)
    shutil.rmtree(student_dir / make_student.PUBLIC_TESTS_DIR)  # the notebook must write them itself, as in Colab
    monkeypatch.setenv("COURSE_PROFILE", "small")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(student_dir / generated[chapter]["student"].name, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(student_dir)}}).execute()
    outputs = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "stream"
    )
    n_questions = len(make_student.solution_cells(ROOT / "notebooks" / f"{chapter}.ipynb"))
    assert outputs.count("not done") >= n_questions, "each unfinished exercise must announce the fallback"
    assert sorted(p.name for p in (student_dir / make_student.PUBLIC_TESTS_DIR).glob("*.py")) == [f"q{i}.py" for i in range(1, n_questions + 1)]
    assert not (student_dir / "tests").exists(), "the student notebook must leave ./tests to otter's grading"
