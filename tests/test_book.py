"""The course book (docs/), as built: every chapter page, its figures, maths and API links; the reference pages.

The tests read a built site, whose folder is named by the environment variable NGDFORMER_BOOK:

    pip install -e ".[book]" && python -m sphinx -W -b html docs docs/_build/html
    NGDFORMER_BOOK=docs/_build/html python -m pytest tests/test_book.py

Without NGDFORMER_BOOK, or without a built site there, they skip (so the plain test command skips them).
"""

from __future__ import annotations

import json
import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import ngdformer

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
HIDDEN = {"pre", "code", "script", "style", "head"}      # not prose: code, outputs, scripts (and maths, for MathJax)
STUB_MESSAGE = "raise NotImplementedError`"              # the checkers' "not attempted yet" message quotes the stub


def book_dir() -> Path:
    value = os.environ.get("NGDFORMER_BOOK")
    if not value:
        pytest.skip("NGDFORMER_BOOK is not set: build the book with `python -m sphinx -W -b html docs "
                    "docs/_build/html` and set NGDFORMER_BOOK=docs/_build/html")
    path = Path(value).resolve()
    if not (path / "index.html").is_file():
        pytest.skip(f"NGDFORMER_BOOK={value}: no built book there (no index.html); build it first with "
                    "`python -m sphinx -W -b html docs docs/_build/html`")
    return path


class Page(HTMLParser):
    """What the tests look at in one HTML page: images, links, ids, scripts, prose and cell outputs."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.stack: list[tuple[str, bool, bool]] = []   # (tag, hidden, in a cell output)
        self.images: list[dict] = []                     # attributes of each <img>, and whether it is in an output
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.scripts: list[str] = []
        self.classes: list[str] = []
        self.details: list[dict] = []
        self.prose: list[str] = []
        self.outputs: list[str] = []
        self.text: list[str] = []
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        hidden = bool(self.stack and self.stack[-1][1]) or tag in HIDDEN or "math" in classes
        output = bool(self.stack and self.stack[-1][2]) or "cell_output" in (attrs.get("class") or "").split()
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if attrs.get("class"):
            self.classes.append(attrs["class"])
        if tag == "img":
            self.images.append({**attrs, "in_output": output})
        elif tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])
        elif tag == "details":
            self.details.append(attrs)
        if tag not in VOID:
            self.stack.append((tag, hidden, output))

    def handle_endtag(self, tag):
        for k in range(len(self.stack) - 1, -1, -1):
            if self.stack[k][0] == tag:
                del self.stack[k:]
                return

    def handle_data(self, data):
        hidden, output = (self.stack[-1][1], self.stack[-1][2]) if self.stack else (False, False)
        self.text.append(data)
        if output:
            self.outputs.append(data)
        elif not hidden:
            self.prose.append(data)

    def local_file(self, url: str) -> Path:
        return (self.path.parent / unquote(urlsplit(url).path)).resolve()


def page(name: str) -> Page:
    path = book_dir() / name
    assert path.is_file(), f"the book has no page {name}"
    return Page(path)


def notebook(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def markdown(path: Path) -> str:
    return "\n".join("".join(c["source"]) for c in notebook(path)["cells"] if c["cell_type"] == "markdown")


def figures_shown(path: Path) -> int:
    """How many figures a chapter's code shows: one per plt.show() (each chapter closes a figure with it)."""
    code = "\n".join("".join(c["source"]) for c in notebook(path)["cells"] if c["cell_type"] == "code")
    return len(re.findall(r"\bplt\.show\(\)", code))


def chapter_title(path: Path) -> str:
    return next(line[2:].strip() for line in markdown(path).splitlines() if line.startswith("# "))


@pytest.fixture(scope="module")
def book() -> Path:
    return book_dir()


def test_the_chapters_are_found():
    assert len(CHAPTERS) >= 10 and CHAPTERS[0].name == "00_notation.ipynb"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_has_a_page_with_its_title(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    title = chapter_title(chapter)
    assert " ".join(title.split()) in " ".join("".join(p.text).split()), f"{chapter.stem}: title {title!r} missing"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_figures_are_images_that_exist(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    shown = figures_shown(chapter)
    images = [img for img in p.images if img["in_output"]]
    assert len(images) >= shown, f"{chapter.stem}: {shown} figures shown by its code, {len(images)} images on its page"
    for img in images:
        file = p.local_file(img["src"])
        assert file.is_file(), f"{chapter.stem}: image {img['src']} is missing"
        head = file.read_bytes()[:8]
        assert head.startswith(b"\x89PNG") or head.startswith(b"<svg") or head.startswith(b"<?xml"), \
            f"{chapter.stem}: {img['src']} is not an image"


def test_some_chapters_have_figures():
    assert sum(figures_shown(c) > 0 for c in CHAPTERS) >= 8


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_maths_is_converted_and_outputs_have_no_errors(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    prose = "".join(p.prose)
    assert "$$" not in prose, f"{chapter.stem}: raw $$ left in the text"
    raw = re.findall(r"\$[^$\s][^$\n]*?\$", prose)
    assert not raw, f"{chapter.stem}: raw inline maths left in the text: {raw[:3]}"
    if "$" in markdown(chapter):
        assert any("math" in c.split() for c in p.classes), f"{chapter.stem}: no maths rendered"
    outputs = "".join(p.outputs)
    assert "Traceback" not in outputs, f"{chapter.stem}: a traceback in the outputs"
    assert "Error" not in outputs.replace(STUB_MESSAGE, ""), f"{chapter.stem}: an error in the outputs"
    bad = [c for c in p.classes if {"stderr", "error", "traceback"} & set(c.split())]
    assert not bad, f"{chapter.stem}: error or stderr output cells {bad[:3]}"


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if "NotImplementedError" in json.dumps(notebook(c))],
                         ids=lambda p: p.stem)
def test_exercise_stubs_are_shown_as_stubs(book, chapter):
    outputs = "".join(page(f"chapters/{chapter.stem}.html").outputs)
    assert "not attempted yet" in outputs, f"{chapter.stem}: no checker reports an untouched stub"


@pytest.mark.parametrize("chapter", [c for c in CHAPTERS if "<details>" in markdown(c)], ids=lambda p: p.stem)
def test_model_answers_are_folded(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    assert len(p.details) == markdown(chapter).count("<details>"), f"{chapter.stem}: model answers missing"
    assert all("open" not in d for d in p.details), f"{chapter.stem}: a model answer is open"


def _api_targets(p: Page) -> set[str]:
    return {urlsplit(h).fragment for h in p.links if urlsplit(h).path.endswith("api.html") and urlsplit(h).fragment}


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_link_public_names_to_the_api_reference(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    api = page("api.html")
    targets = _api_targets(p)
    assert targets, f"{chapter.stem}: no link to the API reference"
    assert targets <= api.ids, f"{chapter.stem}: links to missing API entries {sorted(targets - api.ids)}"
    used = set(re.findall(r"`nf\.(\w+)", markdown(chapter))) & set(ngdformer.__all__)
    missing = {f"ngdformer.{name}" for name in used} - targets
    assert not missing, f"{chapter.stem}: inline code not linked to the API: {sorted(missing)}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_citations_land_on_bibliography_entries(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    bib = page("bibliography.html")
    cited = set(re.findall(r"\]\((?:00_notation\.ipynb)?#(ref-[\w-]+)\)", markdown(chapter)))
    linked = {urlsplit(h).fragment for h in p.links
              if urlsplit(h).path.endswith("bibliography.html") and urlsplit(h).fragment}
    assert cited <= linked, f"{chapter.stem}: citations not linked to the bibliography: {sorted(cited - linked)}"
    assert linked <= bib.ids, f"{chapter.stem}: links to missing bibliography entries {sorted(linked - bib.ids)}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_pages_offer_their_notebook(book, chapter):
    p = page(f"chapters/{chapter.stem}.html")
    notebooks = [h for h in p.links if unquote(urlsplit(h).path).endswith(f"{chapter.name}")]
    assert notebooks, f"{chapter.stem}: no download link to {chapter.name}"
    assert all(p.local_file(h).read_bytes() == chapter.read_bytes() for h in notebooks), \
        f"{chapter.stem}: the downloadable notebook is not the chapter"


def test_landing_page_lists_every_chapter(book):
    p = page("index.html")
    text = " ".join("".join(p.prose).split())
    for word in ("Prerequisites", "benchmarks/chapter_times.py", "jupyter notebook chapters/"):
        assert word in " ".join("".join(p.text).split()), f"the landing page does not mention {word!r}"
    for chapter in CHAPTERS:
        assert any(urlsplit(h).path.endswith(f"chapters/{chapter.stem}.html") for h in p.links), chapter.stem
        assert " ".join(chapter_title(chapter).split()) in text or chapter.stem == "00_notation", chapter.stem


def test_bibliography_has_every_reference_of_chapter_00(book):
    bib = page("bibliography.html")
    keys = set(re.findall(r'<a id="(ref-[\w-]+)"></a>', markdown(CHAPTERS[0])))
    assert len(keys) >= 5
    assert keys <= bib.ids, f"bibliography entries missing: {sorted(keys - bib.ids)}"
    assert "Transformers Efficiently Perform In-Context Logistic Regression" in "".join(bib.text)


def test_notation_page(book):
    p = page("chapters/00_notation.html")
    assert "Glossary" in "".join(p.text)


def test_api_reference_documents_every_public_name(book):
    api = page("api.html")
    expected = {f"ngdformer.{name}" for name in ngdformer.__all__ if name != "fast"}
    expected |= {f"ngdformer.fast.{name}" for name, obj in vars(ngdformer.fast).items()
                 if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", "") == "ngdformer.fast"}
    assert "module-ngdformer.fast" in api.ids
    assert expected <= api.ids, f"API entries missing: {sorted(expected - api.ids)}"
    text = "".join(api.text)
    for group in ("Data", "Losses and solvers", "The layer", "Training", "Evaluation", "Persistence"):
        assert group in text, f"API group {group!r} missing"
    assert "Parameters" in text and "Returns" in text            # numpydoc sections rendered


def test_paper_page_shows_figures_3_to_8(book):
    p = page("paper.html")
    text = " ".join("".join(p.text).split())
    assert "arXiv:2605.06609" in text
    for k in range(3, 9):
        assert f"Figure {k}" in text, f"the paper page has no section on Figure {k}"
    images = [img for img in p.images if img.get("src") and "_images/" in img["src"]]
    assert len(images) >= 7, f"the paper page shows {len(images)} of the chapters' figures"
    for img in images:
        assert p.local_file(img["src"]).is_file(), img["src"]
    chapters = {urlsplit(h).path.rsplit("/", 1)[-1] for h in p.links if "chapters/" in h}
    assert {"06_training_one_layer.html", "07_looped_ood.html", "08_looped_from_scratch.html"} <= chapters


@pytest.mark.parametrize("name", ["index.html", "paper.html", "chapters/04_construction.html"])
def test_mathjax_is_served_with_the_book(book, name):
    p = page(name)
    mathjax = [s for s in p.scripts if "mathjax" in s.lower()]
    assert mathjax, f"{name}: no MathJax script"
    for src in mathjax:
        assert not urlsplit(src).scheme and not src.startswith("//"), f"{name}: MathJax from the network: {src}"
        assert p.local_file(src).is_file(), f"{name}: {src} is not in the book"
    remote = [s for s in p.scripts if urlsplit(s).scheme or s.startswith("//")]
    assert not remote, f"{name}: scripts from the network {remote}"
