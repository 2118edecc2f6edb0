"""Visualisation: nonparametric reconstruction, RF averages and plotting helpers.

Study 1 of Long et al. (2014) asks whether a convnet column knows *where* in its
receptive field things are:

* :class:`ColumnDatabase`: the columns of one layer from many images, on disk
  (memory-mapped ``.npy``), with exact top-k cosine search by blocked BLAS products.
* :func:`reconstruct` and its baseline :func:`uniform_rf_reconstruction`, compared by
  :func:`reconstruction_error`.
* :func:`rf_averages`: average receptive fields of a seed column's neighbours.
* Figures: :func:`plot_reconstruction`, :func:`plot_rf_averages`, :func:`plot_flow`,
  :func:`plot_score_maps` and :func:`plot_localization_histogram`.

Typical use::

    ext = ConvColumnExtractor(layer="conv4", mode="dense", image_size=320).fit()
    db = ColumnDatabase.build(ext, images, "conv4.db")       # once
    db = ColumnDatabase.open("conv4.db")                     # later
    rec = reconstruct(query, ext, db, k=5, exclude_images=[i])
    base = uniform_rf_reconstruction(query, ext, db, k=5, exclude_images=[i])
    plot_reconstruction(query, {"k=5": rec, "uniform RF": base}, path="rec.png")
"""

from ._database import ColumnDatabase
from ._plot import (
    flow_to_color,
    plot_flow,
    plot_localization_histogram,
    plot_matches,
    plot_reconstruction,
    plot_rf_averages,
    plot_score_maps,
)
from ._reconstruct import (
    reconstruct,
    reconstruction_error,
    rf_averages,
    uniform_rf_reconstruction,
)

__all__ = [
    "ColumnDatabase",
    "flow_to_color",
    "plot_flow",
    "plot_localization_histogram",
    "plot_matches",
    "plot_reconstruction",
    "plot_rf_averages",
    "plot_score_maps",
    "reconstruct",
    "reconstruction_error",
    "rf_averages",
    "uniform_rf_reconstruction",
]
