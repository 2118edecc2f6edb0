"""Figures: reconstructions, RF averages, flows, detector score maps, localization.

:func:`plot_reconstruction`, :func:`plot_rf_averages`, :func:`plot_flow`,
:func:`plot_score_maps` and :func:`plot_localization_histogram` draw the results of
:mod:`skcorr.columns` (Study 1: reconstructions and RF averages), :mod:`skcorr.flow`
and :mod:`skcorr.keypoints`. Each returns a :class:`matplotlib.figure.Figure` and, given
``path``, saves it there. Importing this package imports neither faiss nor the column
database.
"""

from ._plot import (
    flow_to_color,
    plot_flow,
    plot_localization_histogram,
    plot_matches,
    plot_reconstruction,
    plot_rf_averages,
    plot_score_maps,
)

__all__ = [
    "flow_to_color",
    "plot_flow",
    "plot_localization_histogram",
    "plot_matches",
    "plot_reconstruction",
    "plot_rf_averages",
    "plot_score_maps",
]

_MOVED = {name: "skcorr.columns" for name in (
    "ColumnDatabase", "reconstruct", "reconstruction_error", "rf_averages",
    "uniform_rf_reconstruction")}


def __getattr__(name: str):
    if name in _MOVED:
        raise AttributeError(f"skcorr.visualize.{name} moved to {_MOVED[name]}: import it "
                             f"from there (from {_MOVED[name]} import {name}).")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
