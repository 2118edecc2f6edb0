"""Sphinx configuration of the skcorr documentation.

Build with ``make docs`` (``sphinx-build -b html docs docs/_build/html``). The API
pages (``docs/generated/``) and the example gallery (``docs/auto_examples/``) are
generated at build time and are not under version control.
"""

import importlib.util
import os
import sys
import warnings
from pathlib import Path

import skcorr

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "sphinxext"))

# -- Project ----------------------------------------------------------------------------
project = "skcorr"
author = "the skcorr developers"
copyright = "the skcorr developers"  # noqa: A001
version = skcorr.__version__
release = skcorr.__version__

# -- General ----------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
# Equations render without internet: sphinx-mathjax-offline (the docs extra) copies
# MathJax into _static and points mathjax_path at it. Without it, MathJax comes from its
# CDN (say so, but build: `pip install -e ".[docs]"` installs it).
if importlib.util.find_spec("sphinx-mathjax-offline") is not None:
    extensions.append("sphinx-mathjax-offline")
else:
    print("skcorr docs: sphinx-mathjax-offline is not installed; equations will load "
          "MathJax from the internet (pip install sphinx-mathjax-offline).")
templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
nitpicky = False

# -- autodoc / autosummary / numpydoc ---------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_member_order = "groupwise"
add_module_names = False

numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# -- HTML -------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"skcorr {version}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc", "sourcelink"],
}
html_static_path = []
html_show_sourcelink = True

# -- Sphinx-Gallery ---------------------------------------------------------------------
# Examples run offline on the bundled data; make sure no figure window opens.
os.environ.setdefault("MPLBACKEND", "Agg")
warnings.filterwarnings("ignore", category=UserWarning,
                        message="Matplotlib is currently using agg")

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"__init__\.py",
    "subsection_order": [
        "../examples/features",
        "../examples/classification",
        "../examples/flow",
        "../examples/detection",
        "../examples/visualization",
    ],
    "within_subsection_order": "FileNameSortKey",
    "doc_module": ("skcorr",),
    "reference_url": {"skcorr": None},
    "backreferences_dir": "generated/backreferences",
    "image_scrapers": ("skcorr_gallery.bare_figure_scraper", "matplotlib"),
    "remove_config_comments": True,
    "download_all_examples": False,
    "plot_gallery": "True",
    "abort_on_example_error": True,
    "show_memory": False,
    "min_reported_time": 1,
}


# -- Events -----------------------------------------------------------------------------
def _skip_foreign_members(app, what, name, obj, skip, options):
    """Leave out the members a class inherits from outside skcorr.

    Class pages list inherited members, so that a transformer's page shows the
    ``transform`` and ``extract_*`` methods of its skcorr base class; the methods of
    scikit-learn's base classes (``get_params``, ``set_output``, the ``set_*_request``
    methods of metadata routing, ...) are documented by scikit-learn, and their
    docstrings refer to its user guide, which is not part of these pages; the same goes
    for what an exception inherits from Python's built-in ones.
    """
    if what != "class":
        return None
    if name.startswith("set_") and name.endswith("_request"):
        return True
    function = getattr(obj, "fget", None) or getattr(obj, "__func__", None) or obj
    module = getattr(function, "__module__", None)
    if not (isinstance(module, str) and module.startswith("skcorr")):
        return True  # scikit-learn's base classes, built-in exceptions
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_members)
