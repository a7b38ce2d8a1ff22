"""Sphinx configuration of qdaed's documentation.

Build (warnings are errors, every executed page runs):

    sphinx-build -W -b html docs docs/_build/html

Executed pages (MyST notebooks, ``file_format: mystnb``) run in a fresh kernel on every
build (``nb_execution_mode = "force"``): a check that fails stops the build. Set
``QDAED_DOCS_EXECUTE=cache`` to reuse outputs of unchanged pages while editing text (a cache
does not notice a change in the package, so CI never uses it).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the checkout's qdaed, for autodoc
sys.path.insert(0, str(Path(__file__).resolve().parent / "_ext"))
# executed pages import qdaed from the checkout too (an installed older copy must not win)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

import qdaed  # noqa: E402

project = "qdaed"
author = "the qdaed authors"
copyright = "the qdaed authors, MIT licence"
release = version = qdaed.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 from the package, copied into _static: no network
    "sourceinclude",  # literalinclude :no-docstring: (docs/_ext): source under its autodoc entry
]

exclude_patterns = ["_build", "jupyter_execute", ".jupyter_cache", "**/.ipynb_checkpoints",
                    "results/runs/**"]
source_suffix = {".md": "myst-nb", ".rst": "restructuredtext"}

# Links: every internal reference must resolve (a broken one is a warning, hence an error).
nitpicky = True
# numpydoc's type fields name things like "ndarray" or "array_like", which are not documented
# objects here; the references that matter (pages, sections, documented functions) are checked.
nitpick_ignore_regex = [(r"py:(class|obj|data)", r".*")]
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
suppress_warnings = ["mystnb.unknown_mime_type"]

# Executed pages.
nb_execution_mode = os.environ.get("QDAED_DOCS_EXECUTE", "force")
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_execution_timeout = 300
nb_merge_streams = True
nb_render_markdown_format = "myst"   # tables in generated Markdown (results pages)

# API reference: numpydoc sections, no autosummary tables.
autodoc_member_order = "bysource"
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"qdaed {release}"
html_static_path = [str(Path(__file__).resolve().parent / "_static")]
html_css_files = ["qdaed.css"]
html_last_updated_fmt = None


def _executed_pages(app, env, added, changed, removed):
    """Every executed page is re-read (so re-run) on every build, not only the edited ones:
    a page's check must see the package as it is now, and Sphinx does not know which
    modules a page imports."""
    return [name for name in env.found_docs
            if "file_format: mystnb" in Path(env.doc2path(name)).read_text()[:200]]


def setup(app):
    app.connect("env-get-outdated", _executed_pages)
