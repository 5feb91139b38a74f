#!/usr/bin/env python3
"""Generate the student notebooks and the autograder zips from the master chapter notebooks.

A graded chapter is a notebook in ``notebooks/`` with an ``# ASSIGNMENT CONFIG``
raw cell (see ``grading/AUTHORING.md``). For each one:

1. ``otter assign`` (run in a temporary folder) writes the student notebook
   (solutions replaced by ``...``, hidden tests removed) and the autograder
   (all tests, public and hidden, and the zip for Gradescope, ``otter grade``
   or ``grading/grade_local.py``).
2. The student notebook is post-processed:
   - the master's install cell (tag ``course-setup``) becomes two cells: one
     that installs the pinned ``course_lib`` release (``v<__version__>``) and
     the pinned otter-grader, each on its own, with a clear message and a way
     out when an install fails; one that writes the public tests to
     ``./public_tests`` and creates ``grader`` (otter's grading puts all tests
     in ``./tests``: nothing in the notebook touches that folder);
   - cells tagged ``student-remove`` are dropped, outputs are cleared, the
     book-only tags are removed;
   - every code cell after the preamble (the cells before the first markdown
     cell with a ``## `` heading, wherever the heading sits in the cell) except
     answer cells, ``grader.check`` cells and cells tagged ``grading-keep`` is
     tagged ``otter_ignore``, so grading skips training;
   - MyST becomes plain Markdown for Colab: ``{eq}`` -> "(4.7)", ``$$ ... $$
     (label)`` -> ``\\tag{4.7}``, ``{cite:p}`` -> "(Williams, 1992)",
     ``{cite:t}`` -> "Williams (1992)", ``{doc}`` -> the page title,
     admonition fences -> a bold title;
   - a last section runs every public check and writes the submission zip.
3. The autograder zip gets isolated grading (:func:`add_sandbox`): the otter
   plugin ``course_lib.grading.SandboxPlugin`` in ``otter_config.json``, the
   checker and worker sides (``grading/sandbox.py``,
   ``grading/sandbox_worker.py``), the grading build of ``course_lib`` (every
   function the chapter's tests name in ``reference_disabled(...)`` rewritten
   to raise, ``grading/grading_build.py``) and ``grading_manifest.json``.
4. The student notebook goes to ``student/<chapter>.ipynb`` (committed; the
   Colab and download links of the book point there) and to
   ``<out>/<chapter>/student/``; the autograder to
   ``<out>/<chapter>/autograder/`` with the zip ``<chapter>-autograder.zip``;
   ``course_lib``'s wheel to ``<out>/course_lib-<version>-py3-none-any.whl``
   (the students' offline install: uploaded next to a notebook, its setup cell
   installs it; ``--no-wheel`` skips it).

The book's home is written once, as ``repository: url:`` in ``_config.yml``.
Everything generated reads it from there: the student install cell
(``course-lib @ git+<url>@v<version>``) and the autograder image's
requirements, which ``grading/requirements.txt.in`` templates and this script
writes to ``grading/requirements.txt`` (committed, like ``student/``) and into
every zip. The hand-written mentions (README, ``book/*.md``,
``pyproject.toml``'s ``[project.urls]``, the masters' install cells) are
checked by ``--check`` and rewritten by ``--sync-urls`` (for a fork).

Usage::

    python grading/make_student.py                         # every graded chapter into dist/ and student/
    python grading/make_student.py --chapter 04_reinforce  # one chapter
    python grading/make_student.py --check                 # fail if student/ is out of date (CI)
    python grading/make_student.py --out dist --force      # also delete other files in dist/<chapter>
    python grading/make_student.py --sync-urls             # point README, book/, pyproject, masters at _config.yml's URL
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata

import nbformat

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"                               # repository.url: the book's home, written once
REQUIREMENTS_TEMPLATE = ROOT / "grading" / "requirements.txt.in"
REQUIREMENTS = ROOT / "grading" / "requirements.txt"        # generated from the template (committed)
STUDENT_DIR = ROOT / "student"
BIB = ROOT / "book" / "references.bib"
PUBLIC_TESTS_DIR = "public_tests"
MANIFEST_NAME = "grading_manifest.json"

BOOK_ONLY_TAGS = {"hide-input", "hide-output", "hide-cell", "remove-input", "remove-output", "remove-cell"}
SETUP_TAG = "course-setup"            # the master's install cell, replaced in the student version
STUDENT_REMOVE_TAG = "student-remove"  # dropped from the student version
GRADING_KEEP_TAG = "grading-keep"      # run at grading even though it is not in the preamble
OTTER_IGNORE_TAG = "otter_ignore"      # otter skips it at grading
ANSWER_TAG = "otter_answer_cell"
GENERATED = ("student", "autograder")  # the subfolders of <out>/<chapter> that a rebuild replaces


class StudentError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


# ------------------------------------------------------------------ versions
def course_lib_version() -> str:
    """``course_lib.__version__``, read from the source (no import)."""
    text = (ROOT / "course_lib" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, flags=re.M)
    if not match:
        raise StudentError("course_lib/__init__.py has no __version__ = '...' line")
    return match.group(1)


def release_tag(version: str | None = None) -> str:
    """The git tag of the ``course_lib`` release that matches the book: ``v<__version__>``."""
    return f"v{version or course_lib_version()}"


def repository_url(config: pathlib.Path = CONFIG) -> str:
    """The book's repository, ``repository: url:`` in ``config`` (``_config.yml``), without a trailing ``/`` or ``.git``.

    Raises:
        StudentError: the file cannot be read, is not YAML, or has no https:// ``repository.url``.
    """
    import yaml

    config = pathlib.Path(config)
    try:
        data = yaml.safe_load(config.read_text())
    except OSError as err:
        raise StudentError(f"cannot read {config}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise StudentError(f"{config} is not valid YAML: {str(err).splitlines()[0]}") from None
    repo = data.get("repository") if isinstance(data, dict) else None
    url = str((repo or {}).get("url") or "").strip() if isinstance(repo, dict) or repo is None else ""
    url = _normalized_url(url)
    if not re.fullmatch(r"https://[^\s/@]+/[^\s@]+", url):
        raise StudentError(f"{config}: repository.url must be the book's https:// repository address "
                           f"(e.g. https://github.com/<owner>/<repo>), not {url!r}")
    return url


def _normalized_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url[: -len(".git")] if url.endswith(".git") else url


def requirements_text(config: pathlib.Path = CONFIG, version: str | None = None) -> str:
    """``grading/requirements.txt``: the template with ``config``'s repository URL and the release tag filled in.

    Raises:
        StudentError: the template is missing or lacks a ``{repository_url}`` or ``{tag}`` field.
    """
    try:
        template = REQUIREMENTS_TEMPLATE.read_text()
    except OSError as err:
        raise StudentError(f"cannot read {REQUIREMENTS_TEMPLATE.relative_to(ROOT)}: {err.strerror}") from None
    if "{repository_url}" not in template or "{tag}" not in template:
        raise StudentError(f"{REQUIREMENTS_TEMPLATE.relative_to(ROOT)} must install course-lib from "
                           "git+{repository_url}@{tag}")
    return template.format(repository_url=repository_url(config), tag=release_tag(version))


def otter_version() -> str:
    """The installed otter-grader version: the autograder zip built here installs the same one."""
    return metadata.version("otter-grader")


# ------------------------------------------------------------------ reading masters
def is_master(path: pathlib.Path) -> bool:
    """True when the notebook starts an otter assignment (an ``# ASSIGNMENT CONFIG`` raw cell)."""
    nb = nbformat.read(path, as_version=4)
    return any(c.cell_type == "raw" and c.source.lstrip().startswith("# ASSIGNMENT CONFIG") for c in nb.cells)


def masters() -> list[pathlib.Path]:
    """Every graded chapter's master notebook, in chapter order."""
    return [p for p in sorted((ROOT / "notebooks").glob("*.ipynb")) if is_master(p)]


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


def question_points(master: pathlib.Path) -> dict[str, float]:
    """Question name -> its ``points:`` value in the ``# BEGIN QUESTION`` cell."""
    nb = nbformat.read(master, as_version=4)
    points = {}
    for cell in nb.cells:
        src = cell.source.strip()
        if cell.cell_type == "raw" and src.startswith("# BEGIN QUESTION"):
            name = re.search(r"name:\s*(\S+)", src).group(1)
            match = re.search(r"points:\s*([0-9.]+)", src)
            points[name] = float(match.group(1)) if match else 1.0
    return points


def resolve_chapter(spec: str) -> pathlib.Path:
    """A master notebook from a chapter name (``04_reinforce``), a number (``04``, ``4``) or a path.

    Raises:
        StudentError: no such chapter, or it has no exercises.
    """
    path = pathlib.Path(spec)
    if path.suffix == ".ipynb" or "/" in spec:
        path = path if path.is_absolute() else (pathlib.Path.cwd() / path)
        if not path.is_file():
            raise StudentError(f"no notebook at {spec}")
        if not is_master(path):
            raise StudentError(f"{spec} has no '# ASSIGNMENT CONFIG' cell, so it has no graded exercises")
        return path.resolve()
    available = masters()
    key = spec.strip()
    for m in available:
        number = m.stem.split("_", 1)[0]
        if key in (m.stem, number) or (key.isdigit() and number.isdigit() and int(key) == int(number)) or m.stem.endswith("_" + key):
            return m
    names = ", ".join(m.stem for m in available) or "none"
    raise StudentError(f"no graded chapter {spec!r}; graded chapters: {names}")


# ------------------------------------------------------------------ MyST -> plain Markdown
def _bib_entries(bib_text: str) -> dict[str, dict[str, str]]:
    """Citation key -> {"author": ..., "year": ...} from a BibTeX file (enough for author-year citations)."""
    entries = {}
    for match in re.finditer(r"@\w+\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", bib_text, flags=re.S):
        key, body = match.group(1), match.group(2)
        fields = {}
        for name in ("author", "year"):
            f = re.search(rf"\b{name}\s*=\s*(\{{(?:[^{{}}]|\{{[^{{}}]*\}})*\}}|\"[^\"]*\"|\d+)", body, flags=re.I)
            if f:
                fields[name] = f.group(1).strip("{}\"").replace("{", "").replace("}", "")
        entries[key] = fields
    return entries


def _surnames(author: str) -> list[str]:
    names = []
    for person in re.split(r"\s+and\s+", author.strip()):
        person = " ".join(person.split())
        names.append(person.split(",")[0].strip() if "," in person else person.split(" ")[-1])
    return names


def _cite_text(key: str, bib: dict[str, dict[str, str]]) -> tuple[str, str]:
    """(authors, year) for one key, e.g. ("Salimans et al.", "2017")."""
    if key not in bib:
        raise StudentError(f"citation {key!r} is not in {BIB.relative_to(ROOT)}")
    names = _surnames(bib[key].get("author", key))
    if len(names) == 1:
        authors = names[0]
    elif len(names) == 2 and names[1].lower() != "others":
        authors = f"{names[0]} and {names[1]}"
    else:
        authors = f"{names[0]} et al."
    return authors, bib[key].get("year", "n.d.")


def equation_numbers(nb: nbformat.NotebookNode, chapter: int) -> dict[str, str]:
    """Label -> "N.k" for every labelled display equation ``$$ ... $$ (label)``, in order."""
    labels: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for match in re.finditer(r"\$\$[ \t]*\(([\w:.-]+)\)", cell.source):
            labels.setdefault(match.group(1), f"{chapter}.{len(labels) + 1}")
    return labels


def _doc_title(target: str, base: pathlib.Path) -> str:
    path = (base / target).with_suffix(".md")
    if not path.is_file():
        path = path.with_suffix(".ipynb")
    if path.is_file():
        text = path.read_text()
        match = re.search(r'^#\s+(.+?)\s*$', text if path.suffix == ".md" else "\n".join(
            "".join(c.get("source", "")) for c in json.loads(text)["cells"] if c["cell_type"] == "markdown"), flags=re.M)
        if match:
            return match.group(1).strip()
    return target.rsplit("/", 1)[-1]


def myst_to_markdown(text: str, equations: dict[str, str], bib: dict[str, dict[str, str]], base: pathlib.Path) -> str:
    """Turn the MyST of one markdown cell into Markdown that Colab renders.

    Raises:
        StudentError: an ``{eq}`` label or a citation key that does not resolve.
    """
    def eq(match):
        label = match.group(1).strip()
        if label not in equations:
            raise StudentError(f"{{eq}}`{label}` refers to no labelled equation in this chapter")
        return f"({equations[label]})"

    def cite(match):
        role, keys = match.group(1), [k.strip() for k in match.group(2).split(",") if k.strip()]
        parts = [_cite_text(k, bib) for k in keys]
        if role == "cite:t":
            return "; ".join(f"{a} ({y})" for a, y in parts)
        return "(" + "; ".join(f"{a}, {y}" for a, y in parts) + ")"

    def doc(match):
        body = match.group(1)
        explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", body, flags=re.S)
        return f"*{explicit.group(1).strip()}*" if explicit else f"*{_doc_title(body.strip(), base)}*"

    def ref(match):
        body = match.group(2)
        explicit = re.fullmatch(r"(.*?)\s*<([^>]+)>", body, flags=re.S)
        return explicit.group(1).strip() if explicit else body.strip()

    def fence(match):
        name, title, body = match.group(2), (match.group(3) or "").strip(), match.group(4)
        body = "\n".join(line for line in body.splitlines() if not re.match(r"^:\w+:", line.strip()))
        heading = title if name == "admonition" and title else (name.capitalize() + (f": {title}" if title else ""))
        quoted = "\n".join(("> " + line) if line.strip() else ">" for line in body.strip("\n").splitlines())
        return f"> **{heading}.**\n>\n{quoted}\n"

    text = re.sub(r"(\$\$)[ \t]*\(([\w:.-]+)\)",
                  lambda m: f"\\tag{{{equations[m.group(2)]}}}\n$$" if m.group(2) in equations else "$$", text)
    text = re.sub(r"\{eq\}`([^`]+)`", eq, text)
    text = re.sub(r"\{(cite:p|cite:t|cite)\}`([^`]+)`", cite, text)
    text = re.sub(r"\{doc\}`([^`]+)`", doc, text)
    text = re.sub(r"\{(ref|numref|term)\}`([^`]+)`", ref, text)
    text = re.sub(r"\{glue:?\w*\}`[^`]+`", "(see the output above)", text)
    text = re.sub(r"^(:{3,}|`{3,})\{(\w[\w-]*)\}[ \t]*(.*?)\n(.*?)^\1[ \t]*$", fence, text, flags=re.S | re.M)
    return text


# ------------------------------------------------------------------ generated cells
SETUP_TEMPLATE = '''\
# Setup: run this cell first. In Colab (or any fresh Python) it installs, each on its own:
#   course_lib {tag}, the release that matches the book this notebook comes from, and
#   otter-grader {otter}, the version the autograder uses.
# Colab's torch (with CUDA) is kept. Nothing is installed when a package is already there.
# Offline (no GitHub)? Put the wheel course_lib-{version}-py3-none-any.whl next to this notebook
# (Colab: the Files panel; your instructor has it: `make student` writes it to dist/) and run this cell.
import glob, importlib.util, re, subprocess, sys
from importlib import metadata

_WHEELS = sorted(glob.glob("course_lib-*.whl") + glob.glob("/content/course_lib-*.whl"))
COURSE_LIB = _WHEELS[-1] if _WHEELS else "course-lib @ git+{repo}@{tag}"
OTTER = "otter-grader=={otter}"
_CAUSE = re.compile(r"(?i)could not resolve|name resolution|failed to connect|network is unreachable|"
                    r"connection (refused|reset|timed out)|timed out|no matching distribution|fatal:|^error:")

def _install(module, requirement):
    if importlib.util.find_spec(module) is not None:
        return True
    print(f"installing {{requirement}} ...")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", requirement], capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        causes = [line.strip() for line in lines if _CAUSE.search(line.strip())]
        shown = list(dict.fromkeys(causes[:3] + lines[-3:]))       # the line naming the cause, then pip's last words
        print(f"could not install {{requirement}}; pip said:\\n" + "\\n".join(shown))
    return done.returncode == 0

_ok = [_install("course_lib", COURSE_LIB), _install("otter", OTTER)]
if not all(_ok):
    raise RuntimeError(
        "setup failed (see pip's message above). Ways out: offline, upload course_lib-{version}-py3-none-any.whl "
        "next to this notebook and run this cell again; or install from a local copy, "
        "`git clone {repo} course-book && pip install -e course-book`, "
        "or `pip install otter-grader=={otter}`, then run this cell again."
    ) from None
for _dist, _want in (("course-lib", "{version}"), ("otter-grader", "{otter}")):
    if metadata.version(_dist) != _want:
        print(f"note: {{_dist}} {{metadata.version(_dist)}} is installed; this notebook was made for {{_want}}.")
print("course_lib", metadata.version("course-lib"), "and otter-grader", metadata.version("otter-grader"), "ready.")
'''

TESTS_TEMPLATE = '''\
# The public tests of this chapter's exercises, for grader.check. They are worth 0 points:
# grading runs the hidden tests too, with its own copy of every test.
import os, otter
PUBLIC_TESTS = {tests}
os.makedirs("{folder}", exist_ok=True)
for _name, _text in PUBLIC_TESTS.items():
    with open(os.path.join("{folder}", _name), "w") as _f:
        _f.write(_text)
grader = otter.Notebook("{notebook}" if os.path.exists("{notebook}") else None, tests_dir="{folder}")
'''

SUBMIT_MARKDOWN = """\
## Submitting

{points_line} Run the cell below: it runs every public test and
writes a `.zip` file (this notebook and otter's log of your checks). **Hand in
that `.zip` file; in Colab, where no zip can be written, hand in this notebook
(*File → Download → Download .ipynb*).**"""

SUBMIT_CODE = """\
import sys
display(grader.check_all())
if "google.colab" in sys.modules:
    print("Colab: hand in this notebook (File -> Download -> Download .ipynb).")
else:
    grader.export(pdf=False)
"""


def setup_cells(public_tests: dict[str, str], notebook_name: str, repo_url: str | None = None) -> list[nbformat.NotebookNode]:
    """The two first code cells of a student notebook: pinned installs (from ``repo_url``, default
    ``_config.yml``'s), then the public tests and ``grader``."""
    version = course_lib_version()
    repo_url = repo_url or repository_url()
    setup = nbformat.v4.new_code_cell(SETUP_TEMPLATE.format(repo=repo_url, tag=release_tag(version), version=version, otter=otter_version()))
    body = "{\n" + "".join(f"    {name!r}: {text!r},\n" for name, text in sorted(public_tests.items())) + "}"
    tests = nbformat.v4.new_code_cell(TESTS_TEMPLATE.format(tests=body, folder=PUBLIC_TESTS_DIR, notebook=notebook_name))
    return [setup, tests]


def submit_cells(points: dict[str, float]) -> list[nbformat.NotebookNode]:
    total = sum(points.values())
    each = ", ".join(f"{q}: {p:g}" for q, p in points.items())
    line = f"The exercises are worth {total:g} points in all ({each}), all from hidden tests."
    return [nbformat.v4.new_markdown_cell(SUBMIT_MARKDOWN.format(points_line=line)), nbformat.v4.new_code_cell(SUBMIT_CODE)]


# ------------------------------------------------------------------ building
def _master_copy(master: pathlib.Path, folder: pathlib.Path, requirements: pathlib.Path) -> pathlib.Path:
    """A copy of ``master`` in ``folder`` whose ``# ASSIGNMENT CONFIG`` installs ``requirements`` (the generated file).

    Raises:
        StudentError: the master's config has no ``requirements:`` line.
    """
    nb = nbformat.read(master, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("# ASSIGNMENT CONFIG"):
            cell.source, n = re.subn(r"^requirements:.*$", f"requirements: {json.dumps(str(requirements))}",
                                     cell.source, flags=re.M)
            if n != 1:
                raise StudentError(f"{master.name}: its ASSIGNMENT CONFIG needs one 'requirements:' line "
                                   "(see grading/AUTHORING.md)")
    folder.mkdir(parents=True, exist_ok=True)
    copy_path = folder / master.name
    nbformat.write(nb, copy_path)
    return copy_path


def _run_otter_assign(master: pathlib.Path, dest: pathlib.Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "otter", "assign", "-v", str(master), str(dest)],
        cwd=master.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.strip().splitlines()[-25:])
        raise StudentError(f"otter assign failed on {master.name}; its output:\n{tail}")


def _postprocess(student_nb: nbformat.NotebookNode, master: pathlib.Path, public_tests: dict[str, str],
                 repo_url: str | None = None) -> nbformat.NotebookNode:
    master_nb = nbformat.read(master, as_version=4)
    chapter = int(re.match(r"\d+", master.stem).group(0)) if re.match(r"\d+", master.stem) else 0
    equations = equation_numbers(master_nb, chapter)
    bib = _bib_entries(BIB.read_text()) if BIB.is_file() else {}

    cells = []
    replaced = False
    in_preamble = True
    for cell in student_nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if STUDENT_REMOVE_TAG in tags:
            continue
        if cell.cell_type == "code" and cell.source.lstrip().startswith("# Initialize Otter"):
            continue  # otter's own init cell (init_cell: true); ours comes with the public tests
        if SETUP_TAG in tags:
            if replaced:
                raise StudentError(f"{master.name}: more than one cell is tagged {SETUP_TAG!r}")
            cells.extend(setup_cells(public_tests, master.name, repo_url))
            replaced = True
            continue
        if cell.cell_type == "markdown":
            if re.search(r"^##\s", cell.source, flags=re.M):   # a "## " heading anywhere in the cell ends the preamble
                in_preamble = False
            cell.source = myst_to_markdown(cell.source, equations, bib, master.parent)
        tags = [t for t in tags if t not in BOOK_ONLY_TAGS and t != GRADING_KEEP_TAG]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            cell.metadata.pop("execution", None)
            is_check = re.fullmatch(r'grader\.check\("\w+"\)', cell.source.strip()) is not None
            keep = in_preamble or ANSWER_TAG in tags or is_check or GRADING_KEEP_TAG in cell.metadata.get("tags", [])
            if not keep:
                tags.append(OTTER_IGNORE_TAG)
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        cells.append(cell)
    if not replaced:
        raise StudentError(f"{master.name}: no install cell tagged {SETUP_TAG!r} (see grading/AUTHORING.md)")
    submit = submit_cells(question_points(master))
    for cell in submit[1:]:
        cell.metadata["tags"] = [OTTER_IGNORE_TAG]
    cells.extend(submit)
    for i, cell in enumerate(cells):
        cell.id = f"cell-{i:03d}"  # stable ids: `--check` compares files byte for byte
    student_nb.cells = cells
    student_nb.metadata.pop("widgets", None)
    return student_nb


# ------------------------------------------------------------------ isolated grading in the autograder zip
SANDBOX_PLUGIN = "course_lib.grading.SandboxPlugin"
SANDBOX_LIMITS = {"call_seconds": 10, "case_seconds": 60, "memory_bytes": 4 * 2**30}


def add_sandbox(zip_path: pathlib.Path, autograder_dir: pathlib.Path, chapter: str) -> dict:
    """Make the autograder grade in separate processes (``grading/sandbox.py``).

    Adds to the zip (and to ``autograder_dir``): ``course_grading_sandbox.py``
    and ``course_grading_worker.py`` (the checker's and the student's side),
    ``grading_build/course_lib`` (the library with every function the
    chapter's tests name in ``reference_disabled(...)`` rewritten to raise,
    ``grading/grading_build.py``), ``grading_manifest.json`` (per question:
    the disabled functions and the forbidden torch functions) and the plugin
    in ``otter_config.json``.

    Returns:
        The manifest.

    Raises:
        StudentError: a test names something that cannot be disabled.
    """
    import zipfile

    sys.path.insert(0, str(ROOT / "grading"))
    try:
        import grading_build
    finally:
        sys.path.pop(0)
    with zipfile.ZipFile(zip_path) as zf:
        entries = {name: zf.read(name) for name in zf.namelist()}
    tests = {pathlib.PurePosixPath(n).stem: data.decode() for n, data in entries.items()
             if n.startswith("tests/") and n.endswith(".py")}
    try:
        refs = grading_build.references(tests)
    except grading_build.BuildError as err:
        raise StudentError(f"{chapter}: {err}") from None
    disabled = sorted({name for r in refs.values() for name in r["disable"]})
    manifest = {"chapter": chapter, "disabled": disabled, "questions": refs,
                "note": "written by grading/make_student.py; read by course_grading_sandbox.py"}
    config = json.loads(entries.get("otter_config.json", b"{}"))
    plugins = [p for p in config.get("plugins", []) if SANDBOX_PLUGIN not in (p if isinstance(p, str) else p.keys())]
    config["plugins"] = plugins + [{SANDBOX_PLUGIN: dict(SANDBOX_LIMITS)}]
    with tempfile.TemporaryDirectory(prefix="grading_build_") as tmp:
        try:
            grading_build.build(pathlib.Path(tmp), disabled)
        except grading_build.BuildError as err:
            raise StudentError(f"{chapter}: {err}") from None
        added = {f"grading_build/{p.relative_to(tmp).as_posix()}": p.read_bytes()
                 for p in sorted(pathlib.Path(tmp).rglob("*.py"))}
    added["course_grading_sandbox.py"] = (ROOT / "grading" / "sandbox.py").read_bytes()
    added["course_grading_worker.py"] = (ROOT / "grading" / "sandbox_worker.py").read_bytes()
    added[MANIFEST_NAME] = (json.dumps(manifest, indent=1) + "\n").encode()
    added["otter_config.json"] = (json.dumps(config, indent=2) + "\n").encode()
    entries.update(added)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[name])
    for name, data in added.items():
        if name.startswith("grading_build/"):
            continue
        (autograder_dir / name).write_bytes(data)
    return manifest


def make_student(master: pathlib.Path, out: pathlib.Path, *, force: bool = False,
                 config: pathlib.Path = CONFIG) -> dict[str, pathlib.Path]:
    """Build one chapter: ``<out>/<chapter>/student/`` and ``<out>/<chapter>/autograder/``.

    ``config`` is the Jupyter Book config whose ``repository.url`` the install cell
    and the autograder's requirements install ``course_lib`` from.

    Returns:
        Paths: ``student`` (notebook), ``student_tests`` (public tests folder),
        ``autograder_tests`` (all tests), ``autograder_zip``.

    Raises:
        StudentError: the output folder holds files this script did not write
            (a grades CSV, say) and ``force`` is false;
            otter assign failed (its own output is in the message); the master
            breaks an authoring rule.
    """
    dest = out / master.stem
    if dest.exists() and not dest.is_dir():
        raise StudentError(f"{dest} exists and is not a folder")
    if dest.is_dir():
        others = sorted(p.name for p in dest.iterdir() if p.name not in GENERATED)
        if others and not force:
            raise StudentError(f"{dest} holds {', '.join(others)} besides what this script writes; "
                               "pass --force to delete the whole folder")
        if force:
            shutil.rmtree(dest)
        else:
            for name in GENERATED:
                shutil.rmtree(dest / name, ignore_errors=True)
    repo_url = repository_url(config)
    requirements = requirements_text(config)
    with tempfile.TemporaryDirectory(prefix="make_student_") as tmp:
        work = pathlib.Path(tmp) / master.stem
        req_path = pathlib.Path(tmp) / "requirements.txt"
        req_path.write_text(requirements)
        _run_otter_assign(_master_copy(master, pathlib.Path(tmp) / "src", req_path), work)
        public_dir = work / "student" / "tests"
        public_tests = {p.name: p.read_text() for p in sorted(public_dir.glob("*.py"))}
        student_path = work / "student" / master.name
        nb = _postprocess(nbformat.read(student_path, as_version=4), master, public_tests, repo_url)
        nbformat.write(nb, student_path)
        public_dir.rename(work / "student" / PUBLIC_TESTS_DIR)
        zips = sorted((work / "autograder").glob("*.zip"))
        if not zips:
            raise StudentError(f"otter assign wrote no autograder zip for {master.name}")
        zips[-1].rename(work / "autograder" / f"{master.stem}-autograder.zip")
        for stale in zips[:-1]:
            stale.unlink()
        add_sandbox(work / "autograder" / f"{master.stem}-autograder.zip", work / "autograder", master.stem)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(work, dest, dirs_exist_ok=True)
    return {
        "student": dest / "student" / master.name,
        "student_tests": dest / "student" / PUBLIC_TESTS_DIR,
        "autograder_tests": dest / "autograder" / "tests",
        "autograder_zip": dest / "autograder" / f"{master.stem}-autograder.zip",
    }


def build_wheel(out: pathlib.Path) -> pathlib.Path:
    """``course_lib``'s wheel (the library and its assets) from this checkout, into ``out``.

    It is the student's offline route: uploaded next to a student notebook, the
    notebook's setup cell installs it instead of fetching the release from
    GitHub. Built from a copy of the package (no ``build/`` in the checkout);
    an older ``course_lib-*.whl`` in ``out`` is replaced.

    Raises:
        StudentError: pip could not build it (its last lines are in the message).
    """
    import importlib.util

    with tempfile.TemporaryDirectory(prefix="course_lib_wheel_") as tmp:
        src = pathlib.Path(tmp) / "src"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copyfile(ROOT / name, src / name)
        shutil.copytree(ROOT / "course_lib", src / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(src)]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.insert(4, "--no-build-isolation")  # the installed setuptools: nothing to download
        done = subprocess.run(cmd, capture_output=True, text=True, env={**__import__("os").environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        wheels = sorted(pathlib.Path(tmp).glob("course_lib-*.whl"))
        if done.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-10:])
            raise StudentError(f"could not build the course_lib wheel:\n{tail}")
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("course_lib-*.whl"):
            old.unlink()
        return pathlib.Path(shutil.copy2(wheels[0], out / wheels[0].name))


def _requirements_problem(config: pathlib.Path = CONFIG) -> str | None:
    """A sentence when the committed grading/requirements.txt is not what the template and ``config`` give."""
    if not REQUIREMENTS.is_file() or REQUIREMENTS.read_text() != requirements_text(config):
        return (f"grading/requirements.txt is out of date with grading/requirements.txt.in, "
                f"{_rel(config)}'s repository.url and the release tag {release_tag()}")
    return None


# ------------------------------------------------------------------ the repository URL in hand-written files
# Mentions of the book's repository that a person wrote: pip's git+<url>, `git clone <url>`,
# pyproject's [project.urls], a Colab link to a notebook on GitHub. Each must be _config.yml's URL.
_URL_MENTIONS = (
    re.compile(r"git\+(https?://[^\s\"'`@\\]+)"),
    re.compile(r"git clone (https?://[^\s\"'`\\]+)"),
    re.compile(r"^(?:Homepage|Repository|Source)\s*=\s*\"([^\"]+)\"", flags=re.M),
)
_COLAB_MENTION = re.compile(r"colab\.research\.google\.com/github/([^/\s\"'`\\]+/[^/\s\"'`\\]+)/")


def url_documents(root: pathlib.Path = ROOT) -> list[pathlib.Path]:
    """The hand-written files that name the repository: README, CHANGELOG, pyproject, book/*.md, AUTHORING, the notebooks."""
    names = [root / "README.md", root / "CHANGELOG.md", root / "pyproject.toml", root / "grading" / "AUTHORING.md"]
    names += sorted((root / "book").rglob("*.md")) + sorted((root / "notebooks").glob("*.ipynb"))
    return [p for p in names if p.is_file()]


def sync_url_text(text: str, url: str) -> tuple[str, list[tuple[int, str]]]:
    """``text`` with every repository mention pointing at ``url``, and the (line, mention) pairs that did not."""
    wrong: list[tuple[int, str]] = []
    github = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", url)

    def fix(match: re.Match, want: str | None) -> str:
        """The match with group 1 replaced by ``want`` (kept when ``want`` is None: nothing to put there)."""
        found = match.group(1)
        if want is not None and (found == want or _normalized_url(found) == want):
            return match.group(0)
        wrong.append((text.count("\n", 0, match.start()) + 1, found))
        if want is None:
            return match.group(0)
        start, end = match.start(1) - match.start(), match.end(1) - match.start()
        return match.group(0)[:start] + want + match.group(0)[end:]

    for pattern in _URL_MENTIONS:
        text = pattern.sub(lambda m: fix(m, url), text)
    # Colab opens notebooks from GitHub only: a book hosted elsewhere has no Colab link to point at
    text = _COLAB_MENTION.sub(lambda m: fix(m, github.group(1) if github else None), text)
    return text, sorted(wrong)


def url_problems(config: pathlib.Path = CONFIG, *, fix: bool = False, root: pathlib.Path = ROOT) -> list[str]:
    """``file:line: <mention>`` for every hand-written repository mention that is not ``config``'s URL.

    With ``fix``, the files are rewritten to ``config``'s URL (Colab links only when it is on GitHub).
    """
    url = repository_url(config)
    problems = []
    for path in url_documents(root):
        text = path.read_text()
        new, wrong = sync_url_text(text, url)
        problems += [f"{_rel(path)}:{line}: {found}" for line, found in wrong]
        if fix and new != text:
            path.write_text(new)
    return problems


def _rel(path: pathlib.Path) -> str:
    path = pathlib.Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_student.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="dist", help="folder for <chapter>/student and <chapter>/autograder (default: dist)")
    parser.add_argument("--chapter", action="append", default=[],
                        help="a chapter to build: 04_reinforce, 04 or a notebook path (repeatable; default: every graded chapter)")
    parser.add_argument("--force", action="store_true",
                        help="delete <out>/<chapter> even when it holds files this script did not write")
    parser.add_argument("--check", action="store_true",
                        help="build in a temporary folder and fail if student/ differs from what the masters give")
    parser.add_argument("--student-dir", default=str(STUDENT_DIR), help="where the committed student notebooks live (default: student/)")
    parser.add_argument("--config", default=str(CONFIG),
                        help="the Jupyter Book config whose repository.url the book's installs use (default: _config.yml)")
    parser.add_argument("--sync-urls", action="store_true",
                        help="rewrite the repository URL in README, CHANGELOG, pyproject, book/*.md and notebooks/ "
                             "to the config's repository.url (for a fork), then stop")
    parser.add_argument("--no-wheel", action="store_true",
                        help="do not build <out>/course_lib-<version>-py3-none-any.whl (the students' offline install)")
    parser.add_argument("notebooks", nargs="*", help="master notebooks (same as --chapter)")
    args = parser.parse_args(argv)
    try:
        config = pathlib.Path(args.config).resolve()
        if args.sync_urls:
            fixed = url_problems(config, fix=True)
            print(f"make_student --sync-urls: {len(fixed)} mention(s) now point at {repository_url(config)}"
                  + "".join(f"\n  {p}" for p in fixed))
            return 0
        specs = args.chapter + args.notebooks
        chosen = [resolve_chapter(s) for s in specs] if specs else masters()
        if not chosen:
            raise StudentError("no graded chapter found in notebooks/")
        student_dir = pathlib.Path(args.student_dir).resolve()
        if student_dir.exists() and not student_dir.is_dir():
            raise StudentError(f"--student-dir {args.student_dir} is a file, not a folder")
        urls = url_problems(config)
        url_note = (f"these name another repository than {_rel(config)}'s repository.url {repository_url(config)} "
                    f"(`python grading/make_student.py --sync-urls` rewrites them): " + ", ".join(urls)) if urls else None
        if args.check:
            problem = _requirements_problem(config)
            stale = [p for p in (problem, url_note) if p]
            with tempfile.TemporaryDirectory(prefix="make_student_check_") as tmp:
                for master in chosen:
                    built = make_student(master, pathlib.Path(tmp), config=config)["student"]
                    committed = student_dir / master.name
                    if not committed.is_file():
                        stale.append(f"{committed.relative_to(ROOT) if committed.is_relative_to(ROOT) else committed} is missing")
                    elif committed.read_text() != built.read_text():
                        stale.append(f"{committed.relative_to(ROOT) if committed.is_relative_to(ROOT) else committed} is out of date")
                expected = {m.name for m in masters()}
                if not specs and student_dir.is_dir():
                    stale += [f"student/{p.name} has no master" for p in student_dir.glob("*.ipynb") if p.name not in expected]
            if stale:
                print("make_student --check: " + "; ".join(stale) + ". Run `make student` and commit student/ "
                      "and grading/requirements.txt.", file=sys.stderr)
                return 1
            print(f"make_student --check: student/ is up to date ({len(chosen)} chapters)")
            return 0
        if url_note:
            print(f"make_student: warning: {url_note}", file=sys.stderr)
        out = pathlib.Path(args.out).resolve()
        if out.exists() and not out.is_dir():
            raise StudentError(f"--out {args.out} is a file, not a folder")
        student_dir.mkdir(parents=True, exist_ok=True)
        requirements = requirements_text(config)
        if not REQUIREMENTS.is_file() or REQUIREMENTS.read_text() != requirements:
            REQUIREMENTS.write_text(requirements)
        for master in chosen:
            paths = make_student(master, out, force=args.force, config=config)
            shutil.copyfile(paths["student"], student_dir / master.name)
            print(json.dumps({"chapter": master.stem, "student_notebook": str(student_dir / master.name),
                              **{k: str(v) for k, v in paths.items()}}))
        if not args.no_wheel:
            print(json.dumps({"course_lib_wheel": str(build_wheel(out))}))
    except StudentError as err:
        print(f"make_student: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
