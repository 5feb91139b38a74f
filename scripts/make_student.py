"""Moved to grading/make_student.py; this shim keeps `python scripts/make_student.py ...` and `import make_student` working."""
import pathlib, runpy  # noqa: E401
globals().update(runpy.run_path(str(pathlib.Path(__file__).resolve().parents[1] / "grading" / "make_student.py"), run_name=__name__))
