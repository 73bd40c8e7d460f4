"""Sphinx extension of the course book: everything that ties the chapters to the book.

The chapters are read as they are, from ``chapters/`` (``docs/chapters`` is a symbolic link); nothing
here edits them. What it adds:

- ``ngd-chapters``: the table of chapters on the landing page (title and the study time each chapter states).
- ``ngd-references``: the bibliography page, read from the references of chapter 00, with one anchor per entry.
- ``ngd-api``: the API reference, one section per group of ``ngdformer.__all__`` (the groups are the comments
  of that list in ``ngdformer/__init__.py``), plus :mod:`ngdformer.fast`.
- ``ngd-chapter-figure``: a figure of a chapter, shown on another page (the paper page) as the chapter made it.
- Two transforms: citations such as ``[ZC26](00_notation.ipynb#ref-zc26)`` land on the bibliography entry, and
  the first inline-code use of each public name in a chapter (``nf.ngd_step``) links to its API entry.
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

logger = logging.getLogger(__name__)

CHAPTER_GLOB = "[0-9][0-9]_*.ipynb"
NOTATION = "chapters/00_notation"
REF_ID = re.compile(r"^ref-[\w-]+$")
REF_ENTRY = re.compile(r'^\s*[-*]\s*<a id="(ref-[\w-]+)"></a>\s*(.*)$')
CODE_NAME = re.compile(r"^(?:nf\.|ngdformer\.)?(?P<name>(?:fast\.)?[A-Za-z_]\w*)(?:\(.*\)|\[.*\])?$", re.S)


def _chapters_dir(env) -> Path:
    return Path(env.srcdir) / "chapters"


def _chapter_files(env) -> list[Path]:
    return sorted(_chapters_dir(env).glob(CHAPTER_GLOB))


def _markdown_cells(path: Path) -> list[str]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]


# ---------------------------------------------------------------------------------------------------------------------
# The landing page's table of chapters


class ChapterTable(SphinxDirective):
    """A table of every ``chapters/NN_*.ipynb``: its title and the study time it states (its **Time.** line)."""

    def run(self):
        rows = ["| chapter | time to work through it, as the chapter states |", "|---|---|"]
        for path in _chapter_files(self.env):
            self.env.note_dependency(str(path))
            cells = _markdown_cells(path)
            title = next((ln[2:].strip() for ln in cells[0].splitlines() if ln.startswith("# ")), path.stem)
            text = "\n".join(cells)
            found = re.search(r"\*\*Time\.\*\*\s*(.*?)(?:\n\s*\n|$)", text, re.S)
            time = " ".join(found.group(1).split()).split(":")[0].rstrip(".") if found else "(a reference page)"
            rows.append(f"| [{title}](chapters/{path.name}) | {time} |")
        node = nodes.container(classes=["ngd-chapter-table"])
        self.state.nested_parse(StringList(rows, source="ngd-chapters"), self.content_offset, node)
        return node.children


# ---------------------------------------------------------------------------------------------------------------------
# The bibliography, read from chapter 00


def bibliography_entries(notation: Path) -> list[tuple[str, str]]:
    """(anchor, markdown text) of every reference listed in chapter 00, in its order."""
    entries = []
    for cell in _markdown_cells(notation):
        for line in cell.splitlines():
            found = REF_ENTRY.match(line)
            if found:
                entries.append((found.group(1), found.group(2).strip()))
    return entries


class References(SphinxDirective):
    """The bibliography: each entry of chapter 00's references, with the anchor the chapters' citations use."""

    def run(self):
        notation = _chapters_dir(self.env) / "00_notation.ipynb"
        self.env.note_dependency(str(notation))
        entries = bibliography_entries(notation)
        if not entries:
            logger.warning("no references found in %s", notation, location=self.get_location())
        lines = []
        for anchor, text in entries:
            lines += [f"({anchor})=", text, ""]
        node = nodes.container(classes=["ngd-bibliography"])
        self.state.nested_parse(StringList(lines, source="ngd-references"), self.content_offset, node)
        return node.children


# ---------------------------------------------------------------------------------------------------------------------
# The API reference, grouped as ngdformer/__init__.py groups __all__


def api_groups(init_file: Path) -> list[tuple[str, list[str]]]:
    """The groups of ``__all__``: each comment inside the list opens a group, the strings after it are its names."""
    source = init_file.read_text(encoding="utf-8")
    tree = ast.parse(source)
    target = next(node for node in tree.body if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets))
    groups: list[tuple[str, list[str]]] = []
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    for tok in tokens:
        if not (target.lineno <= tok.start[0] <= target.end_lineno):
            continue
        if tok.type == tokenize.COMMENT:
            groups.append((tok.string.lstrip("#").strip(), []))
        elif tok.type == tokenize.STRING:
            if not groups:
                groups.append(("other", []))
            groups[-1][1].append(ast.literal_eval(tok.string))
    return groups


class ApiReference(SphinxDirective):
    """Every public name of ``ngdformer.__all__``, group by group, then the module ``ngdformer.fast``."""

    def run(self):
        import ngdformer

        init_file = Path(ngdformer.__file__)
        self.env.note_dependency(str(init_file))
        groups = api_groups(init_file)
        listed = [name for _, names in groups for name in names]
        if sorted(listed) != sorted(ngdformer.__all__):
            logger.warning("the groups read from %s do not list ngdformer.__all__", init_file,
                           location=self.get_location())
        lines = [".. currentmodule:: ngdformer", ""]
        for title, names in groups:
            heading = title[:1].upper() + title[1:]
            lines += [heading, "-" * len(heading), "", ".. autosummary::", ""]
            lines += [f"   {name}" for name in names]
            lines.append("")
            for name in names:
                obj = getattr(ngdformer, name)
                if name == "fast":
                    lines += ["The fast twins of the layer and the looped model are listed under "
                              ":ref:`api-fast` below.", ""]
                elif isinstance(obj, type):
                    lines += [f".. autoclass:: ngdformer.{name}", ""]
                elif callable(obj):
                    lines += [f".. autofunction:: ngdformer.{name}", ""]
                else:
                    lines += [f".. autodata:: ngdformer.{name}", "   :no-value:", ""]
        lines += [".. _api-fast:", "", "ngdformer.fast", "--------------", "",
                  ".. automodule:: ngdformer.fast", "   :members:", ""]
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="ngd-api"), node)
        return node.children


INLINE_MARKUP = re.compile(r"(``.*?``|:\w+:`[^`]*`|`[^`]*`)")


def escape_bars(app, what, name, obj, options, lines):
    """Escape ``|`` in a docstring's plain text, where reStructuredText would read ``max |entry|`` as a
    substitution; maths (``:math:`` roles and ``.. math::`` blocks) and literals are left as they are."""
    in_math, math_indent = False, 0
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if in_math and line.strip() and indent <= math_indent:
            in_math = False
        if line.lstrip().startswith(".. math::"):
            in_math, math_indent = True, indent
            continue
        if in_math or "|" not in line:
            continue
        parts = INLINE_MARKUP.split(line)
        lines[i] = "".join(p if k % 2 else re.sub(r"(?<!\\)\|", r"\\|", p) for k, p in enumerate(parts))


# ---------------------------------------------------------------------------------------------------------------------
# A chapter's figure shown on another page


class chapter_figure(nodes.General, nodes.Element):
    """Placeholder, replaced once every chapter has been read by the chapter's own image."""


class ChapterFigure(SphinxDirective):
    """``ngd-chapter-figure`` CHAPTER with ``:title:`` and/or ``:contains:`` (text of the section that draws it)
    and ``:image:`` n.

    The figure is the n-th image of the first innermost section of the chapter whose title contains ``:title:``
    and whose text contains ``:contains:`` (case and spacing ignored) and that holds at least n images. A figure
    that cannot be found is a build warning, an error under ``-W``: the page never shows a stale figure.
    """

    required_arguments = 1
    option_spec = {"title": directives.unchanged_required, "contains": directives.unchanged_required,
                   "image": directives.positive_int, "width": directives.unchanged}

    def run(self):
        docname = self.arguments[0].removesuffix(".ipynb")
        self.env.note_dependency(str(Path(self.env.srcdir) / f"{docname}.ipynb"))
        node = chapter_figure(chapter=docname, title=self.options.get("title", ""),
                              contains=self.options.get("contains", ""), image=self.options.get("image", 1),
                              width=self.options.get("width", "100%"))
        node.source, node.line = self.get_source_info()
        return [node]


def _flat(text: str) -> str:
    return " ".join(text.lower().split())


def _find_chapter_image(doctree, title: str, contains: str, index: int):
    def matches(section):
        heading = section.next_node(nodes.title)
        return _flat(title) in _flat(heading.astext() if heading else "") and _flat(contains) in _flat(section.astext())

    found = [s for s in doctree.findall(nodes.section) if matches(s)]
    innermost = [s for s in found if not any(t is not s and matches(t) for t in s.findall(nodes.section))]
    for section in innermost:
        images = list(section.findall(nodes.image))
        if len(images) >= index:
            return section, images[index - 1]
    return None, None


def resolve_chapter_figures(app, doctree, fromdocname):
    for node in list(doctree.findall(chapter_figure)):
        chapter = node["chapter"]
        if chapter not in app.env.all_docs:
            logger.warning("unknown chapter %r", chapter, location=node)
            node.replace_self([])
            continue
        section, image = _find_chapter_image(app.env.get_doctree(chapter), node["title"], node["contains"],
                                             node["image"])
        if image is None:
            logger.warning("no figure %d in a section of %s titled %r containing %r", node["image"], chapter,
                           node["title"], node["contains"], location=node)
            node.replace_self([])
            continue
        figure = nodes.figure(classes=["ngd-chapter-figure"])
        doctree.set_id(figure, suggested_prefix="chapter-figure")
        img = image.deepcopy()
        img["width"] = node["width"]
        img["alt"] = f"figure made by {app.env.titles[chapter].astext()}"
        figure += img
        title = section.next_node(nodes.title)
        link = nodes.reference("", "", internal=True,
                               refuri=app.builder.get_relative_uri(fromdocname, chapter) + "#" + section["ids"][0])
        link += nodes.inline(text=f"{app.env.titles[chapter].astext()}, section “")
        link += [child.deepcopy() for child in title.children]       # the title's maths stays maths
        link += nodes.inline(text="”")
        figure += nodes.caption("", "", nodes.Text("As built by this book from "), link, nodes.Text("."))
        node.replace_self(figure)


# ---------------------------------------------------------------------------------------------------------------------
# Transforms on the chapters


class ChapterLinks(SphinxPostTransform):
    """Links to the chapters resolve inside the book, and citations land on the bibliography.

    MyST resolves a link such as ``00_notation.ipynb`` through the real path of ``docs/chapters`` (the symbolic
    link), which lies outside the book's sources; the link is mapped back to ``chapters/``. A link to an anchor
    ``ref-*`` (a reference of chapter 00) becomes a reference to that entry of the bibliography page.
    """

    default_priority = 5      # before MyST's resolver (9) and Sphinx's (10)

    def run(self, **kwargs):
        real = _chapters_dir(self.env).resolve()
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") != "doc":
                continue
            target = node["reftarget"]
            if target.startswith(str(real) + "/"):
                node["reftarget"] = target = "chapters/" + target[len(str(real)) + 1:]
            anchor = node.get("reftargetid") or ""
            if target == NOTATION and REF_ID.match(anchor):
                node.replace_self(_citation(node, anchor, self.env.docname))
        if self.env.docname == NOTATION:
            for node in list(self.document.findall(nodes.reference)):
                anchor = node.get("refid") or (node.get("refuri") or "").removeprefix("#")
                if node.get("id_link") and REF_ID.match(anchor):
                    node.replace_self(_citation(node, anchor, self.env.docname))


def _citation(node, anchor: str, docname: str):
    xref = addnodes.pending_xref("", refdomain="std", reftype="ref", reftarget=anchor, refexplicit=True,
                                 refwarn=True, refdoc=docname)
    xref += nodes.inline("", "", *[child.deepcopy() for child in node.children], classes=["ngd-citation"])
    return xref


def public_names() -> dict[str, str]:
    """Inline-code spelling -> documented target, for every name of ``ngdformer.__all__`` and of ``ngdformer.fast``."""
    import ngdformer

    names = {name: f"ngdformer.{name}" for name in ngdformer.__all__}
    for name, obj in vars(ngdformer.fast).items():
        if not name.startswith("_") and callable(obj) and getattr(obj, "__module__", "") == "ngdformer.fast":
            names[f"fast.{name}"] = f"ngdformer.fast.{name}"
    return names


class ApiLinks(SphinxPostTransform):
    """In a chapter, the first inline-code use of each public name (``nf.ngd_step``, ``ngd_step(w, X, y)``,
    ``nf.fast.query_loop``) links to its entry in the API reference."""

    default_priority = 6

    def run(self, **kwargs):
        if not self.env.docname.startswith("chapters/"):
            return
        names = public_names()
        seen = set()
        for node in list(self.document.findall(nodes.literal)):
            if isinstance(node.parent, addnodes.pending_xref):
                seen.add(node.parent.get("reftarget"))
            if isinstance(node.parent, (nodes.reference, addnodes.pending_xref, nodes.title)):
                continue
            found = CODE_NAME.match(node.astext().strip())
            if not found or found.group("name") not in names:
                continue
            target = names[found.group("name")]
            if target in seen:
                continue
            seen.add(target)
            xref = addnodes.pending_xref("", refdomain="py", reftype="obj", reftarget=target, refexplicit=True,
                                         refwarn=True, refdoc=self.env.docname)
            xref["py:module"] = None
            xref["py:class"] = None
            node.replace_self(xref)
            xref += node
            node["classes"] += ["ngd-api-link"]


def setup(app):
    app.add_directive("ngd-chapters", ChapterTable)
    app.add_directive("ngd-references", References)
    app.add_directive("ngd-api", ApiReference)
    app.add_directive("ngd-chapter-figure", ChapterFigure)
    app.add_node(chapter_figure)
    app.connect("doctree-resolved", resolve_chapter_figures)
    app.connect("autodoc-process-docstring", escape_bars)
    app.add_post_transform(ChapterLinks)
    app.add_post_transform(ApiLinks)
    app.add_css_file("ngdformer_book.css")
    app.connect("builder-inited", _add_static_path)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}


def _add_static_path(app):
    static = str(Path(__file__).resolve().parent / "static")
    if static not in app.config.html_static_path:
        app.config.html_static_path.append(static)
