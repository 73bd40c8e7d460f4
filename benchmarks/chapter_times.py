"""Time each chapter run alone, top to bottom, as the test command runs it: python benchmarks/chapter_times.py.

Each chapter is executed in a fresh kernel (the way nbmake does), one after the other,
``--repeats`` times; the table gives the median wall time per chapter, kernel start-up
included, and the slowest against the course's budget of 30 s per chapter.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

BUDGET = 30.0  # seconds per chapter, run alone


def run_once(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per chapter (default 3; the median is shown)")
    parser.add_argument("chapters", nargs="*", help="notebooks to time (default: every chapters/NN_*.ipynb)")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    paths = [Path(p) for p in args.chapters] or sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb"))
    print(f"Python {sys.version.split()[0]}; median of {args.repeats} runs, each chapter alone in a fresh kernel\n")
    print("| chapter | seconds |\n|---|---|")
    worst = 0.0
    for path in paths:
        seconds = statistics.median(run_once(path) for _ in range(args.repeats))
        worst = max(worst, seconds)
        print(f"| {path.stem} | {seconds:.1f} |", flush=True)
    print(f"\nslowest: {worst:.1f} s (budget {BUDGET:.0f} s: {'met' if worst <= BUDGET else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
