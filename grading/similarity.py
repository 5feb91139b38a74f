#!/usr/bin/env python3
"""Flag submissions whose answer matches course_lib's reference or another submission's, up to names and layout.

Isolated grading (``grading/sandbox.py``) stops an answer from *calling*
the library's reference; it cannot stop a student from *copying* it by hand
(the library is public) or from copying a classmate. This script flags such
answers for a person to look at; it changes no score.

Each answer (the function a question's tests take, from the submission's
answer cells) is **normalised**: parsed with :mod:`ast`, docstrings and type
annotations dropped, every identifier the author chose (function, argument,
variable, import alias) replaced by one placeholder (so renaming, and
dropping the statement that introduced a name, change nothing), string
constants replaced by one token; attribute names (``torch.exp``), imported
module names and numbers stay. Comments and formatting are gone with the parse. Two answers are then
compared as token sequences:

- ``ratio``: :class:`difflib.SequenceMatcher`'s similarity (1.0 = the same
  code up to names, comments and formatting);
- ``coverage``: the share of the *shorter* answer found in the longer one
  (a reference body copied without its argument checks scores high here).

A pair is flagged when ``ratio >= --threshold`` (default 0.9), or when
``coverage >= --coverage`` (default 0.95). Pairs whose shorter answer has
fewer than ``--min-tokens`` tokens (default 25: one-liners that everyone
writes alike) and blank answers (``...``) are never flagged.

Usage::

    python grading/similarity.py --autograder dist/04_reinforce/autograder/04_reinforce-autograder.zip \\
        --submissions submissions/04_reinforce --out grades/04_reinforce/similarity.csv

``grading/grade_local.py`` runs it after grading and writes ``similarity.csv``
beside ``gradebook.csv``. Columns: question, submission, other (a submission
file or ``course_lib:<function>``), ratio, coverage, tokens, reason.
"""

from __future__ import annotations

import argparse
import ast
import csv
import difflib
import importlib
import inspect
import json
import pathlib
import sys
import textwrap
import zipfile
from typing import Iterable

HERE = pathlib.Path(__file__).resolve().parent


# ------------------------------------------------------------------ normalising
class _Normaliser(ast.NodeTransformer):
    """Every identifier the author chose becomes ``_``; attribute names and imported module names stay."""

    def _rename(self, name: str) -> str:
        return "_"

    def visit_FunctionDef(self, node):
        node.name = self._rename(node.name)
        node.returns = None
        node.decorator_list = [self.visit(d) for d in node.decorator_list]
        node.args = self.visit(node.args)
        node.body = [self.visit(s) for s in _strip_docstring(node.body)]
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self._rename(node.name)
        node.body = [self.visit(s) for s in _strip_docstring(node.body)]
        return node

    def visit_arg(self, node):
        node.arg = self._rename(node.arg)
        node.annotation = None
        return node

    def visit_Name(self, node):
        node.id = self._rename(node.id)
        return node

    def visit_alias(self, node):
        node.asname = self._rename(node.asname or node.name.split(".")[0])
        return node

    def visit_AnnAssign(self, node):
        value = node.value if node.value is not None else ast.Constant(None)
        return ast.Assign(targets=[self.visit(node.target)], value=self.visit(value), lineno=node.lineno)

    def visit_Constant(self, node):
        if isinstance(node.value, str):
            node.value = "<str>"
        return node


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body or [ast.Pass()]


def normalise(source: str) -> list[str]:
    """The answer as a token sequence, independent of names, comments, docstrings and formatting.

    Raises:
        SyntaxError: the source does not parse.
    """
    tree = ast.parse(textwrap.dedent(source))
    tree.body = _strip_docstring(tree.body)
    tree = _Normaliser().visit(tree)
    tokens: list[str] = []

    def walk(node):
        tokens.append(type(node).__name__)
        for name, value in ast.iter_fields(node):
            if name in ("ctx", "type_comment", "kind"):
                continue
            if isinstance(value, ast.AST):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        walk(item)
                    elif item is not None:
                        tokens.append(repr(item))
            elif value is not None and name not in ("lineno", "col_offset", "end_lineno", "end_col_offset"):
                tokens.append(f"{name}={value!r}")

    walk(tree)
    return tokens


def compare(a: list[str], b: list[str]) -> tuple[float, float]:
    """(ratio, coverage of the shorter sequence) of two token sequences."""
    if not a or not b:
        return 0.0, 0.0
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    return matcher.ratio(), matched / min(len(a), len(b))


def is_blank(source: str) -> bool:
    """A student stub: a function whose body is only ``...`` (and a docstring), or nothing at all."""
    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    funcs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not funcs:
        return not [n for n in tree.body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    body = _strip_docstring(funcs[-1].body)
    return all(isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant) and s.value.value is Ellipsis
               or isinstance(s, ast.Pass) for s in body)


# ------------------------------------------------------------------ answers of a submission
def _notebook(path: pathlib.Path) -> dict:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith(".ipynb") and "/." not in n]
            if not names:
                raise ValueError("no notebook in the zip")
            return json.loads(zf.read(names[0]))
    return json.loads(path.read_text())


def answer_of(nb: dict, name: str) -> str | None:
    """The source of ``name``: its last ``def`` in the answer cells (tag ``otter_answer_cell``), else in
    any code cell, else the answer cell that assigns it; None when no cell defines it."""
    answer_cells, other_cells = [], []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        tags = cell.get("metadata", {}).get("tags", []) or []
        (answer_cells if "otter_answer_cell" in tags else other_cells).append(source)
    for cells in (answer_cells, other_cells):
        found = None
        for source in cells:
            try:
                tree = ast.parse(source)
            except SyntaxError:
                continue
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                    found = ast.get_source_segment(source, node)
                elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                    found = source
        if found:
            return found
    return None


def question_names(test_sources: dict[str, str]) -> dict[str, list[str]]:
    """Question -> the notebook names its tests take (their parameters)."""
    out = {}
    for q, text in test_sources.items():
        names: list[str] = []
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and any(
                    (isinstance(d, ast.Call) and getattr(d.func, "id", "") == "test_case") for d in node.decorator_list):
                names += [a.arg for a in node.args.args if a.arg not in names and a.arg != "env"]
        out[q] = names
    return out


def reference_sources(manifest: dict) -> dict[str, tuple[str, str]]:
    """Question -> (``course_lib:<module.function>``, its source) for the first function its tests disable."""
    out = {}
    for q, info in manifest.get("questions", {}).items():
        for item in info.get("disable", [])[:1]:
            module, _, qual = item.partition(":")
            try:
                obj = importlib.import_module(module)
                for part in qual.split("."):
                    obj = getattr(obj, part)
                out[q] = (f"course_lib:{module}.{qual}", inspect.getsource(obj))
            except (ImportError, AttributeError, OSError, TypeError):
                continue
    return out


def read_autograder(zip_path: pathlib.Path) -> tuple[dict[str, str], dict]:
    with zipfile.ZipFile(zip_path) as zf:
        tests = {pathlib.PurePosixPath(n).stem: zf.read(n).decode() for n in zf.namelist()
                 if n.startswith("tests/") and n.endswith(".py")}
        manifest = json.loads(zf.read("grading_manifest.json")) if "grading_manifest.json" in zf.namelist() else {}
    return tests, manifest


# ------------------------------------------------------------------ flags
def flags(answers: dict[str, dict[str, str | None]], references: dict[str, tuple[str, str]], *,
          threshold: float = 0.9, coverage: float = 0.95, min_tokens: int = 25) -> list[dict]:
    """Rows for every suspicious pair.

    Args:
        answers: submission file -> question -> answer source (None: not answered).
        references: question -> (label, source) of the library's reference.
    """
    rows = []
    questions = sorted({q for per in answers.values() for q in per}, key=lambda q: (len(q), q))
    for q in questions:
        tokens: dict[str, list[str]] = {}
        for sub, per in sorted(answers.items()):
            source = per.get(q)
            if not source or is_blank(source):
                continue
            try:
                tokens[sub] = normalise(source)
            except SyntaxError:
                continue
        if q in references:
            label, ref_source = references[q]
            try:
                ref_tokens = normalise(ref_source)
            except SyntaxError:
                ref_tokens = []
            for sub, toks in tokens.items():
                ratio, cov = compare(toks, ref_tokens)
                reason = _reason(toks, ref_tokens, ratio, cov, threshold, coverage, min_tokens, reference=True)
                if reason:
                    rows.append(dict(question=q, submission=sub, other=label, ratio=round(ratio, 3),
                                     coverage=round(cov, 3), tokens=len(toks), reason=reason))
        subs = sorted(tokens)
        for i, a in enumerate(subs):
            for b in subs[i + 1:]:
                ratio, cov = compare(tokens[a], tokens[b])
                reason = _reason(tokens[a], tokens[b], ratio, cov, threshold, coverage, min_tokens, reference=False)
                if reason:
                    rows.append(dict(question=q, submission=a, other=b, ratio=round(ratio, 3), coverage=round(cov, 3),
                                     tokens=min(len(tokens[a]), len(tokens[b])), reason=reason))
    return rows


def _reason(a, b, ratio, cov, threshold, coverage, min_tokens, *, reference: bool) -> str:
    shorter = min(len(a), len(b))
    who = "course_lib's reference" if reference else "another submission"
    if shorter < min_tokens:       # a one-liner everyone writes alike
        return ""
    if a == b:
        return f"identical to {who} up to names, comments and formatting"
    if ratio >= threshold:
        return f"{ratio:.0%} similar to {who} after normalisation"
    if cov >= coverage:
        return f"{cov:.0%} of the shorter answer appears in {who}"
    return ""


def check_folder(autograder: pathlib.Path, submissions: Iterable[pathlib.Path], **kwargs) -> tuple[list[dict], list[str]]:
    """Flags for a set of submission files; also the files that could not be read."""
    tests, manifest = read_autograder(autograder)
    names = question_names(tests)
    answers, unreadable = {}, []
    for path in submissions:
        try:
            nb = _notebook(path)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            unreadable.append(f"{path.name}: {err}")
            continue
        answers[path.name] = {q: next((a for a in (answer_of(nb, n) for n in ns) if a), None) for q, ns in names.items()}
    return flags(answers, reference_sources(manifest), **kwargs), unreadable


COLUMNS = ["question", "submission", "other", "ratio", "coverage", "tokens", "reason"]


def write_csv(rows: list[dict], path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="similarity.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--autograder", required=True, help="the chapter's autograder zip")
    parser.add_argument("--submissions", required=True, help="folder of .ipynb or .zip submissions")
    parser.add_argument("--out", required=True, help="CSV file to write")
    parser.add_argument("--threshold", type=float, default=0.9, help="flag at this similarity ratio (default 0.9)")
    parser.add_argument("--coverage", type=float, default=0.95, help="flag at this share of the shorter answer (default 0.95)")
    parser.add_argument("--min-tokens", type=int, default=25, help="pairs with a shorter answer are not flagged (default 25)")
    args = parser.parse_args(argv)
    folder = pathlib.Path(args.submissions)
    if not folder.is_dir():
        print(f"similarity: error: {folder} is not a folder", file=sys.stderr)
        return 2
    files = sorted(p for p in folder.iterdir() if p.suffix in (".ipynb", ".zip"))
    rows, unreadable = check_folder(pathlib.Path(args.autograder), files, threshold=args.threshold,
                                    coverage=args.coverage, min_tokens=args.min_tokens)
    write_csv(rows, pathlib.Path(args.out))
    for line in unreadable:
        print(f"similarity: could not read {line}", file=sys.stderr)
    print(f"similarity: {len(rows)} flag(s) in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
