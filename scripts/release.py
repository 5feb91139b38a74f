#!/usr/bin/env python3
"""Build the release files of the book: the ``course_lib`` wheel and every chapter's autograder zip.

A release is the git tag ``v<course_lib.__version__>`` (the tag the student
notebooks' install cells and the autograder images install ``course_lib``
from). This script refuses to build unless:

- HEAD carries that tag (``git describe --tags --exact-match``, or ``--tag`` /
  ``make release TAG=...`` naming a tag that points at HEAD);
- the tracked files have no uncommitted changes (the wheel is built from the
  tagged commit itself, ``git archive``, and the zips from the working tree);
- ``CHANGELOG.md`` has a ``## v<version>`` entry;
- ``make student`` leaves ``student/`` and ``grading/requirements.txt`` as
  committed (otherwise the tagged notebooks are not what the masters give).

It then writes to ``dist/release/``: ``course_lib-<version>-py3-none-any.whl``,
``<chapter>-autograder.zip`` for every graded chapter, ``FILES.txt`` (the
release files, one per line) and ``SHA256SUMS``. Usage::

    git tag v0.1.0 && make release          # = python scripts/release.py
    python scripts/release.py --tag v0.1.0 --allow-dirty   # a trial run on a dirty tree
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "grading"))
import make_student  # noqa: E402  (grading/make_student.py)

RELEASE_DIR = ROOT / "dist" / "release"


class ReleaseError(Exception):
    """A reason not to release, printed as one line."""


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done


def release_tag(tag: str | None, version: str) -> str:
    """The tag being released; it must be ``v<version>`` and point at HEAD."""
    want = make_student.release_tag(version)
    if not tag:
        done = _git("describe", "--tags", "--exact-match", "HEAD", check=False)
        if done.returncode != 0:
            raise ReleaseError(f"HEAD carries no tag; tag the release first: git tag {want} "
                               f"(course_lib.__version__ is {version}), or pass TAG=<tag>")
        tag = done.stdout.strip()
    if tag != want:
        raise ReleaseError(f"tag {tag} does not match course_lib.__version__ {version}: the release tag must be {want} "
                           "(bump __version__ in course_lib/__init__.py and pyproject.toml, or tag the right commit)")
    tagged = _git("rev-parse", "--verify", "--quiet", f"{tag}^{{commit}}", check=False)
    if tagged.returncode != 0:
        raise ReleaseError(f"there is no tag {tag}; create it with git tag {tag}")
    if tagged.stdout.strip() != _git("rev-parse", "HEAD").stdout.strip():
        raise ReleaseError(f"tag {tag} does not point at HEAD; check out {tag} to release it")
    return tag


def check_versions(version: str) -> None:
    """pyproject's version and the CHANGELOG entry agree with ``course_lib.__version__``."""
    text = (ROOT / "pyproject.toml").read_text()
    try:
        import tomllib
    except ImportError:  # Python 3.10
        match = re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.M)
        declared = match.group(1) if match else None
    else:
        declared = tomllib.loads(text).get("project", {}).get("version")
    if declared != version:
        raise ReleaseError(f"pyproject.toml's version {declared!r} is not course_lib.__version__ {version!r}")
    changelog = ROOT / "CHANGELOG.md"
    heading = f"## v{version}"
    if not changelog.is_file() or not any(line.strip() == heading or line.startswith(heading + " ")
                                          for line in changelog.read_text().splitlines()):
        raise ReleaseError(f"CHANGELOG.md has no '{heading}' entry")


def check_clean(allow_dirty: bool) -> None:
    changed = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    if changed and not allow_dirty:
        raise ReleaseError("uncommitted changes to tracked files (commit them, or --allow-dirty for a trial run):\n"
                           + changed)


def build_wheel(tag: str, dest: pathlib.Path) -> pathlib.Path:
    """The wheel of ``course_lib`` built from the tagged commit (``git archive``), not the working tree."""
    with tempfile.TemporaryDirectory(prefix="release_") as tmp:
        src = pathlib.Path(tmp) / "src"
        src.mkdir()
        archive = subprocess.run(["git", "archive", "--format=tar", tag], cwd=ROOT, capture_output=True)
        if archive.returncode != 0:
            raise ReleaseError(f"git archive {tag} failed: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp, str(src)]
        if importlib.util.find_spec("setuptools") is not None:
            cmd.insert(4, "--no-build-isolation")  # the installed setuptools: no download
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
        if done.returncode != 0:
            raise ReleaseError("pip wheel failed:\n" + "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:]))
        wheels = sorted(pathlib.Path(tmp).glob("course_lib-*.whl"))
        if len(wheels) != 1:
            raise ReleaseError(f"pip wheel wrote {[w.name for w in wheels]}, expected one course_lib wheel")
        return pathlib.Path(shutil.copy2(wheels[0], dest / wheels[0].name))


def check_wheel(wheel: pathlib.Path, version: str) -> None:
    """The wheel ships the library only: ``course_lib/`` and its metadata, at the release version."""
    import zipfile

    if f"-{version}-" not in wheel.name:
        raise ReleaseError(f"{wheel.name} is not version {version}")
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/", 1)[0] for name in zf.namelist()}
    extra = sorted(t for t in tops if t != "course_lib" and not t.endswith(".dist-info"))
    if extra:
        raise ReleaseError(f"{wheel.name} ships more than course_lib: {extra}")


def build_zips(dest: pathlib.Path) -> list[pathlib.Path]:
    """``make student``: every chapter's autograder zip, copied into ``dest``; student/ must stay as committed."""
    if make_student.main(["--out", str(ROOT / "dist")]) != 0:
        raise ReleaseError("make student failed (its message is above)")
    changed = _git("status", "--porcelain", "--", "student", "grading/requirements.txt").stdout.strip()
    if changed:
        raise ReleaseError("make student changed the committed student notebooks or grading/requirements.txt; "
                           "commit them and tag that commit:\n" + changed)
    zips = []
    for master in make_student.masters():
        built = ROOT / "dist" / master.stem / "autograder" / f"{master.stem}-autograder.zip"
        if not built.is_file():
            raise ReleaseError(f"make student wrote no {built.relative_to(ROOT)}")
        zips.append(pathlib.Path(shutil.copy2(built, dest / built.name)))
    return zips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=os.environ.get("TAG") or None,
                        help="the tag to release (default: the tag on HEAD, git describe --tags --exact-match)")
    parser.add_argument("--allow-dirty", action="store_true", help="build although tracked files have uncommitted changes")
    args = parser.parse_args(argv)
    try:
        version = make_student.course_lib_version()
        tag = release_tag(args.tag, version)
        check_versions(version)
        check_clean(args.allow_dirty)
        shutil.rmtree(RELEASE_DIR, ignore_errors=True)
        RELEASE_DIR.mkdir(parents=True)
        wheel = build_wheel(tag, RELEASE_DIR)
        check_wheel(wheel, version)
        files = [wheel, *build_zips(RELEASE_DIR)]
    except (ReleaseError, make_student.StudentError) as err:
        print(f"release: error: {err}", file=sys.stderr)
        return 2
    names = [f.relative_to(ROOT).as_posix() for f in files]
    (RELEASE_DIR / "FILES.txt").write_text("".join(n + "\n" for n in names))
    (RELEASE_DIR / "SHA256SUMS").write_text(
        "".join(f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in files))
    print(f"release {tag}: {len(files)} files in {RELEASE_DIR.relative_to(ROOT)}/ (FILES.txt, SHA256SUMS)")
    for name in names:
        print("  " + name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
