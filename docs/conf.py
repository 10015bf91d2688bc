"""Sphinx configuration: the Markdown pages (MyST), the notebooks (``notebooks/*.ipynb``,
shown with their stored outputs by myst-nb, never run here) and an API reference from
docstrings.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(``pip install '.[docs]'`` installs Sphinx, myst-parser and myst-nb).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document this checkout, installed or not

import symgrad  # noqa: E402

project = "symgrad"
author = "the symgrad authors"
copyright = "the symgrad authors"
version = release = symgrad.__version__

extensions = [
    "myst_nb",  # MyST Markdown (myst-parser) and notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Notebooks are stored with their outputs (tests/test_notebooks.py runs them and checks
# the stored outputs); the build shows those and runs nothing.
nb_execution_mode = "off"

# Markdown: `#`-anchors for headings so pages can link to sections; `$...$` and `$$...$$`
# are math (the printing and gallery pages show formulas), rendered by Sphinx's MathJax.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]
# The pages are also read on GitHub, where a generated page (benchmarks.md) may go from
# `#` straight to `###`; that is not an error there, so it is none here.
suppress_warnings = ["myst.header"]

# API reference: members in source order, signatures with type hints in the description.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = True

nitpicky = False
html_theme = "alabaster"
html_title = f"symgrad {release}"
html_static_path: list[str] = []
