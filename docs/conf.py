"""Sphinx configuration of the course book.

Build (from the repository root):

    pip install -e ".[book]" && python -m sphinx -W -b html docs docs/_build/html

The chapters are not copied: ``docs/chapters`` is a symbolic link to ``chapters/``, and every
``chapters/NN_*.ipynb`` is picked up by pattern and executed at build time (myst-nb).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

import ngdformer  # noqa: E402

project = "ngdformer"
author = "the ngdformer authors"
copyright = "2026, the ngdformer authors"
release = version = ngdformer.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 served with the book: no CDN
    "ngdformer_book",           # docs/_ext: citations, API links, the API page, figures of the paper page
]

# Only these sources: the book's own pages and every numbered chapter (by pattern, never a list).
include_patterns = ["index.md", "paper.md", "bibliography.md", "api.rst", "chapters/[0-9][0-9]_*.ipynb"]
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}

# MyST: $...$ and $$...$$ maths, and LaTeX environments such as \begin{bmatrix} kept intact.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# myst-nb: execute every chapter at build time (set NGDFORMER_BOOK_EXECUTION=cache to reuse
# unchanged chapters while editing the book; CI always builds with the default, "force").
nb_execution_mode = os.environ.get("NGDFORMER_BOOK_EXECUTION", "force")
# The kernels inherit this process's environment: draw figures inline even where MPLBACKEND=Agg is set (as in CI).
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
nb_execution_timeout = 600           # seconds per cell; the slowest chapter runs in well under that
nb_execution_allow_errors = False    # a failing cell is a warning naming the chapter, so -W fails the build;
nb_execution_raise_on_error = False  # the other chapters are still built, and the traceback is printed
nb_execution_show_tb = True
nb_output_stderr = "warn"            # anything on stderr is a warning, hence an error under -W
nb_merge_streams = True

# API reference: numpydoc docstrings through autodoc.
autosummary_generate = False
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"           # the numpydoc sections give the types and shapes
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "sphinx_book_theme"
html_title = "ngdformer course"
html_theme_options = {
    "use_download_button": True,      # each chapter page offers its .ipynb
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
html_context = {"default_mode": "light"}   # the figures are drawn on white; the reader can switch
html_favicon = "_ext/static/favicon.svg"
html_sourcelink_suffix = ""           # the download link of a chapter is the notebook itself
html_copy_source = True
html_last_updated_fmt = None
