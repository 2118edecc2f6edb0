"""Figures: reconstructions, RF averages, flows, detector score maps, localization.

Every function builds a :class:`matplotlib.figure.Figure` directly (not through
``pyplot``), so it works under any backend, headless included, and leaves no figure
open in pyplot's registry. Each returns the Figure and, given ``path``, also saves it
there (the format from the file's extension).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._image import as_rgb, mean_abs_pixel_error
from .._io import atomic_path

__all__ = ["plot_flow", "plot_localization_histogram", "plot_reconstruction", "plot_rf_averages",
           "plot_score_maps"]


def _figure(n_rows, n_cols, panel=3.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(panel * n_cols, panel * n_rows + 0.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, squeeze=False)).ravel()
    return fig, axes


def _finish(fig, path):
    """Save the figure to ``path`` (a file name: whole or not at all; or a file object)."""
    if path is None:
        return fig
    if not isinstance(path, (str, os.PathLike)):
        fig.savefig(path, dpi=100)
        return fig
    from matplotlib import rcParams

    fmt = Path(path).suffix[1:].lower() or rcParams["savefig.format"]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=fmt)
    return fig


def plot_reconstruction(original, reconstructions, *, path=None):
    """Show an image beside its reconstructions, with their mean absolute errors.

    Parameters
    ----------
    original : ndarray of shape (H, W, 3) or path
    reconstructions : dict of str to image
        Title -> reconstruction (:func:`skcorr.columns.reconstruct`), for example
        ``{"k=1": ..., "uniform RF": ...}``.
    path : str or path-like, default=None
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    original = as_rgb(original, name="original")
    if not isinstance(reconstructions, dict):
        raise TypeError("reconstructions must be a dict mapping a title to an image.")
    fig, axes = _figure(1, 1 + len(reconstructions))
    axes[0].imshow(original)
    axes[0].set_title("original", fontsize=10)
    for ax, (title, image) in zip(axes[1:], reconstructions.items(), strict=True):
        name = f"reconstructions[{title!r}]"
        image = as_rgb(image, name=name)
        ax.imshow(image)
        error = mean_abs_pixel_error(original, image, names=("original", name))
        ax.set_title(f"{title}\nmean abs. error {error:.1f}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    return _finish(fig, path)


def plot_rf_averages(averages, *, n_cols=8, titles=None, path=None):
    """Show average receptive fields (the output of :func:`skcorr.columns.rf_averages`) in a grid.

    Parameters
    ----------
    averages : array-like of shape (n, S, S, 3)
        Pixel values in [0, 255].
    n_cols : int, default=8
        Panels per row.
    titles : sequence of str, default=None
        One title per panel.
    path : str or path-like, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    averages = np.asarray(averages, dtype=np.float64)
    if averages.ndim != 4 or averages.shape[3] != 3 or len(averages) == 0:
        raise ValueError(f"averages must have shape (n, S, S, 3) with n >= 1, got "
                         f"{averages.shape}.")
    n = len(averages)
    n_cols = max(1, min(int(n_cols), n))
    n_rows = -(-n // n_cols)
    fig, axes = _figure(n_rows, n_cols, panel=1.6)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            ax.imshow(np.clip(averages[i] / 255.0, 0.0, 1.0))
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    return _finish(fig, path)


def plot_flow(source, target, flow, source_keypoints=None, target_keypoints=None, *,
              path=None):
    """Show an alignment: the source, the target with transferred keypoints, the warp.

    Parameters
    ----------
    source, target : ndarray of shape (H, W, 3) or path
    flow : skcorr.flow.Flow
        From :func:`skcorr.flow.align` of the source's and target's feature maps.
    source_keypoints : array-like of shape (K, 2), default=None
        Drawn on the source (o) and transferred to the target (x).
    target_keypoints : array-like of shape (K, 2), default=None
        The target's true keypoints, drawn on it (o).
    path : str or path-like, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    source = as_rgb(source, name="source")
    target = as_rgb(target, name="target")
    fig, axes = _figure(1, 3, panel=4.0)
    style = {"cmap": "tab10", "s": 40, "edgecolors": "white"}
    panels = [(source, "source"), (target, "target"),
              (flow.warp_image(target), "target warped into the source frame")]
    for ax, (image, title) in zip(axes, panels, strict=True):
        ax.imshow(image)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    if source_keypoints is not None:
        points = np.asarray(source_keypoints, dtype=np.float64).reshape(-1, 2)
        colours = np.arange(len(points))
        axes[0].scatter(points[:, 0], points[:, 1], c=colours, marker="o", **style)
        moved = flow.transfer_points(points)
        axes[1].scatter(moved[:, 0], moved[:, 1], c=colours, marker="x", cmap="tab10", s=60)
        axes[0].set_title("source + its keypoints", fontsize=10)
    if target_keypoints is not None:
        points = np.asarray(target_keypoints, dtype=np.float64).reshape(-1, 2)
        axes[1].scatter(points[:, 0], points[:, 1], c=np.arange(len(points)), marker="o",
                        **style)
    if source_keypoints is not None or target_keypoints is not None:
        parts = (["truth (o)"] if target_keypoints is not None else []) + (
            ["transferred (x)"] if source_keypoints is not None else [])
        axes[1].set_title("target: " + ", ".join(parts), fontsize=10)
    return _finish(fig, path)


def plot_score_maps(crop, maps, keypoint_names=None, *, index=0, xs=None, ys=None,
                    n_cols=5, path=None):
    """Overlay per-keypoint score maps (detector decision maps) on a crop.

    Parameters
    ----------
    crop : ndarray of shape (H, W, 3) or path
    maps : Bunch or array-like of shape (K, rows, cols)
        The output of :meth:`skcorr.keypoints.SlidingKeypointDetector.decision_maps`
        (its ``combined`` maps of crop ``index`` are drawn, on their RF centres), or one
        map per keypoint type. NaN maps (types without a model) are left blank.
    keypoint_names : sequence of str, default=None
        Panel titles.
    index : int, default=0
        Which crop of a ``decision_maps`` result ``crop`` is.
    xs, ys : array-like, default=None
        RF centres of the map's columns and rows in crop pixels, for an array ``maps``;
        None spreads the map over the whole crop.
    n_cols : int, default=5
        Panels per row.
    path : str or path-like, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    crop = as_rgb(crop, name="crop")
    if isinstance(maps, dict):
        scores = np.asarray(maps["combined"][index], dtype=np.float64)
        xs, ys = maps["xs"][index], maps["ys"][index]
    else:
        scores = np.asarray(maps, dtype=np.float64)
    if scores.ndim == 2:
        scores = scores[None]
    if scores.ndim != 3 or len(scores) == 0:
        raise ValueError(f"maps must hold (K, rows, cols) score maps, got shape {scores.shape}.")
    height, width = crop.shape[:2]
    if xs is None or ys is None:
        extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    else:
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        hx = (xs[1] - xs[0]) / 2 if len(xs) > 1 else width / 2
        hy = (ys[1] - ys[0]) / 2 if len(ys) > 1 else height / 2
        extent = (xs[0] - hx, xs[-1] + hx, ys[-1] + hy, ys[0] - hy)
    n = len(scores)
    n_cols = max(1, min(int(n_cols), n))
    n_rows = -(-n // n_cols)
    fig, axes = _figure(n_rows, n_cols, panel=2.4)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(crop)
        score = scores[i]
        if np.isfinite(score).any():
            ax.imshow(np.ma.masked_invalid(score), extent=extent, cmap="jet", alpha=0.5,
                      interpolation="bilinear")
            r, c = np.unravel_index(np.nanargmax(score), score.shape)
            x = xs[c] if xs is not None else (c + 0.5) * width / score.shape[1] - 0.5
            y = ys[r] if ys is not None else (r + 0.5) * height / score.shape[0] - 0.5
            ax.scatter([x], [y], marker="+", c="white", s=80)
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(height - 0.5, -0.5)
        name = keypoint_names[i] if keypoint_names is not None else f"keypoint {i}"
        ax.set_title(str(name), fontsize=9)
    return _finish(fig, path)


def plot_localization_histogram(result, ax=None, title=None, *, path=None):
    """Show a localization histogram as an image (offset dx right, dy down).

    Parameters
    ----------
    result : Bunch or ndarray of shape (window, window)
        The result of :func:`skcorr.keypoints.localization_histogram`, or its
        ``histogram``.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    title : str, default=None
    path : str or path-like, default=None
        Where to save the figure.

    Returns
    -------
    matplotlib.figure.Figure
    """
    hist = np.asarray(result["histogram"] if isinstance(result, dict) else result)
    r = hist.shape[0] // 2
    if ax is None:
        fig, (ax,) = _figure(1, 1, panel=4)
    else:
        fig = ax.figure
    image = ax.imshow(hist, extent=(-r - 0.5, r + 0.5, r + 0.5, -r - 0.5), cmap="viridis",
                      interpolation="nearest")
    fig.colorbar(image, ax=ax, label="keypoints")
    ax.set_xlabel("dx of the maximum (px)")
    ax.set_ylabel("dy of the maximum (px)")
    ax.axhline(0, color="w", lw=0.5)
    ax.axvline(0, color="w", lw=0.5)
    if title:
        ax.set_title(title)
    return _finish(fig, path)
