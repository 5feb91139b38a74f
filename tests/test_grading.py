"""course_lib.grading (comparison, feedback, fallback, disabled references) and make_student's pure helpers."""

from __future__ import annotations

import math
import pathlib
import sys
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib import checks, grading

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
import make_student  # noqa: E402

torch.set_num_threads(1)


# ------------------------------------------------------------------ outputs_match
@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=8))
def test_outputs_match_is_reflexive_with_nan_and_inf(values):
    t = torch.tensor(values)
    assert grading.outputs_match(t, t.clone())


def test_outputs_match_nan_positions_must_agree():
    assert grading.outputs_match(torch.tensor([1.0, math.nan]), torch.tensor([1.0, math.nan]))
    assert not grading.outputs_match(torch.tensor([1.0, math.nan]), torch.tensor([math.nan, 1.0]))
    assert not grading.outputs_match(torch.tensor([math.nan]), torch.tensor([0.0]))
    assert not grading.outputs_match(torch.tensor([math.inf]), torch.tensor([-math.inf]))


def test_outputs_match_complex_compares_imaginary_parts():
    a = torch.tensor([1 + 2j, 3 - 1j])
    assert grading.outputs_match(a, a.clone())
    assert not grading.outputs_match(a, torch.tensor([1 + 2.5j, 3 - 1j])), "a numpy float64 cast would drop the imaginary part"
    assert not grading.outputs_match(a, a.real), "complex never matches real"
    assert grading.outputs_match(np.array([1 + 2j]), torch.tensor([1 + 2j]))


def test_outputs_match_bfloat16_and_half():
    x = torch.tensor([1.0, 2.0, 3.3, -7.1])
    for dtype in (torch.bfloat16, torch.float16):
        low = x.to(dtype)
        assert grading.outputs_match(low, low.clone())
        assert grading.outputs_match(low, x), f"{dtype} rounding is within its precision"
        assert not grading.outputs_match(low, x + 0.5)


def test_outputs_match_shapes_containers_and_none():
    assert not grading.outputs_match(torch.ones(3), torch.ones(3, 1)), "no broadcasting"
    assert not grading.outputs_match(None, None)
    assert grading.outputs_match((torch.ones(2), 3.0), (torch.ones(2), 3.0))
    assert not grading.outputs_match((torch.ones(2),), (torch.ones(2), 1.0))
    assert grading.outputs_match({"a": torch.zeros(2)}, {"a": torch.zeros(2)})
    assert not grading.outputs_match({"a": torch.zeros(2)}, {"b": torch.zeros(2)})
    assert grading.outputs_match(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert not grading.outputs_match(torch.tensor([1, 2]), torch.tensor([1, 3]))
    assert grading.outputs_match("abc", "abc") and not grading.outputs_match("abc", "abd")


# ------------------------------------------------------------------ check_close
def test_check_close_blank_answer_says_not_implemented():
    for blank in (None, Ellipsis):
        with pytest.raises(AssertionError, match="reward_to_go returned None: not implemented yet"):
            grading.check_close("reward_to_go", blank, torch.ones(3))


def test_check_close_wrong_answer_shows_inputs_expected_and_got():
    rewards = torch.tensor([1.0, 2.0, 3.0])
    with pytest.raises(AssertionError) as info:
        grading.check_close("reward_to_go", torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.75, 3.5, 3.0]),
                            inputs={"rewards": rewards, "gamma": 0.5}, hint="Sum backwards.")
    message = str(info.value)
    for needle in ("index (0,)", "input rewards = tensor of shape (3,)", "input gamma = float 0.5",
                   "expected: tensor of shape (3,)", "2.75", "yours:    tensor of shape (3,)", "Sum backwards."):
        assert needle in message, (needle, message)


def test_check_close_names_shape_and_tuple_mismatches():
    with pytest.raises(AssertionError, match=r"has shape \(3, 1\), expected shape \(3,\)"):
        grading.check_close("f", torch.ones(3, 1), torch.ones(3))
    with pytest.raises(AssertionError, match="element 1 has shape"):
        grading.check_close("f", (torch.ones(2), torch.ones(1)), (torch.ones(2), torch.ones(2)))
    with pytest.raises(AssertionError, match="should be a tuple of 2 values"):
        grading.check_close("f", torch.ones(2), (torch.ones(2), torch.ones(2)))
    with pytest.raises(AssertionError, match="should be a torch.Tensor, got list"):
        grading.check_close("f", [1.0, 2.0], torch.ones(2))
    grading.check_close("f", (torch.ones(2), torch.zeros(2)), (torch.ones(2), torch.zeros(2)))  # no error


@pytest.mark.parametrize("kwargs,error,needle", [
    (dict(name=3, got=1.0, expected=1.0), TypeError, "name"),
])
def test_check_close_bad_input(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        grading.check_close(**kwargs)


# ------------------------------------------------------------------ use_or_fallback
def _reference(x):
    return x * 2


def test_use_or_fallback_uses_a_correct_student_function(capsys):
    student = lambda x: x + x  # noqa: E731
    assert grading.use_or_fallback(student, _reference, (torch.ones(3),), "Exercise 9") is student
    assert "using your implementation" in capsys.readouterr().out


@pytest.mark.parametrize("student,reason", [
    (lambda x: None, "returned None (not implemented yet)"),
    (lambda x: x * 3, "differs from course_lib's"),
    (lambda x: 1 / 0, "raised ZeroDivisionError"),
])
def test_use_or_fallback_falls_back_without_naming_the_reference(capsys, student, reason):
    assert grading.use_or_fallback(student, _reference, (torch.ones(3),), "Exercise 9") is _reference
    out = capsys.readouterr().out
    assert reason in out and "not done" in out
    assert "_reference" not in out and __name__ not in out, "the message must not name the library function"


def test_use_or_fallback_stops_an_endless_loop():
    def endless(x):
        while True:
            pass

    tic = time.perf_counter()
    assert grading.use_or_fallback(endless, _reference, (torch.ones(1),), "Exercise 9", time_limit=0.3) is _reference
    assert time.perf_counter() - tic < 5


def test_use_or_fallback_stops_an_endless_loop_off_the_main_thread():
    import threading

    def endless(x):
        while True:
            time.sleep(0.01)

    box = {}
    worker = threading.Thread(target=lambda: box.update(fn=grading.use_or_fallback(endless, _reference, (torch.ones(1),), "E", time_limit=0.3)))
    worker.start()
    worker.join(10)
    assert box.get("fn") is _reference


def _swallowing_loop(x):
    while True:
        try:
            time.sleep(0.01)
        except:  # noqa: E722  (the point: a bare except swallows a timeout exception)
            pass


def test_use_or_fallback_stops_a_loop_that_swallows_every_exception(capsys):
    tic = time.perf_counter()
    assert grading.use_or_fallback(_swallowing_loop, _reference, (torch.ones(1),), "Exercise 9", time_limit=0.5) is _reference
    assert time.perf_counter() - tic < 10
    assert "did not return within 0.5 s" in capsys.readouterr().out


def test_use_or_fallback_off_the_main_thread_leaves_nothing_running(tmp_path):
    import os
    import threading

    pid_file = tmp_path / "pid"

    def endless(x):
        pid_file.write_text(str(os.getpid()))
        _swallowing_loop(x)

    before = threading.active_count()
    box = {}
    worker = threading.Thread(target=lambda: box.update(fn=grading.use_or_fallback(endless, _reference, (torch.ones(1),), "E", time_limit=0.5)))
    worker.start()
    worker.join(20)
    assert box.get("fn") is _reference
    assert threading.active_count() == before, "a thread of the student's is still running"
    if pid_file.exists():  # the probe ran in a child process: it must be gone
        pid = int(pid_file.read_text())
        assert pid != os.getpid()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize("exit_call", [lambda: __import__("sys").exit(), lambda: __import__("sys").exit(3)])
def test_use_or_fallback_sys_exit_falls_back_with_a_message(capsys, exit_call):
    def exiting(x):
        exit_call()

    assert grading.use_or_fallback(exiting, _reference, (torch.ones(1),), "Exercise 9") is _reference
    out = capsys.readouterr().out
    assert "not done: it called sys.exit" in out


def test_use_or_fallback_shows_what_the_probe_printed(capsys):
    def chatty(x):
        print("hello from the student")
        return x * 2

    assert grading.use_or_fallback(chatty, _reference, (torch.ones(2),), "E") is chatty
    assert "hello from the student" in capsys.readouterr().out


def test_use_or_fallback_passes_copies_of_the_probe():
    model = torch.nn.Linear(2, 2)
    before = model.weight.detach().clone()
    x = torch.ones(2)

    def mutating(m, v):
        with torch.no_grad():
            m.weight.add_(1.0)
        v.add_(1.0)
        return m(v)

    grading.use_or_fallback(mutating, lambda m, v: m(v), (model, x), "Exercise 9")
    assert torch.equal(model.weight, before) and torch.equal(x, torch.ones(2)), "the chapter's real objects changed"


@pytest.mark.parametrize("kwargs,needle", [
    (dict(student_fn=3), "student_fn"),
    (dict(reference_fn="f"), "reference_fn"),
    (dict(probe_args=[1.0]), "probe_args"),
    (dict(name=1), "name"),
    (dict(time_limit=0.0), "time_limit"),
    (dict(atol=-1.0), "atol"),
])
def test_use_or_fallback_bad_input(kwargs, needle):
    args = dict(student_fn=_reference, reference_fn=_reference, probe_args=(torch.ones(1),), name="E") | kwargs
    with pytest.raises((TypeError, ValueError), match=needle):
        grading.use_or_fallback(**args)


# ------------------------------------------------------------------ reference_disabled
def _library_answer(x):
    return x + 1


def test_reference_disabled_rejects_wrappers_and_aliases_then_restores():
    alias = _library_answer
    wrapper = lambda x: alias(x)  # noqa: E731
    with grading.reference_disabled(_library_answer):
        with pytest.raises(grading.ReferenceDisabled, match="call your own implementation"):
            wrapper(1)
    assert wrapper(1) == 2


def test_reference_disabled_restores_after_an_error():
    with pytest.raises(RuntimeError):
        with grading.reference_disabled(_library_answer):
            raise RuntimeError("boom")
    assert _library_answer(1) == 2


def test_reference_disabled_blocks_a_torch_builtin_by_every_route_then_restores():
    x = torch.randn(3, 4, requires_grad=True)
    expected = torch.logsumexp(x, 0)
    with grading.reference_disabled(torch.logsumexp):
        for route in (lambda: torch.logsumexp(x, 0), lambda: x.logsumexp(0), lambda: torch.special.logsumexp(x, 0),
                      lambda: torch.ops.aten.logsumexp(x, [0])):
            with pytest.raises(NotImplementedError, match="torch.logsumexp is not allowed"):
                route()
        assert torch.allclose(torch.log(torch.exp(x).sum(0)), expected)   # the arithmetic itself still works
    got = torch.logsumexp(x, 0)
    got.sum().backward()
    assert torch.allclose(got, expected) and x.grad is not None


def test_reference_disabled_takes_a_torch_python_function():
    p, q = torch.distributions.Normal(0.0, 1.0), torch.distributions.Normal(1.0, 1.0)
    with grading.reference_disabled(torch.distributions.kl_divergence):
        with pytest.raises(NotImplementedError, match="disabled while your exercise is graded"):
            torch.distributions.kl_divergence(p, q)
    assert torch.distributions.kl_divergence(p, q).item() == pytest.approx(0.5)


def _closure():
    y = 1
    return lambda x: x + y


@pytest.mark.parametrize("bad", [len, 3, _closure()], ids=["builtin", "int", "closure"])
def test_reference_disabled_bad_input(bad):
    with pytest.raises(TypeError, match="reference_disabled needs plain functions"):
        with grading.reference_disabled(bad):
            pass


# ------------------------------------------------------------------ make_student helpers
BIB = {"williams1992reinforce": {"author": "Williams, Ronald J.", "year": "1992"},
       "salimans2017es": {"author": "Salimans, Tim and Ho, Jonathan and Chen, Xi and Sutskever, Ilya", "year": "2017"},
       "sutton2018": {"author": "Richard S. Sutton and Andrew G. Barto", "year": "2018"}}


def test_myst_to_markdown_resolves_roles():
    eqs = {"eq-rtg": "4.7"}
    text = ("See {eq}`eq-rtg` {cite:p}`williams1992reinforce,salimans2017es`; {cite:t}`sutton2018` wrote it.\n"
            "$$\nG_t = r_t\n$$ (eq-rtg)\n")
    out = make_student.myst_to_markdown(text, eqs, BIB, ROOT / "notebooks")
    assert "See (4.7) (Williams, 1992; Salimans et al., 2017); Sutton and Barto (2018) wrote it." in out
    assert "\\tag{4.7}\n$$" in out and "(eq-rtg)" not in out and "{" + "eq}" not in out


def test_myst_to_markdown_admonition_and_doc():
    text = ":::{admonition} A sidebar\n:class: note\nBody line.\n:::\nSee {doc}`../book/setup`."
    out = make_student.myst_to_markdown(text, {}, BIB, ROOT / "notebooks")
    assert "> **A sidebar.**" in out and "> Body line." in out and ":::" not in out and ":class:" not in out
    assert "{doc}" not in out


@pytest.mark.parametrize("text,needle", [("{eq}`nope`", "nope"), ("{cite:p}`unknown2020`", "unknown2020")])
def test_myst_to_markdown_unresolved_is_an_error(text, needle):
    with pytest.raises(make_student.StudentError, match=needle):
        make_student.myst_to_markdown(text, {}, BIB, ROOT)


def test_equation_numbers_follow_the_order_of_labels():
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$$ a $$ (eq-a)\n$$ b $$ (eq-b)"),
                                         nbformat.v4.new_markdown_cell("$$ c $$ (eq-c)")])
    assert make_student.equation_numbers(nb, 4) == {"eq-a": "4.1", "eq-b": "4.2", "eq-c": "4.3"}


@pytest.mark.parametrize("argv,needle", [
    (["--chapter", "no_such_chapter"], "no graded chapter 'no_such_chapter'"),
    (["--chapter", "notebooks/missing.ipynb"], "no notebook at"),
    (["--out", str(ROOT / "README.md"), "--chapter", "04"], "is a file, not a folder"),
])
def test_make_student_bad_arguments_are_one_line_errors(argv, needle, capsys):
    assert make_student.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


def test_make_student_refuses_a_non_empty_output_folder(tmp_path):
    master = make_student.masters()[0]
    (tmp_path / master.stem).mkdir()
    (tmp_path / master.stem / "grades.csv").write_text("name,score\n")
    with pytest.raises(make_student.StudentError, match="--force"):
        make_student.make_student(master, tmp_path)
    assert (tmp_path / master.stem / "grades.csv").exists()


def test_resolve_chapter_accepts_number_and_name():
    master = make_student.masters()[-1]
    number = master.stem.split("_")[0]
    assert make_student.resolve_chapter(master.stem) == master
    assert make_student.resolve_chapter(number) == master
    assert make_student.resolve_chapter(str(int(number))) == master


# ------------------------------------------------------------------ the book's links to student notebooks
def test_book_launch_and_download_point_at_the_student_notebook():
    from types import SimpleNamespace

    sys.path.insert(0, str(ROOT / "book" / "_ext"))  # the book's Sphinx extensions live there, not in course_lib
    import course_sphinx_student as sphinx_student

    stem = sorted((ROOT / "student").glob("*.ipynb"))[-1].stem
    app = SimpleNamespace(srcdir=str(ROOT), config=SimpleNamespace(html_theme_options={
        "repository_url": "https://github.com/dgm-drl-book/course-book", "repository_branch": "main"}))
    colab = f"https://colab.research.google.com/github/dgm-drl-book/course-book/blob/main/notebooks/{stem}.ipynb"
    context = {"header_buttons": [
        {"label": "launch-buttons", "buttons": [{"type": "link", "text": "Colab", "url": colab}]},
        {"label": "download-buttons", "buttons": [{"label": "download-notebook-button", "url": "_sources/x.ipynb"}]},
    ]}
    sphinx_student._point_at_students(app, f"notebooks/{stem}", "page.html", context, None)
    launch, download = context["header_buttons"]
    assert launch["buttons"][0]["url"].endswith(f"/blob/main/student/{stem}.ipynb")
    assert download["buttons"][0]["url"] == f"https://github.com/dgm-drl-book/course-book/raw/main/student/{stem}.ipynb"
    assert not any("/notebooks/" in b.get("url", "") and b.get("label") != "download-notebook-button"
                   for g in context["header_buttons"] for b in g["buttons"])
    other = {"header_buttons": [{"label": "launch-buttons", "buttons": [{"url": colab.replace(stem, "99_none")}]}]}
    sphinx_student._point_at_students(app, "notebooks/99_none", "page.html", other, None)
    assert "/notebooks/99_none" in other["header_buttons"][0]["buttons"][0]["url"], "no student version: untouched"


# ------------------------------------------------------------------ isolated grading (grading/sandbox.py)
import textwrap  # noqa: E402

import grading_build  # noqa: E402
import sandbox  # noqa: E402
import similarity  # noqa: E402


def _nb(*cells):
    """A notebook dict from (source, tags) pairs."""
    return {"cells": [{"cell_type": "code", "source": src, "metadata": {"tags": list(tags)}} for src, tags in cells]}


def test_answer_source_takes_the_answer_cell_and_the_imports_it_needs():
    nb = _nb(("import torch\nimport torch.nn.functional as F\nimport matplotlib.pyplot as plt\nCONFIG = {'a': 1}", []),
             ("model = train_for_an_hour()\nSCALE = 2.0", ["otter_ignore"]),
             ("def softplus_sum(x):\n    return F.softplus(x).sum() * SCALE", ["otter_answer_cell"]),
             ("grader.check(\"q1\")", []),
             ("print(softplus_sum(torch.ones(2)))", ["otter_ignore"]))
    source, notes = sandbox.answer_source(nb, ["softplus_sum"])
    assert "def softplus_sum" in source and "import torch.nn.functional as F" in source
    assert "matplotlib" not in source and "train_for_an_hour" not in source and "CONFIG" not in source
    assert notes == []


def test_answer_source_reports_an_answer_cell_that_does_not_parse():
    source, notes = sandbox.answer_source(_nb(("def f(x:\n    return x", ["otter_answer_cell"])), ["f"])
    assert "def f" not in source and "SyntaxError" in notes[0]


def test_forbidden_mentions_finds_names_attributes_and_imports():
    assert sandbox.forbidden_mentions("import torch\ny = torch.logsumexp(x, 0)", ["torch.logsumexp"]) == ["torch.logsumexp"]
    assert sandbox.forbidden_mentions("from torch import logsumexp as l", ["torch.logsumexp"]) == ["torch.logsumexp"]
    assert sandbox.forbidden_mentions("y = x.max(0).values  # not logsumexp", ["torch.logsumexp"]) == []


@pytest.mark.parametrize("node", [["t", "not a tensor", False, 0], ["zz", 1], ["i", True], ["{", [[1.5, ["N"]]]], "raw", [["N"]]])
def test_decoder_refuses_malformed_replies(node):
    decoder = sandbox._Decoder()
    with pytest.raises((ValueError, TypeError, IndexError)):
        decoder.collect(node)
        decoder.build(node, {})


def test_decoder_rebuilds_values_and_marks_unsupported_ones():
    t = torch.arange(3.0)
    node = ["(", [["t", t, False, 0], ["i", 3], ["g", "float64", ["f", 0.5]], ["x", "torch.distributions.Normal"]]]
    decoder = sandbox._Decoder()
    decoder.collect(node)
    value = decoder.build(node, {})
    assert torch.equal(value[0], t) and value[1] == 3 and isinstance(value[2], np.float64)
    assert isinstance(value[3], sandbox.Unsupported) and not grading.outputs_match(value[3], t)


def test_grading_build_rewrites_the_named_functions_only(tmp_path):
    import subprocess
    import sys as _sys

    grading_build.build(tmp_path, ["course_lib.rl.policy_gradient:reward_to_go", "course_lib.rl.dqn:_td_target"])
    assert not list(tmp_path.rglob("__pycache__")) and not list(tmp_path.rglob("*.pt"))
    source = (tmp_path / "course_lib" / "rl" / "policy_gradient.py").read_text()
    assert "disabled while your exercise is graded" in source and "reversed(range" not in source
    probe = textwrap.dedent("""
        import importlib, inspect, sys, types, torch
        from course_lib import rl
        from course_lib.rl import dqn
        out = {}
        for label, call in [
            ("direct", lambda: rl.reward_to_go(torch.ones(3), 0.9)),
            ("helper", lambda: dqn._td_target(torch.ones(2), torch.ones(2, 2), torch.ones(2), 0.9)),
            ("copy", lambda: types.FunctionType(rl.reward_to_go.__code__, rl.reward_to_go.__globals__, "f",
                                               rl.reward_to_go.__defaults__)(torch.ones(3), 0.9)),
            ("reload", lambda: importlib.reload(sys.modules[rl.reward_to_go.__module__]).reward_to_go(torch.ones(3), 0.9)),
            ("other", lambda: rl.gae(torch.ones(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.zeros(3), 0.9, 0.9).shape),
        ]:
            try:
                out[label] = str(call())
            except NotImplementedError as err:
                out[label] = "disabled" if "disabled while your exercise is graded" in str(err) else str(err)
        print(out)
    """)
    done = subprocess.run([_sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(tmp_path)!r}); " + probe],
                          capture_output=True, text=True, timeout=120)
    out = eval(done.stdout.strip().splitlines()[-1])
    assert out["direct"] == out["helper"] == out["copy"] == out["reload"] == "disabled", out
    assert out["other"] == "torch.Size([3])", "functions not named stay as they are"


def test_grading_build_references_resolve_course_lib_and_torch_names():
    test = textwrap.dedent('''
        def test_q1(f):
            import torch
            from course_lib import grading, vae
            with grading.reference_disabled(vae.log_mean_exp, torch.logsumexp, torch.distributions.kl_divergence):
                f()
    ''')
    refs = grading_build.references({"q1": test})
    assert refs["q1"]["disable"] == ["course_lib.vae.core:log_mean_exp"]
    assert refs["q1"]["forbid"] == ["torch.logsumexp", "torch.distributions.kl.kl_divergence"]
    with pytest.raises(grading_build.BuildError, match="only course_lib functions"):
        grading_build.references({"q1": test.replace("torch.logsumexp", "len")})


TINY_TEST = '''from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=0, hidden=False)
def test_q1_public(double_it):
    import torch
    from course_lib import grading
    grading.check_close("double_it", double_it(torch.ones(2)), torch.full((2,), 2.0))

@test_case(points=None, hidden=True)
def test_q1_hidden(double_it):
    import torch
    from course_lib import grading
    x = torch.arange(3.0, requires_grad=True)
    before = x.detach().clone()
    got = double_it(x)
    grading.check_close("double_it", got, 2 * before)
    assert torch.equal(x.detach(), before), "double_it changed x in place"
    assert got.requires_grad, "no graph"
    got.sum().backward()
    grading.check_close("its gradient", x.grad, torch.full((3,), 2.0))
'''


@pytest.fixture(scope="module")
def sandbox_source(tmp_path_factory):
    source = tmp_path_factory.mktemp("autograder_source")
    grading_build.build(source / sandbox.BUILD_DIR, ["course_lib.rl.policy_gradient:reward_to_go"])
    return source


@pytest.fixture(scope="module")
def zygote(sandbox_source):
    """One student-side process tree for the tests below (grade_submission starts one per submission)."""
    import shutil

    runtime = sandbox.prepare_runtime(sandbox_source)
    tree = sandbox.Zygote(runtime, limits={**sandbox.DEFAULT_LIMITS, "call_seconds": 2.0, "case_seconds": 12.0})
    yield tree
    tree.close()
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.parametrize("answer,passed,needle", [
    ("def double_it(x):\n    return 2 * x\n", [True, True], ""),
    ("def double_it(x):\n    return None\n", [False, False], "returned None: not implemented yet"),
    ("def double_it(x):\n    x.data.mul_(2)\n    return x.detach().clone()\n", [True, False], "changed x in place"),
    ("def double_it(x):\n    while True:\n        pass\n", [False, False], "did not finish within 2 s"),
    ("def double_it(x):\n    try:\n        return open('/etc/hostname').read() and 2 * x\n    except PermissionError:\n        pass\n"
     "    return 2 * x\n", [True, True], ""),
    (f"def double_it(x):\n    return open({str(ROOT / 'course_lib' / 'rl' / 'policy_gradient.py')!r}).read()\n",
     [False, False], "is not allowed"),
    (f"def double_it(x):\n    return open({str(ROOT / 'notebooks' / '04_reinforce.ipynb')!r}).read()\n",
     [False, False], "is not allowed"),
    ("def double_it(x):\n    import torch\n    torch.empty(int(2e9))\n    return 2 * x\n", [False, False], "allocate"),
])
def test_sandbox_grades_each_case_in_its_own_process(zygote, answer, passed, needle):
    verdict = sandbox.grade_question(zygote, "q1", TINY_TEST, _nb((answer, ["otter_answer_cell"])))
    cases = verdict.cases
    assert [c.passed for c in cases] == passed, [c.message for c in cases]
    assert verdict.score == (2.0 if all(passed) else 0.0)
    if needle:
        assert any(needle in c.message for c in cases), [c.message for c in cases]


def test_sandbox_verdict_file_scores_like_the_verdicts():
    from otter.test_files import ExceptionTestFile

    verdict = sandbox.QuestionVerdict("q1", [sandbox.CaseVerdict("q1 - 1", 0.0, False, True, "ok"),
                                             sandbox.CaseVerdict("q1 - 2", 2.0, True, False, "no")])
    tf = ExceptionTestFile.from_string(sandbox.verdict_test_file(verdict), path="tests/q1.py")
    tf.run({})
    assert [r.passed for r in tf.test_case_results] == [True, False]
    assert [c.name for c in tf.test_cases] == ["q1 - 1", "q1 - 2"] and tf.possible == 2.0 and tf.score == 0


# ------------------------------------------------------------------ grading/similarity.py
REFERENCE = '''
def reward_to_go(rewards, gamma: float):
    """G_t = r_t + gamma G_{t+1}."""
    gamma = checks.unit_interval("gamma", gamma)
    rewards = torch.as_tensor(rewards)
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[..., 0])
    for t in reversed(range(rewards.shape[-1])):
        running = rewards[..., t] + gamma * running
        out[..., t] = running
    return out
'''


def _renamed(source: str) -> str:
    """The same code with other names, a comment, no docstring and other spacing."""
    return ('def rtg(r, g):\n    # my own work\n    g = checks.unit_interval("gamma", g)\n    r = torch.as_tensor(r)\n'
            '    res = torch.zeros_like(r)\n    acc = torch.zeros_like(r[..., 0])\n'
            '    for i in reversed(range(r.shape[-1])):\n        acc = r[..., i] + g*acc\n        res[..., i] = acc\n    return res\n')


def test_similarity_normalise_ignores_names_comments_docstrings_and_layout():
    assert similarity.normalise(REFERENCE) == similarity.normalise(_renamed(REFERENCE))
    other = REFERENCE.replace("reversed(range(rewards.shape[-1]))", "range(rewards.shape[-1])")
    assert similarity.normalise(other) != similarity.normalise(REFERENCE)


def test_similarity_flags_copies_of_the_reference_and_of_each_other_only():
    body_only = ('def f(x, y):\n    out = torch.zeros_like(x)\n    acc = torch.zeros_like(x[..., 0])\n'
                 '    for k in reversed(range(x.shape[-1])):\n        acc = x[..., k] + y * acc\n        out[..., k] = acc\n    return out\n')
    own = ('def reward_to_go(rewards, gamma):\n    T = rewards.shape[-1]\n    powers = gamma ** torch.arange(T, dtype=rewards.dtype)\n'
           '    G = torch.flip(torch.cumsum(torch.flip(rewards * powers, [-1]), -1), [-1])\n    return G / powers\n')
    answers = {"copy.ipynb": {"q1": _renamed(REFERENCE)}, "body.ipynb": {"q1": body_only},
               "own.ipynb": {"q1": own}, "friend.ipynb": {"q1": own.replace("G", "H").replace("powers", "p")},
               "blank.ipynb": {"q1": "def reward_to_go(rewards, gamma):\n    ...\n"}, "none.ipynb": {"q1": None}}
    rows = similarity.flags(answers, {"q1": ("course_lib:rl.reward_to_go", REFERENCE)})
    pairs = {(r["submission"], r["other"]) for r in rows}
    assert ("copy.ipynb", "course_lib:rl.reward_to_go") in pairs
    assert ("body.ipynb", "course_lib:rl.reward_to_go") in pairs, "a reference body without its checks is flagged"
    assert ("friend.ipynb", "own.ipynb") in pairs, "two submissions alike up to names"
    assert not {p for p in pairs if "blank.ipynb" in p or "none.ipynb" in p}
    assert ("own.ipynb", "course_lib:rl.reward_to_go") not in pairs, "an answer of one's own is not flagged"
    assert all(set(r) == set(similarity.COLUMNS) for r in rows)


def test_similarity_reads_answers_from_a_notebook():
    nb = {"cells": [{"cell_type": "code", "source": "import torch\n\ndef f(x):\n    return x\n", "metadata": {"tags": ["otter_answer_cell"]}},
                    {"cell_type": "code", "source": "def f(x):\n    return 2 * x\n", "metadata": {}}]}
    assert similarity.answer_of(nb, "f").startswith("def f(x):\n    return x")
    assert similarity.answer_of(nb, "g") is None


def test_sandbox_passes_a_variable_answer_by_value(zygote):
    test = TINY_TEST.split("@test_case")[0] + '''@test_case(points=None, hidden=True)
def test_q1_value(answer_q1):
    from course_lib import grading
    grading.check_close("answer_q1", answer_q1, 0.25)
'''
    for answer, passed in (("answer_q1 = 1 / 4\n", True), ("answer_q1 = ...\n", False), ("x = 1\n", False)):
        verdict = sandbox.grade_question(zygote, "q1", test, _nb((answer, ["otter_answer_cell"])))
        assert [c.passed for c in verdict.cases] == [passed], verdict.cases[0].message


def test_grade_submission_starts_and_stops_its_own_processes(sandbox_source, monkeypatch):
    monkeypatch.setenv("COURSE_GRADING_TIME_LIMIT", "5")
    verdicts = sandbox.grade_submission(_nb(("def double_it(x):\n    return x + x\n", ["otter_answer_cell"])),
                                        {"q1": TINY_TEST}, sandbox_source)
    assert verdicts["q1"].score == 2.0
