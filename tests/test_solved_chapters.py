"""Each chapter, with its exercise stubs replaced by the reference solutions, runs and passes every check.

The committed chapters keep their stubs (the test command also runs them as they are,
where every check says "not attempted yet"). The solutions live beside the checkers'
tests, in ``SOLUTIONS`` of ``tests/test_exercises_chNN.py``: a dict from the stub's
function name to source code defining that function, usually by calling the package,
which is the answer key. This test writes the solved copy to a temporary folder, never
into ``chapters/``.
"""

import importlib
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow  # multi-seed runs: the default environment runs them, CI's extra ones skip them

TESTS = Path(__file__).resolve().parent
CHAPTERS = [p for p in sorted((TESTS.parent / "chapters").glob("[0-9][0-9]_*.ipynb"))
            if (TESTS / f"test_exercises_ch{p.name[:2]}.py").exists()]  # chapter 00 has no exercises
STUB = re.compile(r"^def (my_\w+)\(", re.M)


def _outputs(nb) -> str:
    text = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", "") if out.get("output_type") == "stream" else "")
    return "".join(text)


def solve(nb, solutions: dict) -> int:
    """Replace every stub cell of ``nb`` by its solutions, in place; return how many stubs there were."""
    stubs = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or "raise NotImplementedError" not in cell.source:
            continue
        names = STUB.findall(cell.source)
        assert names, f"a stub cell without a `def my_...` function: {cell.source[:80]!r}"
        missing = [name for name in names if name not in solutions]
        assert not missing, f"no reference solution for {missing}"
        cell.source = "\n\n".join(solutions[name] for name in names)
        stubs += len(names)
    return stubs


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_solved_copy_passes_every_check(path, tmp_path):
    module = importlib.import_module(f"test_exercises_ch{path.name[:2]}")
    nb = nbformat.read(path, as_version=4)
    stubs = solve(nb, module.SOLUTIONS)
    assert stubs >= 1, f"{path.name} has no exercise stub"
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, tmp_path / path.name)  # kept for inspection when the test fails
    printed = _outputs(nb)
    assert "not attempted yet" not in printed
    checks = len(re.findall(r"\bch\d\d\.check_\w+\(", "".join(c.source for c in nb.cells if c.cell_type == "code")))
    assert printed.count("all checks passed") == checks, printed
