"""What the README says about the code stays true: the file:line references and the line counts."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _code_lines(path: Path, name: str) -> int:
    tree = ast.parse(path.read_text())
    func = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == name)
    body = func.body[1:] if ast.get_docstring(func) else func.body
    lines = path.read_text().splitlines()[body[0].lineno - 1:func.end_lineno]
    return len([ln for ln in lines if ln.strip() and not ln.strip().startswith("#")])


def test_file_and_line_references_point_at_the_function():
    refs = re.findall(r"`(ngdformer/[\w/]+\.py):(\d+)` `(\w+)`", README)
    assert len(refs) >= 8
    for path, line, name in refs:
        text = (ROOT / path).read_text().splitlines()[int(line) - 1]
        assert text.startswith(f"def {name}("), f"README: {path}:{line} is not `def {name}(` but {text!r}"


def test_stated_code_line_counts():
    for path, line, name, count in re.findall(r"`(ngdformer/[\w/]+\.py):(\d+)` `(\w+)` \((\d+) code lines\)", README):
        assert _code_lines(ROOT / path, name) == int(count), name


def test_lecture_script_line_count():
    stated = int(re.search(r"against NGD\) in (\d+)\s+lines", README).group(1))
    script = (ROOT / "examples" / "lecture_figures.py").read_text().splitlines()
    assert len([ln for ln in script if ln.strip()]) == stated
