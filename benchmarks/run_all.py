#!/usr/bin/env python3
"""Run every benchmark and collect what they print, grouped by chapter (``make bench``, ``make bench-smoke``).

``make bench`` runs each benchmark at its default (the protocol of
``benchmarks/README.md``; ``dynamic_programming.py`` at ``--profile full``, the
size of its target; ``dqn_atari.py`` at its small CPU profile, the pipeline run)
and writes ``benchmarks/RESULTS.md``: the machine (CPU model, cores, torch
version, threads), the command, then every line each benchmark printed, grouped
per chapter, with each command's wall time and exit status. Run it on an idle
machine: the seconds are wall-clock.

``make bench-smoke`` (CI) runs every benchmark's code path, the peers included,
with tiny budgets (``--smoke``); its figures mean nothing. A results file from a
smoke run, or from a machine shared with other work, says so in its header
(``--note``).

Usage::

    python benchmarks/run_all.py --output benchmarks/RESULTS.md          # make bench
    python benchmarks/run_all.py --smoke --root ../shared/data/mnist     # make bench-smoke
    python benchmarks/run_all.py --only dqn_cartpole dynamic_programming
    # one benchmark in a second process, then one file from both:
    python benchmarks/run_all.py --only policy_gradient_cartpole --output /tmp/ch5.md
    python benchmarks/run_all.py --merge-only --merge benchmarks/RESULTS.md /tmp/ch5.md --output benchmarks/RESULTS.md

Exit status: 1 when any benchmark failed (the others still run), else 0.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: (chapter, script, arguments of the reported run, arguments of the smoke run); {root}: the MNIST folder.
BENCHMARKS = [
    ("Chapter 1: normalizing flows", "nice_mnist.py", [],
     ["--profile", "full", "--max-seconds", "5", "--source", "mnist", "--root", "{root}", "--no-verify",
      "--ratio-repeats", "3"]),
    ("Chapter 2: autoregressive models", "pixelcnn_mnist.py", [],
     ["--profile", "full", "--source", "mnist", "--root", "{root}", "--no-verify", "--max-seconds", "3",
      "--n-test", "100", "--sample-rows", "1", "--threads", "2", "--quality-samples", "10"]),
    ("Chapter 3: variational autoencoders", "vae_mnist.py", [],
     ["--profile", "full", "--max-seconds", "5", "--k-eval", "10", "--source", "mnist", "--root", "{root}",
      "--no-verify"]),
    ("Chapter 4: REINFORCE", "reinforce_cartpole.py", [], ["--profile", "full", "--max-seconds", "5"]),
    ("Chapter 5: baselines and actor-critic", "policy_gradient_cartpole.py", [],
     ["--profile", "full", "--max-seconds", "20", "--seeds", "1"]),
    ("Chapter 6: dynamic programming", "dynamic_programming.py", ["--profile", "full"],
     ["--profile", "full", "--max-seconds", "5"]),
    ("Chapter 7: DQN", "dqn_cartpole.py", [], ["--profile", "full", "--max-seconds", "5"]),
    ("Chapter 7: DQN", "dqn_atari.py", [], ["--profile", "full", "--max-seconds", "5"]),
]


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = "not installed"
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch_version, "python": platform.python_version(),
            "threads": os.environ.get("COURSE_NUM_THREADS", "1 (the benchmarks' default)"),
            "platform": platform.platform()}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks", "course_lib"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def run(cmd: list[str]) -> tuple[int, float, list[str]]:
    """Run one benchmark, echo its output as it comes, return (status, seconds, lines)."""
    tic, lines = time.perf_counter(), []
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    return proc.wait(), time.perf_counter() - tic, lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny budgets: every code path, meaningless figures")
    ap.add_argument("--root", default="../shared/data/mnist", help="MNIST IDX folder of the smoke runs")
    ap.add_argument("--output", default=None, help="write the results as Markdown here (e.g. benchmarks/RESULTS.md)")
    ap.add_argument("--only", nargs="+", default=None, help="script names (without .py) to run")
    ap.add_argument("--note", default=None, help="a line for the results header (e.g. 'contended machine')")
    ap.add_argument("--merge", nargs="+", default=[], metavar="FILE",
                    help="results files of earlier runs: their sections for benchmarks not run now are kept "
                         "(e.g. one benchmark run in a second process); the header lists them")
    ap.add_argument("--merge-only", action="store_true", help="run nothing: write --output from the --merge files")
    args = ap.parse_args(argv)

    selected = [b for b in BENCHMARKS if args.only is None or b[1].removesuffix(".py") in args.only]
    if args.merge_only:
        selected = []
    # The longest benchmark (Chapter 5's, 140 runs) goes last, so that a run cut short has
    # written the others; the results file keeps the chapters' order.
    selected.sort(key=lambda b: b[1] == "policy_gradient_cartpole.py")
    info, started = machine(), datetime.datetime.now().isoformat(timespec="seconds")
    sections: list[tuple[str, str, int, float, list[str]]] = []
    total = time.perf_counter()
    for chapter, script, full_args, smoke_args in selected:
        extra = [a.format(root=args.root) for a in (smoke_args if args.smoke else full_args)]
        cmd = [sys.executable, str(Path("benchmarks") / script), *extra]
        shown = " ".join(["python", *map(shlex.quote, cmd[1:])])
        print(f"\n=== {chapter}: {shown}", flush=True)
        status, seconds, lines = run(cmd)
        print(f"=== exit {status}, {seconds:.1f} s", flush=True)
        sections.append((chapter, shown, status, seconds, lines))
        if args.output and len(sections) < len(selected):
            # Written after every benchmark, so a run cut short keeps what it measured.
            write_results(args, argv, info, started, time.perf_counter() - total, sections,
                          pending=[b[1] for b in selected[len(sections):]])
    total = time.perf_counter() - total
    failed = [s[1] for s in sections if s[2] != 0]
    print(f"\n=== {len(sections)} benchmarks in {total:.1f} s; failed: {len(failed)}", flush=True)
    for shown in failed:
        print(f"=== FAILED: {shown}", flush=True)

    if args.output:
        ran = {_script(shown) for _, shown, *_ in sections}
        for path in args.merge:
            sections += [sec for sec in parse_results(Path(path)) if _script(sec[1]) not in ran]
            ran |= {_script(sec[1]) for sec in sections}
        write_results(args, argv, info, started, total, sections, pending=[])
        print(f"=== wrote {args.output}", flush=True)
    return 1 if failed else 0


def _script(shown: str) -> str:
    """The benchmark script of a section's command line (``benchmarks/x.py`` -> ``x.py``)."""
    return Path(shown.split()[1]).name


def parse_results(path: Path) -> list[tuple[str, str, int, float, list[str]]]:
    """The sections of a results file this script wrote: (chapter, command, status, seconds, lines)."""
    import re

    sections, chapter, lines = [], None, path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            chapter = line[3:].strip()
        m = re.match(r"^`(.+)`: exit (-?\d+), ([\d.]+) s$", line)
        if m and chapter is not None:
            j = i + 1
            while j < len(lines) and lines[j] != "```":
                j += 1
            k = j + 1
            while k < len(lines) and lines[k] != "```":
                k += 1
            sections.append((chapter, m.group(1), int(m.group(2)), float(m.group(3)), lines[j + 1:k]))
            i = k
        i += 1
    return sections


def _chapter_order(section) -> int:
    return next(i for i, b in enumerate(BENCHMARKS) if b[0] == section[0] and section[1].split()[1].endswith(b[1]))


def write_results(args, argv, info, started, total, sections, pending) -> None:
    """Write the Markdown results file atomically (a temporary file, then a rename)."""
    command = "python benchmarks/run_all.py " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    out = ["# Benchmark results", ""]
    if pending:
        out += [f"**Incomplete:** written while the run was still going; not yet run: {', '.join(pending)}.", ""]
    if args.smoke:
        out += ["**Smoke run** (tiny budgets, `--smoke`): the figures below show that every code path runs "
                "and mean nothing else.", ""]
    if args.note:
        out += [f"**Note:** {args.note}", ""]
    if args.merge:
        out += ["**Merged:** sections of benchmarks not run by this command come from "
                + ", ".join(f"`{m}`" for m in args.merge) + " (each section keeps its own command and wall time).", ""]
    out += [f"- command: `{command}` (started {started}, {total:.0f} s in all)",
            f"- commit: {git_commit()}",
            f"- machine: {info['cpu']}, {info['cores']} cores, {info['platform']}",
            f"- torch {info['torch']}, Python {info['python']}; threads: {info['threads']} "
            f"(each benchmark prints its own count first)",
            "- protocol: `benchmarks/README.md`; history of earlier figures: `benchmarks/HISTORY.md`", ""]
    chapter_seen = None
    for chapter, shown, status, seconds, lines in sorted(sections, key=_chapter_order):
        if chapter != chapter_seen:
            out += [f"## {chapter}", ""]
            chapter_seen = chapter
        out += [f"`{shown}`: exit {status}, {seconds:.1f} s", "", "```", *lines, "```", ""]
    target = Path(args.output)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text("\n".join(out))
    os.replace(tmp, target)


if __name__ == "__main__":
    sys.exit(main())
