"""Sphinx configuration of the scgan_cluster documentation.

Build: ``pip install ".[docs]" && sphinx-build -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import shutil
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _package_version
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# Import the package from this source tree, so that the API pages document the code beside them.
sys.path.insert(0, str(ROOT))

# The tutorials live in ../tutorials (run and committed there); Sphinx reads sources only inside
# docs/, so they are copied into docs/tutorials/ (git-ignored) at every build.
_TUTORIALS = HERE / "tutorials"
_TUTORIALS.mkdir(exist_ok=True)
for _stale in _TUTORIALS.glob("*.ipynb"):
    if not (ROOT / "tutorials" / _stale.name).exists():
        _stale.unlink()
for _notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
    shutil.copy2(_notebook, _TUTORIALS / _notebook.name)

project = "scgan_cluster"
author = "scgan_cluster developers"
copyright = "scgan_cluster developers"
try:
    release = _package_version("scgan-cluster")
except PackageNotFoundError:  # building from a source tree without install
    release = "0+unknown"
version = release

extensions = [
    "myst_nb",  # notebooks; also activates myst_parser for the markdown pages
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

# .rst first: autosummary writes its stubs with the first suffix, and they are reStructuredText
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# MyST
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# myst-nb: the notebooks are stored with their outputs; the docs build never runs them
nb_execution_mode = "off"

# API pages
autosummary_generate = True
autodoc_default_options = {"members": True}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_ivar = True
napoleon_use_rtype = False

html_theme = "furo"
html_title = "scgan_cluster"
