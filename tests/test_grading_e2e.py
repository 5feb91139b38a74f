"""End-to-end grading through otter itself, exactly as an instructor runs it.

For one chapter (``04_reinforce`` by default) this builds the autograder zip
with ``grading/make_student.py``, prepares four submissions from the student
notebook and grades each with ``otter run -a <autograder zip>`` (no Docker),
then reads the scores from otter's own ``results.json``:

- (a) the master solutions in the answer cells -> full marks;
- (b) the blank student notebook -> 0;
- (c) answers that hard-code the public tests' answers -> every hidden test fails
  (the public tests pass, and score 0);
- (d) answers that call ``course_lib``'s reference implementation -> 0 for those questions;
- (e) every attack of issue 19, each aimed at the reference of its own question
  (copy the reference's code object, ``exec`` its source or its module's,
  ``importlib.reload`` its module, replace ``grading.reference_disabled`` or
  ``grading.check_close``, walk the caller's frames for ``expected``, patch
  otter's ``ExceptionTestFile.run``, read ``tests/qN.py``, read the real
  library's source by path, the chapter's other library routes) -> 0 on that
  question, and nothing of a hidden test in the visible output;
- (f) an endless loop in one answer -> 0 for that question within the time limit,
  full marks for the others; a runaway allocation likewise;
- (g) ``grading/grade_local.py`` writes a gradebook row for every submission of a
  folder that holds a looping and a broken one.

The autograder runs each answer in separate processes (``grading/sandbox.py``),
so one graded run takes seconds (kernel start, imports, one worker per test case).

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
    """The dotted names a question's tests disable, in the order written: the first is the question's own
    reference (Chapter 7's q1 disables rl.td_target first, then the routes around it)."""
    refs = re.findall(r"reference_disabled\(([^)]*)\)", test_file.read_text())
    names = []
    for group in refs:
        for name in (n.strip() for n in group.split(",")):
            if name and name not in names:
                names.append(name)
    assert names, f"{test_file.name}: no test disables course_lib's reference (see grading/AUTHORING.md)"
    return names


def _question_info(master: pathlib.Path, tests_dir: pathlib.Path) -> dict[str, dict]:
    """Question -> the student's function name, its own reference (``rl.reward_to_go``) and that module's name."""
    info = {}
    for question, source in _solutions(master).items():
        ref = _references(tests_dir / f"{question}.py")[0]
        info[question] = {"question": question, "name": _function_name(source), "ref": ref, "module": ref.split(".")[0]}
    return info


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
    """(d): each answer is a one-line wrapper around its own question's reference."""
    return {q: (f"from course_lib import {i['module']}\n\n"
                f"def {i['name']}(*args, **kwargs):\n    return {i['ref']}(*args, **kwargs)\n")
            for q, i in _question_info(master, tests_dir).items()}


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


# ------------------------------------------------------------------ (e) the attacks of issue 19
# Each builds one answer cell from the question's info: the student's function name, its own
# reference ("rl.reward_to_go") and that module's name ("rl").

def code_copy(q):
    """A copy of the reference's code object, bound to the student's name."""
    return f'''import types
from course_lib import {q["module"]}
_ref = {q["ref"]}
{q["name"]} = types.FunctionType(_ref.__code__, _ref.__globals__, "{q["name"]}", _ref.__defaults__, _ref.__closure__)
{q["name"]}.__kwdefaults__ = _ref.__kwdefaults__
'''

def exec_source(q):
    """``exec`` of the reference's module source, and of the function's own source."""
    return f'''import inspect, sys
from course_lib import {q["module"]}
_ref = {q["ref"]}
_ns = dict(vars(sys.modules[_ref.__module__]))
exec(inspect.getsource(sys.modules[_ref.__module__]), _ns)
_ns2 = dict(vars(sys.modules[_ref.__module__]))
exec(inspect.getsource(_ref), _ns2)

def {q["name"]}(*args, **kwargs):
    try:
        return _ns[_ref.__name__](*args, **kwargs)
    except NotImplementedError:
        return _ns2[_ref.__name__](*args, **kwargs)
'''

def reload(q):
    """A fresh copy of the reference's module by ``importlib.reload``."""
    return f'''import importlib, sys
from course_lib import {q["module"]}
_name = {q["ref"]}.__name__
_module = importlib.reload(sys.modules[{q["ref"]}.__module__])

def {q["name"]}(*args, **kwargs):
    return getattr(_module, _name)(*args, **kwargs)
'''

def patch_reference_disabled(q):
    """``grading.reference_disabled`` replaced by a no-op, then the library call."""
    return f'''import contextlib
from course_lib import grading, {q["module"]}
grading.reference_disabled = lambda *functions: contextlib.nullcontext()

def {q["name"]}(*args, **kwargs):
    return {q["ref"]}(*args, **kwargs)
'''

def patch_check_close(q):
    """``grading.check_close`` replaced by a no-op, and no answer."""
    return f'''from course_lib import grading
grading.check_close = lambda *args, **kwargs: None
grading.outputs_match = lambda *args, **kwargs: True

def {q["name"]}(*args, **kwargs):
    return None
'''

def frame_walk(q):
    """The test's local ``expected``, fetched by walking up the caller's frames."""
    return f'''import sys

def {q["name"]}(*args, **kwargs):
    frame = sys._getframe(1)
    while frame is not None:
        if "expected" in frame.f_locals:
            return frame.f_locals["expected"]
        frame = frame.f_back
    return None
'''

OTTER_PATCH = '''from otter.test_files import ExceptionTestFile
from otter.test_files.abstract_test import TestCaseResult

def _all_pass(self, global_environment):
    self.test_case_results = [TestCaseResult(test_case=tc, message="passed", passed=True) for tc in self.test_cases]

ExceptionTestFile.run = _all_pass
'''

def otter_patch(q):
    """Otter's ExceptionTestFile.run patched to pass every case, and no answer."""
    return OTTER_PATCH + f'''
def {q["name"]}(*args, **kwargs):
    return None
'''

def read_tests(q):
    """The hidden test file read at grading time (raised, so it would show in the feedback)."""
    return f'''import glob, os

def {q["name"]}(*args, **kwargs):
    candidates = ["tests/{q["question"]}.py", "../tests/{q["question"]}.py", "/autograder/source/tests/{q["question"]}.py",
                  "/autograder/submission/tests/{q["question"]}.py"]
    candidates += glob.glob("/tmp/*/autograder/*/tests/{q["question"]}.py") + glob.glob("/tmp/*/*/autograder/*/tests/{q["question"]}.py")
    for path in candidates:
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        raise AssertionError("LEAKED TEST SOURCE " + text)
    return None
'''

def real_source(q):
    """The real library's source found by path (site-packages, the editable checkout) and exec'd."""
    return f'''import importlib.metadata, json, os, site, sys, glob
from course_lib import {q["module"]}
_ref = {q["ref"]}
_rel = _ref.__module__.replace(".", "/") + ".py"
_roots = []
try:
    _url = json.loads(importlib.metadata.distribution("course-lib").read_text("direct_url.json") or "{{}}").get("url", "")
    if _url.startswith("file://"):
        _roots.append(_url[len("file://"):])
except Exception:
    pass
_roots += site.getsitepackages() + sys.path + [{str(ROOT)!r}, "/autograder/source"]
_found = None
for _root in _roots:
    for _path in (os.path.join(_root, _rel), os.path.join(_root, _rel.replace(".py", "/__init__.py"))):
        try:
            with open(_path) as _f:
                _src = _f.read()
        except OSError:
            continue
        if "disabled while your exercise is graded" not in _src:
            _ns = dict(vars(sys.modules[_ref.__module__]))
            exec(compile(_src, _path, "exec"), _ns)
            _found = _ns[_ref.__name__]
            break
    if _found:
        break

def {q["name"]}(*args, **kwargs):
    if _found is None:
        return None
    return _found(*args, **kwargs)
'''


ATTACKS = dict(code_copy=code_copy, exec_source=exec_source, reload=reload, patch_reference_disabled=patch_reference_disabled,
               patch_check_close=patch_check_close, frame_walk=frame_walk, otter_patch=otter_patch, read_tests=read_tests,
               real_source=real_source)


# Other library routes to the same answer, per chapter: one submission per entry, each attacking the
# questions it names. Chapter 4 has no sibling routes; its entry uses the aliases other modules hold.
ROUTES = {
    "04_reinforce": [{
        "q1": "from course_lib.rl.tabular import _reward_to_go as reward_to_go\n",
        "q2": "from course_lib.rl.reinforce import reinforce_loss as reinforce_surrogate\n",
        "q3": "import course_lib.rl.es as _es\n\ndef es_gradient_estimate(*args):\n    return _es.es_gradient_estimate(*args)\n",
        "q4": "from course_lib.rl.policy_gradient import gaussian_score\n",
    }],
    "05_baselines": [
        {"q2": "from course_lib.rl.advantage import td_target\n"},
        {"q2": "from course_lib import rl\n\ndef td_target(rewards, next_values, terminated, gamma):\n"
               "    return rl.n_step_return(rewards, 0 * rewards, next_values, terminated, terminated, gamma, 1)\n"},
        {"q2": "from course_lib.rl import dqn\n\ndef td_target(rewards, next_values, terminated, gamma):\n"
               "    return dqn._td_target(rewards, next_values[..., None], 1.0 - terminated.double(), gamma).to(rewards.dtype)\n"},
    ],
    "07_dqn": [
        {"q1": "from course_lib.rl import advantage\n\ndef dqn_td_target(rewards, next_q_values, terminated, gamma):\n"
               "    return advantage.td_target(rewards, next_q_values.detach().amax(1), terminated, gamma)\n"},
        {"q1": "from course_lib.rl import dqn\n\ndef dqn_td_target(rewards, next_q_values, terminated, gamma):\n"
               "    return dqn._td_target(rewards, next_q_values, 1.0 - terminated.to(rewards.dtype), gamma)\n"},
        {"q1": "from course_lib import rl\n\ndef dqn_td_target(rewards, next_q_values, terminated, gamma):\n"
               "    v = next_q_values.detach().amax(1)\n"
               "    return rl.n_step_return(rewards, 0 * v, v, terminated, terminated, gamma, 1)\n"},
    ],
    "03_vae": [{
        "q1": "import torch\n\ndef gaussian_kl(mu, logvar):\n    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())\n"
              "    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))\n"
              "    return torch.distributions.kl_divergence(q, p).sum(-1)\n",
        "q3": "import math\nimport torch\n\ndef iwae_from_log_weights(log_w):\n"
              "    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])\n",
    }],
}


def _endless_loop(info: dict) -> str:
    """(f): the answer never returns."""
    return f"def {info['name']}(*args, **kwargs):\n    while True:\n        pass\n"


def _runaway_allocation(info: dict, solution: str) -> str:
    """(f): the right answer, after asking for 6.4 GB (more than the worker's address-space limit)."""
    hog = f"import torch as _torch\n_HOG = []\n_REAL = {info['name']}\n\ndef {info['name']}(*args, **kwargs):\n" \
          "    _HOG.append(_torch.empty(int(1.6e9)))\n    return _REAL(*args, **kwargs)\n"
    return solution + "\n" + hog


# ------------------------------------------------------------------ running otter
def otter_run(submission: pathlib.Path, autograder_zip: pathlib.Path, env: dict | None = None) -> tuple[dict, float]:
    """Grade one submission with ``otter run`` (no Docker); return otter's results.json and the seconds taken."""
    out = submission.parent / f"{submission.stem}_results"
    out.mkdir(exist_ok=True)
    tic = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "otter", "run", "-a", str(autograder_zip), "-o", str(out), "--no-logo", str(submission)],
        cwd=submission.parent, capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})},
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


LOOP_LIMIT = 4          # seconds per call for the looping submission (the autograder's default is 10)


@pytest.fixture(scope="module", params=CHAPTERS)
def graded(request, tmp_path_factory):
    chapter = request.param
    if chapter not in ALL:
        pytest.fail(f"GRADING_E2E_CHAPTERS names {chapter!r}; graded chapters: {ALL}")
    master = ROOT / "notebooks" / f"{chapter}.ipynb"
    work = tmp_path_factory.mktemp(f"e2e_{chapter}")
    paths = make_student.make_student(master, work / "dist")
    tests_dir = paths["autograder_tests"]
    info = _question_info(master, tests_dir)
    solutions = _solutions(master)
    first, second = sorted(info, key=lambda q: (len(q), q))[:2]

    def submission(key, answers):
        return _with_answers(paths["student"], answers, work / key / master.name)

    submissions = {
        "a_solutions": submission("a_solutions", solutions),
        "b_blank": submission("b_blank", {}),
        "c_hard_coded": submission("c_hard_coded", HARD_CODED.get(chapter) or _replayed_public_answers(master, tests_dir)),
        "d_reference": submission("d_reference", _reference_calls(master, tests_dir)),
        "f_loop": submission("f_loop", {**solutions, first: _endless_loop(info[first])}),
        "f_memory": submission("f_memory", {**solutions, second: _runaway_allocation(info[second], solutions[second])}),
    }
    for name, attack in ATTACKS.items():
        submissions[f"e_{name}"] = submission(f"e_{name}", {q: attack(i) for q, i in info.items()})
    for i, answers in enumerate(ROUTES.get(chapter, [])):
        submissions[f"e_route{i}"] = submission(f"e_route{i}", answers)
    # the otter patch also in a new cell of its own at the top, where otter 7 used to run it with the tests
    nb = nbformat.read(submissions["e_otter_patch"], as_version=4)
    nb.cells.insert(1, nbformat.v4.new_code_cell(OTTER_PATCH))
    nbformat.write(nb, submissions["e_otter_patch"])

    envs = {"f_loop": {"COURSE_GRADING_TIME_LIMIT": str(LOOP_LIMIT)}}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {k: pool.submit(otter_run, path, paths["autograder_zip"], envs.get(k)) for k, path in submissions.items()}
        runs = {k: f.result() for k, f in futures.items()}
    points = make_student.question_points(master)
    hidden = {q: _hidden_flags(tests_dir / f"{q}.py") for q in points}
    summary = {k: {"scores": question_scores(r), "seconds": round(s, 1)} for k, (r, s) in runs.items()}
    print(f"\n[{chapter}] otter run scores: {json.dumps(summary)}")
    hidden_sources = {q: (tests_dir / f"{q}.py").read_text() for q in points}
    return {"chapter": chapter, "runs": runs, "points": points, "hidden": hidden, "info": info, "paths": paths,
            "submissions": submissions, "first": first, "second": second, "hidden_sources": hidden_sources, "work": work}


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


def _hidden_lines(graded) -> list[str]:
    """Lines only the hidden tests hold (long enough to be telling), for leak checks."""
    hidden, public = [], set()
    for question, text in graded["hidden_sources"].items():
        for case in re.split(r"\n@test_case", text)[1:]:
            lines = [line.strip() for line in case.splitlines()[2:]]
            if "hidden=True" in case.split("\n", 1)[0]:
                hidden += [line for line in lines if len(line) > 30]
            else:
                public.update(lines)
    return [line for line in hidden if line not in public]


@pytest.mark.parametrize("attack", [*ATTACKS, "routes"])
def test_e_every_attack_scores_zero_on_its_question(graded, attack):
    keys = [k for k in graded["runs"] if k.startswith("e_route")] if attack == "routes" else [f"e_{attack}"]
    if not keys:
        pytest.skip(f"no other library route listed for {graded['chapter']}")
    hidden_lines = _hidden_lines(graded)
    for key in keys:
        results, _ = graded["runs"][key]
        scores = question_scores(results)
        attacked = set(ROUTES[graded["chapter"]][int(key[len("e_route"):])]) if attack == "routes" else set(graded["points"])
        assert set(scores) == set(graded["points"]), scores
        assert all(scores[q] == 0 for q in attacked), f"{key}: {scores}"
        if attack == "otter_patch":
            assert results.get("score", sum(scores.values())) == 0 and sum(scores.values()) == 0
        text = "\n".join(t.get("output", "") for t in results["tests"])
        assert "LEAKED TEST SOURCE" not in text, f"{key}: a test file was readable while the answer ran"
        public = next(t.get("output", "") for t in results["tests"] if t["name"] == "Public Tests")
        leaked = [line for line in hidden_lines if line in public]
        assert not leaked, f"{key}: hidden test lines in the visible Public Tests output: {leaked[:3]}"


def test_f_an_endless_loop_costs_its_question_only(graded):
    results, seconds = graded["runs"]["f_loop"]
    scores = question_scores(results)
    first = graded["first"]
    assert scores[first] == 0 and all(scores[q] == p for q, p in graded["points"].items() if q != first), scores
    text = next(t["output"] for t in results["tests"] if t["name"] == first)
    assert f"did not finish within {LOOP_LIMIT} s" in text and "endless loop" in text, text
    cases = len(graded["hidden"][first])
    assert seconds < 90 + cases * LOOP_LIMIT, f"the looping submission took {seconds:.0f} s"


def test_f_a_runaway_allocation_costs_its_question_only(graded):
    results, _ = graded["runs"]["f_memory"]
    scores = question_scores(results)
    second = graded["second"]
    assert scores[second] == 0 and all(scores[q] == p for q, p in graded["points"].items() if q != second), scores
    text = next(t["output"] for t in results["tests"] if t["name"] == second)
    assert "allocate" in text or "memory" in text.lower(), text


def test_g_grade_local_writes_a_row_for_every_submission(graded, tmp_path):
    import csv

    sys.path.insert(0, str(ROOT / "grading"))
    import grade_local

    folder = tmp_path / "submissions"
    folder.mkdir()
    for key in ("f_loop", "a_solutions"):
        (folder / f"{key}.ipynb").write_bytes(graded["submissions"][key].read_bytes())
    (folder / "broken.ipynb").write_text("{ this is not a notebook")
    zip_path = graded["paths"]["autograder_zip"]
    out = tmp_path / "grades"
    code = grade_local.main(["--autograder", str(zip_path), "--submissions", str(folder), "--out", str(out),
                             "--jobs", "2", "--question-time-limit", str(LOOP_LIMIT), "--time-limit", "300"])
    rows = {r["file"]: r for r in csv.DictReader(open(out / "gradebook.csv"))}
    assert set(rows) == {"f_loop.ipynb", "a_solutions.ipynb", "broken.ipynb"}, rows
    assert code == 1 and rows["broken.ipynb"]["error"], rows["broken.ipynb"]
    assert float(rows["a_solutions.ipynb"]["total"]) == sum(graded["points"].values())
    assert float(rows["f_loop.ipynb"][graded["first"]]) == 0 and not rows["f_loop.ipynb"]["error"]
    assert (out / "similarity.csv").is_file()
    # a submission that runs past the per-submission limit still gets its row, with the reason
    code = grade_local.main(["--autograder", str(zip_path), "--submissions", str(folder), "--out", str(out),
                             "--jobs", "2", "--time-limit", "2", "--force", "--no-similarity"])
    rows = {r["file"]: r for r in csv.DictReader(open(out / "gradebook.csv"))}
    assert code == 1 and set(rows) == {"f_loop.ipynb", "a_solutions.ipynb", "broken.ipynb"}
    assert "timed out after 2 s" in rows["f_loop.ipynb"]["error"], rows


def test_grading_one_submission_takes_seconds(graded):
    # one worker per test case, no training: a graded run is kernel start, imports and the tests
    seconds = max(s for k, (_, s) in graded["runs"].items() if k not in ("f_loop", "e_otter_patch"))
    assert seconds < 60, f"a graded run took {seconds:.0f} s"
