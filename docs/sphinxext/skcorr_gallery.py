"""Sphinx-Gallery helpers of the skcorr documentation.

:func:`bare_figure_scraper` collects the figures of :mod:`skcorr.visualize`. Those
helpers build :class:`matplotlib.figure.Figure` objects directly, without pyplot, so
Sphinx-Gallery's matplotlib scraper (which walks pyplot's figure registry) never sees
them. This scraper looks for such figures among the example's variables after each
code block and saves every one it has not saved before. It must run before the
matplotlib scraper, which closes pyplot's figures (and a closed figure, like a bare
one, has no manager).
"""

from pathlib import PurePosixPath

_state = {"src_file": None, "seen": []}


def bare_figure_scraper(block, block_vars, gallery_conf, **kwargs):
    """Save the pyplot-less matplotlib figures a code block left in the example's names."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    if _state["src_file"] != block_vars["src_file"]:
        _state["src_file"] = block_vars["src_file"]
        _state["seen"] = []
    seen = _state["seen"]
    # Figures pyplot manages belong to the matplotlib scraper, which runs after this
    # one and closes them (a closed figure has no manager either: remember them now).
    from matplotlib._pylab_helpers import Gcf

    seen.extend(manager.canvas.figure for manager in Gcf.get_all_fig_managers())
    figures = []
    for value in block_vars["example_globals"].values():
        if (isinstance(value, Figure) and getattr(value.canvas, "manager", None) is None
                and not any(value is old for old in seen)
                and not any(value is new for new in figures)):
            figures.append(value)
    rst = ""
    paths = iter(block_vars["image_path_iterator"])
    for figure in figures:
        image_path = PurePosixPath(next(paths))
        figure.savefig(image_path, **kwargs)
        seen.append(figure)
        rst += figure_rst([image_path], gallery_conf["src_dir"],
                          srcsetpaths=[{0: image_path}])
    return rst
