"""Chapter 7 (DQN): what its cells claim, tested on their own code (issue 21, issue 23 Chapter 7).

The numeric checks of the chapter's master notebook are proven falsifiable in
``tests/test_chapter_checks_rl.py``; this file adds the Chapter 7 pieces of the
later revision: the emulator's banner is kept off the page (no stderr box), and
the cell that reads the Stable-Baselines3 comparison from ``benchmarks/RESULTS.md``
parses the format that ``benchmarks/protocol.py`` prints and says "not measured"
when the file or its section is missing.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CH7 = ROOT / "notebooks" / "07_dqn.ipynb"


def test_make_atari_env_prints_no_emulator_banner():
    """The first Atari env of a process writes nothing on stderr (the A.L.E / Stella box)."""
    pytest.importorskip("ale_py")
    code = ("from course_lib import rl\n"
            "env = rl.make_atari_env('ALE/Pong-v5')\n"
            "env.reset(seed=0)\n"
            "env.close()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    assert "A.L.E" not in out.stderr and "Stella" not in out.stderr, out.stderr
    assert out.stderr.strip() == "", out.stderr


def test_chapter_7_stored_outputs_have_no_stderr():
    """The executed master notebook shows no stderr stream (the rendered page would show it in a red box)."""
    nb = json.loads(CH7.read_text(encoding="utf-8"))
    streams = [(i, "".join(o.get("text", ""))[:80]) for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
               for o in cell.get("outputs", []) if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert streams == [], streams


# --------------------------------------------------------------------------------------
# The SB3 and Atari benchmark readers of section 7.8
# --------------------------------------------------------------------------------------

def _cell_defining(name: str) -> str:
    nb = json.loads(CH7.read_text(encoding="utf-8"))
    hits = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code" and f"def {name}(" in "".join(c["source"])]
    assert len(hits) == 1, f"{len(hits)} cells define {name}"
    return hits[0]


def _load_defs(*names: str, **extra) -> dict:
    """Execute only the imports and the ``def`` statements of the cells that define ``names``."""
    import inspect
    import re

    namespace = {"Path": Path, "re": re, "ast": ast, "inspect": inspect, "REPO": ROOT, **extra}
    for name in names:
        tree = ast.parse(_cell_defining(name))
        kept = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.Import, ast.ImportFrom))]
        exec(compile(ast.Module(body=kept, type_ignores=[]), f"07_dqn:{name}", "exec"), namespace)
    return namespace


def _protocol_lines(capsys) -> list[str]:
    """Summary and ratio lines as benchmarks/protocol.py prints them (the format RESULTS.md records)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import protocol
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))

    def runs(algo, steps, seconds, solved):
        out = []
        for seed, (n, t, ok) in enumerate(zip(steps, seconds, solved)):
            r = protocol.Run(algo, "CartPole-v1", 100 + seed, 50_000)
            r.steps, r.seconds, r.solved, r.params = n, t, ok, 17_410
            out.append(r)
        return out

    capsys.readouterr()
    ours = protocol.summarize(runs("ours", [12_000, 14_000, 16_000], [20.0, 22.0, 30.0], [True, True, True]))
    sb3 = protocol.summarize(runs("sb3", [20_000, 28_000, 50_000], [50.0, 60.0, 90.0], [True, True, False]))
    protocol.print_ratios(ours, sb3)
    return capsys.readouterr().out.strip().splitlines()


def _results_file(tmp_path, lines, exit_status="0", head="**Incomplete:** written while the run was still going; x."):
    text = "\n".join(["# Benchmark results", "", head, "", "## Chapter 6: dynamic programming", "",
                      "`python benchmarks/dynamic_programming.py --profile full`: exit 0, 3.0 s", "", "```",
                      "algo=ours env=CartPole-v1 median_steps=1 median_seconds=1.00 seeds_solved=1/1", "```", "",
                      "## Chapter 7: DQN", "", f"`python benchmarks/dqn_cartpole.py`: exit {exit_status}, 812.3 s", "",
                      "```", "threads=1 benchmark=dqn_cartpole", *lines, "```", "",
                      "`python benchmarks/dqn_atari.py`: exit 0, 40.0 s", "", "```",
                      "game=ALE/Pong-v5 seed=100 env_steps=3000 frames=12000 gradient_steps=500 seconds=30.0 params=1 "
                      "eval_epsilon=0.05 eval_return_mean=-21.0 stop_reason=completed", "```", ""])
    path = tmp_path / "RESULTS.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_results_reader_parses_the_protocol_format(tmp_path, capsys):
    ns = _load_defs("results_section")
    path = _results_file(tmp_path, _protocol_lines(capsys))
    lines, caveats = ns["results_section"]("dqn_cartpole.py", path=path)
    summaries = {f["algo"]: f for f in map(ns["fields"], lines) if "median_steps" in f}
    assert summaries["ours"]["median_steps"] == "14000" and summaries["sb3"]["median_steps"] == "28000"
    assert summaries["sb3"]["seeds_solved"] == "2/3"
    ratio = next(ns["fields"](line) for line in lines if "ratio_steps_ours_vs_sb3=" in line)
    assert float(ratio["ratio_steps_ours_vs_sb3"]) == pytest.approx(0.5, abs=1e-3)
    assert float(ratio["ratio_seconds_ours_vs_sb3"]) == pytest.approx(22 / 60, abs=1e-3)
    assert caveats == ["Incomplete: written while the run was still going"]
    atari, _ = ns["results_section"]("dqn_atari.py", path=path)     # the other block of the same section
    assert ns["fields"](atari[0])["eval_return_mean"] == "-21.0"


def test_results_reader_says_not_measured_when_absent(tmp_path, capsys):
    ns = _load_defs("results_section")
    assert ns["results_section"]("dqn_cartpole.py", path=tmp_path / "missing.md") == (None, [])
    failed = _results_file(tmp_path, _protocol_lines(capsys), exit_status="1")   # a crashed benchmark is not a result
    assert ns["results_section"]("dqn_cartpole.py", path=failed)[0] is None
    other = tmp_path / "other.md"
    other.write_text("# Benchmark results\n\n## Chapter 6: dynamic programming\n\n", encoding="utf-8")
    assert ns["results_section"]("dqn_cartpole.py", path=other)[0] is None


def test_atari_settings_are_read_from_the_benchmark_source():
    ns = _load_defs("atari_benchmark_settings")
    found = ns["atari_benchmark_settings"]()
    if found is None:
        pytest.skip("benchmarks/dqn_atari.py is not in this checkout")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import dqn_atari
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert found["FULL"] == dqn_atari.FULL and found["EVAL_EPSILON"] == dqn_atari.EVAL_EPSILON
    assert isinstance(found["--eval-episodes"], int) and isinstance(found["--seeds"], int)
    assert ns["atari_benchmark_settings"](ROOT / "no such file.py") is None
