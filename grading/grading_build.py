"""The grading build of ``course_lib``: the library with a chapter's reference answers rewritten to raise.

At grading, a student's answer runs in a process whose ``course_lib`` is this
build (see :mod:`sandbox`). It is generated when the autograder zip is built,
from the real sources: every function that a chapter's tests name in
``grading.reference_disabled(...)`` keeps its signature and docstring, and
its body becomes ``raise NotImplementedError("... disabled while your exercise
is graded ...")``. So in the student's process the answer does not exist: not
as a function, nor as a code object, nor in a module that
``importlib.reload``, ``inspect.getsource`` or ``exec`` of the file brings
back. Sibling routes that compute the same thing (a private helper, another
module's copy, ``n_step_return`` with ``n = 1``) are listed in the same
``reference_disabled(...)`` call of a hidden test.

Torch functions named there (``torch.logsumexp``,
``torch.distributions.kl_divergence``) are not rewritten: they are *forbidden*
for that question, which the sandbox enforces in the student's process.

Only ``.py`` files are copied (no ``__pycache__``, no pretrained weights).
"""

from __future__ import annotations

import ast
import inspect
import pathlib
import shutil
import types
from typing import Iterable

import course_lib

PACKAGE = pathlib.Path(course_lib.__file__).resolve().parent
STUB_MESSAGE = "{name} is disabled while your exercise is graded: call your own implementation"


class BuildError(Exception):
    """A test names something the grading build cannot disable."""


# ------------------------------------------------------------------ which functions
def _reference_expressions(test_source: str) -> list[tuple[str, list[ast.stmt]]]:
    """(expression, the imports of its test function) for every argument of ``reference_disabled(...)``."""
    tree = ast.parse(test_source)
    found = []
    for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        imports = [n for n in ast.walk(func) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in ast.walk(func):
            if isinstance(node, ast.Call):
                callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if callee == "reference_disabled":
                    found += [(ast.unparse(arg), imports) for arg in node.args]
    return found


def _resolve(expression: str, imports: list[ast.stmt]):
    namespace: dict = {}
    exec(compile(ast.Module(body=list(imports), type_ignores=[]), "<test imports>", "exec"), namespace)
    try:
        return eval(compile(expression, "<reference>", "eval"), namespace)
    except Exception as err:
        raise BuildError(f"reference_disabled({expression}): {type(err).__name__}: {err}") from None


def classify(obj, expression: str = "?") -> tuple[str, str]:
    """("disable", "module:qualname") for a course_lib function, ("forbid", "torch.name") for a torch one."""
    obj = getattr(obj, "__func__", obj)
    obj = inspect.unwrap(obj) if callable(obj) else obj
    module = getattr(obj, "__module__", None) or ""
    if isinstance(obj, types.FunctionType) and module.split(".")[0] == "course_lib":
        return "disable", f"{module}:{obj.__qualname__}"
    if module.split(".")[0] == "torch" or (isinstance(obj, types.BuiltinFunctionType) and module in ("", "torch")):
        name = getattr(obj, "__name__", None)
        if not name:
            raise BuildError(f"reference_disabled({expression}): cannot name this torch object")
        return "forbid", f"{module or 'torch'}.{name}"
    raise BuildError(f"reference_disabled({expression}) names {obj!r}: only course_lib functions and torch functions "
                     "can be disabled for grading")


def references(test_sources: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Question -> {"disable": [course_lib "module:qualname"], "forbid": [torch names]} from its tests."""
    out = {}
    for question, text in sorted(test_sources.items()):
        disable, forbid = [], []
        for expression, imports in _reference_expressions(text):
            kind, name = classify(_resolve(expression, imports), expression)
            target = disable if kind == "disable" else forbid
            if name not in target:
                target.append(name)
        out[question] = {"disable": disable, "forbid": forbid}
    return out


# ------------------------------------------------------------------ the build
def _stub_body(node: ast.FunctionDef, name: str) -> list[ast.stmt]:
    body = []
    doc = ast.get_docstring(node, clean=False)
    if doc is not None:
        body.append(ast.Expr(ast.Constant(doc)))
    body.append(ast.parse(f"raise NotImplementedError({STUB_MESSAGE.format(name=name)!r})").body[0])
    return body


def _rewrite(tree: ast.Module, qualnames: set[str], module: str) -> set[str]:
    """Replace the bodies of the functions at ``qualnames`` (``f``, ``Class.f``); return those found."""
    found = set()

    def visit(body: list[ast.stmt], prefix: str):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                qual = prefix + node.name
                if qual in qualnames:
                    node.body = _stub_body(node, f"{module}.{qual}")
                    found.add(qual)
            elif isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, prefix)
                visit(getattr(node, "orelse", []), prefix)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, prefix)

    visit(tree.body, "")
    return found


def build(dest: pathlib.Path, disabled: Iterable[str], package: pathlib.Path = PACKAGE) -> pathlib.Path:
    """Write ``dest/course_lib``: ``package``'s ``.py`` files with the ``disabled`` functions' bodies raising.

    Args:
        dest: the folder that will hold ``course_lib/`` (created; an existing ``course_lib/`` is replaced).
        disabled: ``"course_lib.rl.dqn:td_target"``-style names (module, then qualified name).
        package: the real ``course_lib`` package folder.

    Raises:
        BuildError: a named function is not defined (by a ``def``) in its module's source.
    """
    dest = pathlib.Path(dest)
    target = dest / "course_lib"
    if target.exists():
        shutil.rmtree(target)
    by_module: dict[str, set[str]] = {}
    for item in disabled:
        module, _, qual = item.partition(":")
        by_module.setdefault(module, set()).add(qual)
    for src in sorted(package.rglob("*.py")):
        if "__pycache__" in src.parts:
            continue
        rel = src.relative_to(package)
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        module = ".".join(("course_lib", *rel.with_suffix("").parts))
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        if module in by_module:
            tree = ast.parse(src.read_text(), filename=str(src))
            wanted = by_module.pop(module)
            found = _rewrite(tree, wanted, module)
            if found != wanted:
                raise BuildError(f"{module}: no def for {sorted(wanted - found)} (only functions defined with "
                                 "`def` can be disabled for grading)")
            out.write_text(f"# grading build of {module}: reference answers disabled\n" + ast.unparse(tree) + "\n")
        else:
            shutil.copyfile(src, out)
    if by_module:
        raise BuildError(f"no such course_lib module: {sorted(by_module)}")
    return target
