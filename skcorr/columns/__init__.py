"""The column database and Study 1: what does a column know about its receptive field?

Study 1 of Long et al. (2014) asks whether a convnet column knows *where* in its
receptive field things are:

* :class:`ColumnDatabase`: the columns of one layer from many images, on disk
  (memory-mapped ``.npy``), with exact top-k cosine search by faiss (or an approximate
  IVF/PQ index for tens of millions of columns).
* :func:`reconstruct` and its baseline :func:`uniform_rf_reconstruction`, compared by
  :func:`reconstruction_error`.
* :func:`rf_averages`: average receptive fields of a seed column's neighbours.

:mod:`skcorr.visualize` draws the figures
(:func:`~skcorr.visualize.plot_reconstruction`,
:func:`~skcorr.visualize.plot_rf_averages`).

Typical use::

    ext = ConvColumnExtractor(layer="conv4", mode="dense", image_size=320).fit()
    db = ColumnDatabase.build(ext, images, "conv4.db")       # once
    db = ColumnDatabase.open("conv4.db")                     # later
    similarities, indices = db.search(queries, k=5)
    rec = reconstruct(query, ext, db, k=5, exclude_images=[i])
    base = uniform_rf_reconstruction(query, ext, db, k=5, exclude_images=[i])
    plot_reconstruction(query, {"k=5": rec, "uniform RF": base}, path="rec.png")
"""

from ._database import ColumnDatabase
from ._reconstruct import (
    reconstruct,
    reconstruction_error,
    rf_averages,
    uniform_rf_reconstruction,
)

__all__ = [
    "ColumnDatabase",
    "reconstruct",
    "reconstruction_error",
    "rf_averages",
    "uniform_rf_reconstruction",
]
