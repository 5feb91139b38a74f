"""The book's tooling: one repository URL (_config.yml) for everything generated, the release script."""

from __future__ import annotations

import json
import pathlib
import sys
import zipfile

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
import make_student  # noqa: E402

OLD = "https://github.com/dgm-drl-book/course-book"
NEW = "https://github.com/some-course/fork-of-the-book"


def _config_with_url(tmp_path: pathlib.Path, url: str) -> pathlib.Path:
    text = (ROOT / "_config.yml").read_text()
    assert f"url: {OLD}" in text, "the test expects _config.yml's repository.url to be the book's own"
    path = tmp_path / "_config.yml"
    path.write_text(text.replace(f"url: {OLD}", f"url: {url}"))
    return path


def test_config_is_the_one_source_of_the_url():
    assert make_student.repository_url() == OLD
    assert make_student.url_problems() == [], "README, book/, pyproject or a master names another repository"


def test_generated_install_cells_follow_the_config_url(tmp_path):
    config = _config_with_url(tmp_path, NEW + "/")  # a trailing slash is dropped
    assert make_student.repository_url(config) == NEW
    master = make_student.resolve_chapter("04_reinforce")
    paths = make_student.make_student(master, tmp_path / "out", config=config)
    tag = make_student.release_tag()

    nb = nbformat.read(paths["student"], as_version=4)
    installs = [c.source for c in nb.cells if c.cell_type == "code" and "git+" in c.source]
    assert installs, "no install cell in the student notebook"
    for source in installs:
        assert f'"course-lib @ git+{NEW}@{tag}"' in source
        assert OLD not in source
    assert OLD not in paths["student"].read_text()

    requirements = (paths["autograder_zip"].parent / "requirements.txt").read_text()
    assert f"course-lib @ git+{NEW}@{tag}" in requirements and OLD not in requirements
    with zipfile.ZipFile(paths["autograder_zip"]) as zf:
        env = zf.read("environment.yml").decode()
    assert f"git+{NEW}@{tag}" in env and OLD not in env
    assert make_student.requirements_text(config) == requirements


def test_sync_url_text_rewrites_every_kind_of_mention():
    text = (f'pip install "git+{OLD}"\ngit clone {OLD}.git course-book\nHomepage = "{OLD}"\n'
            "https://colab.research.google.com/github/dgm-drl-book/course-book/blob/main/student/x.ipynb\n"
            'json: \\"git+' + OLD + '\\"], other: https://github.com/pytorch/pytorch\n')
    new, wrong = make_student.sync_url_text(text, NEW)
    assert [line for line, _ in wrong] == [1, 2, 3, 4, 5]
    assert OLD not in new and "dgm-drl-book" not in new
    assert "colab.research.google.com/github/some-course/fork-of-the-book/blob/main" in new
    assert "https://github.com/pytorch/pytorch" in new, "other links are left alone"
    assert make_student.sync_url_text(new, NEW) == (new, [])
    # a book hosted off GitHub has no Colab link to rewrite: reported, left as is
    off, wrong = make_student.sync_url_text(text, "https://gitlab.example.org/course/book")
    assert (4, "dgm-drl-book/course-book") in wrong and "colab.research.google.com/github/dgm-drl-book" in off


@pytest.mark.parametrize("body, needle", [
    ("title: x\n", "repository.url"),
    ("repository:\n  url: http://example.org/x\n", "https://"),
    ("repository: [1\n", "not valid YAML"),
])
def test_bad_repository_url_is_a_one_line_error(tmp_path, body, needle):
    config = tmp_path / "_config.yml"
    config.write_text(body)
    with pytest.raises(make_student.StudentError, match=needle):
        make_student.repository_url(config)
    assert make_student.main(["--check", "--config", str(config)]) == 2


def test_check_reports_a_static_mention_that_disagrees(tmp_path):
    config = _config_with_url(tmp_path, NEW)
    assert any("README.md" in p for p in make_student.url_problems(config))
    assert json.dumps(make_student.url_problems(config)).count(OLD) >= 3  # README, setup.md, pyproject at least


# ------------------------------------------------------------------ make release
def _release():
    sys.path.insert(0, str(ROOT / "scripts"))
    import release

    return release


def test_release_refuses_a_tag_that_is_not_the_version():
    release = _release()
    version = make_student.course_lib_version()
    with pytest.raises(release.ReleaseError, match=f"must be v{version}"):
        release.release_tag("v999.0.0", version)
    assert release.main(["--tag", "v999.0.0"]) == 2


def test_release_checks_versions_and_the_wheel(tmp_path):
    release = _release()
    version = make_student.course_lib_version()
    release.check_versions(version)  # pyproject and CHANGELOG agree with course_lib.__version__
    with pytest.raises(release.ReleaseError, match="999.0.0"):
        release.check_versions("999.0.0")
    good, bad = tmp_path / f"course_lib-{version}-py3-none-any.whl", tmp_path / f"course_lib-{version}-py3-none-any2.whl"
    for path, names in ((good, ["course_lib/__init__.py", f"course_lib-{version}.dist-info/METADATA"]),
                        (bad, ["course_lib/__init__.py", "course_sphinx_ext.py"])):
        with zipfile.ZipFile(path, "w") as zf:
            for name in names:
                zf.writestr(name, "")
    release.check_wheel(good, version)
    with pytest.raises(release.ReleaseError, match="more than course_lib"):
        release.check_wheel(bad, version)


# ------------------------------------------------------------------ Binder
def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def test_binder_environment_is_cpu_only_and_pinned_like_the_grader():
    binder = ROOT / "binder"
    req = (binder / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in req, "PyPI's torch would pull CUDA"
    pins = _pins(binder / "requirements.txt")
    assert pins["torch"] == _pins(ROOT / "grading" / "requirements.txt.in")["torch"]
    assert pins["otter-grader"] == _pins(ROOT / "requirements.txt")["otter-grader"]
    post = binder / "postBuild"
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    assert "pip install" in post.read_text() and " ." in post.read_text(), "postBuild installs this repository's course_lib"


def test_chapters_glue_through_course_lib_not_myst_nb():
    """Students run the chapters without myst-nb (Colab, the autograder image): no code cell imports it."""
    import json

    offenders = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for i, cell in enumerate(json.loads(path.read_text())["cells"]):
            if cell["cell_type"] == "code" and "myst_nb" in "".join(cell["source"]):
                offenders.append(f"{path.name} cell {i}")
    assert not offenders, "import glue from course_lib.widgets instead of myst_nb: " + ", ".join(offenders)
