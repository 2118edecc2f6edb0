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

__all__ = ["flow_to_color", "plot_flow", "plot_localization_histogram", "plot_matches",
           "plot_reconstruction", "plot_rf_averages", "plot_score_maps"]


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
              title=None, path=None):
    """Show an alignment: the source, the target with transferred keypoints, the warp.

    The figure's title names the method drawn: ``title`` when given (say which features
    the flow was computed on, e.g. ``"flow MRF on efficientnet_lite0 conv5,
    lam=0.1"``), else the flow's own settings (``"flow MRF, lam=0.1"``, with
    ``"sub-cell matches"`` when it has them). Long titles wrap rather than being clipped.

    Parameters
    ----------
    source, target : ndarray of shape (H, W, 3) or path
    flow : skcorr.flow.Flow
        From :func:`skcorr.flow.align` of the source's and target's feature maps.
    source_keypoints : array-like of shape (K, 2), default=None
        Drawn on the source (o) and transferred to the target (x).
    target_keypoints : array-like of shape (K, 2), default=None
        The target's true keypoints, drawn on it (o).
    title : str or None, default=None
        The figure's title; ``None`` describes the flow's settings.
    path : str or path-like, default=None

    Returns
    -------
    matplotlib.figure.Figure
    """
    source = as_rgb(source, name="source")
    target = as_rgb(target, name="target")
    if title is None:
        title = f"flow MRF, lam={flow.lam:g}" + (
            ", sub-cell matches" if getattr(flow, "subcell", None) is not None else "")
    elif not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}.")
    fig, axes = _figure(1, 3, panel=4.0)
    fig.suptitle(title, fontsize=11, wrap=True)
    style = {"cmap": "tab10", "s": 40, "edgecolors": "white"}
    panels = [(source, "source"), (target, "target"),
              (flow.warp_image(target), "target warped onto the source")]
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


def flow_to_color(field, *, max_flow=None) -> np.ndarray:
    """A flow field as a colour-wheel picture (the Middlebury convention).

    The hue is the direction of each pixel's motion and the saturation its length: white
    is no motion, full colour the longest motion (or ``max_flow``). Drawn by
    :func:`torchvision.utils.flow_to_image`.

    Parameters
    ----------
    field : array-like of shape (H, W, 2) or Flow
        ``(u, v)`` in pixels at every pixel (:meth:`skcorr.flow.Flow.pixel_flow`; a
        :class:`~skcorr.flow.Flow` is drawn as its ``pixel_flow()``).
    max_flow : float or None, default=None
        The motion length, in pixels, drawn in full colour (longer ones are clipped to
        it), so that several pictures share one scale; ``None``: the field's longest
        motion.

    Returns
    -------
    image : ndarray of shape (H, W, 3), uint8
        The picture.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.visualize import flow_to_color
    >>> field = np.zeros((2, 3, 2))
    >>> flow_to_color(field)[0, 0].tolist()  # no motion is white
    [255, 255, 255]
    """
    if hasattr(field, "pixel_flow"):
        field = field.pixel_flow()
    field = np.asarray(field)
    if field.ndim != 3 or field.shape[2] != 2 or 0 in field.shape:
        raise ValueError(f"field must be an array of shape (H, W, 2) holding (u, v) per pixel, "
                         f"or a Flow; got shape {field.shape}.")
    if not (np.issubdtype(field.dtype, np.floating) or np.issubdtype(field.dtype, np.integer)):
        raise TypeError(f"field must hold numbers, got dtype {field.dtype}.")
    field = field.astype(np.float32)
    if not np.isfinite(field).all():
        raise ValueError("field holds NaN or infinite values; replace them (e.g. by 0) first.")
    import torch
    from torchvision.utils import flow_to_image

    height, width = field.shape[:2]
    if max_flow is not None:
        if not (np.isfinite(max_flow) and max_flow > 0):
            raise ValueError(f"max_flow must be a number of pixels > 0, got {max_flow!r}.")
        length = np.hypot(field[..., 0], field[..., 1])[..., None]
        field = field / np.maximum(length, max_flow)  # at most 1: full colour at max_flow
        # flow_to_image divides by the longest motion: one extra pixel of length 1 fixes it
        field = np.concatenate([field, np.zeros((height, 1, 2), np.float32)], axis=1)
        field[0, -1] = (1.0, 0.0)
    image = flow_to_image(torch.from_numpy(np.ascontiguousarray(field.transpose(2, 0, 1))))
    return image.permute(1, 2, 0).numpy()[:, :width].copy()


def plot_matches(source_image, target_image, source_points, target_points, scores=None, *,
                 max_lines=300, cmap="viridis", score_label="confidence", width=10.0,
                 path=None):
    """Two images side by side with a line between every pair of matched points.

    Lines are coloured by their score (with a colorbar) when ``scores`` are given: on
    ``[0, 1]`` when all scores lie in it (a confidence), on their range otherwise.

    Parameters
    ----------
    source_image, target_image : ndarray of shape (H, W, 3) or path
        The two images (the source on the left).
    source_points, target_points : array-like of shape (n, 2)
        ``(x, y)`` of the matched points, in pixels of each image (e.g. from
        :meth:`skcorr.flow.Flow.matches`); rows with a NaN are left out.
    scores : array-like of shape (n,) or None, default=None
        A score per match (e.g. its confidence); ``None`` (or all NaN) draws every line
        in one colour.
    max_lines : int, default=300
        Draw at most this many matches, evenly spread over the list (the title says how
        many were drawn).
    cmap : str, default="viridis"
        Matplotlib colormap of the scores.
    score_label : str, default="confidence"
        Label of the colorbar.
    width : float, default=10.0
        Width of the figure in inches; its height follows the images' (at 100 dpi when
        saved, ``width * 100`` pixels wide).
    path : str or path-like, default=None
        Where to save the figure (whole or not at all).

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    source = as_rgb(source_image, name="source_image")
    target = as_rgb(target_image, name="target_image")
    src = _points(source_points, "source_points")
    dst = _points(target_points, "target_points")
    if len(src) != len(dst):
        raise ValueError(f"source_points and target_points must have the same length, got "
                         f"{len(src)} and {len(dst)}.")
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(src):
            raise ValueError(f"scores must have one value per match ({len(src)}), got "
                             f"{len(scores)}.")
        if np.isnan(scores).all():
            scores = None
    if isinstance(max_lines, bool) or not isinstance(max_lines, int | np.integer) or \
            max_lines < 1:
        raise ValueError(f"max_lines must be an integer >= 1, got {max_lines!r}.")
    keep = ~(np.isnan(src).any(axis=1) | np.isnan(dst).any(axis=1))
    if scores is not None:
        keep &= ~np.isnan(scores)
    index = np.flatnonzero(keep)
    n_valid = len(index)
    if n_valid > max_lines:
        index = index[np.unique(np.linspace(0, n_valid - 1, max_lines).round().astype(int))]

    (hs, ws), (ht, wt) = source.shape[:2], target.shape[:2]
    gap = max(ws, wt) // 20
    offset = ws + gap
    total_w, total_h = offset + wt, max(hs, ht)
    fig = Figure(figsize=(width, width * total_h / total_w + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(source, extent=(-0.5, ws - 0.5, hs - 0.5, -0.5))
    ax.imshow(target, extent=(offset - 0.5, offset + wt - 0.5, ht - 0.5, -0.5))
    ax.set_xlim(-0.5, total_w - 0.5)
    ax.set_ylim(total_h - 0.5, -0.5)
    ax.axis("off")
    segments = np.stack([src[index], dst[index] + [offset, 0.0]], axis=1)
    lines = LineCollection(segments, linewidths=1.0, alpha=0.8)
    if scores is None:
        lines.set_color("#ffdd00")
    else:
        low, high = float(np.nanmin(scores[keep])), float(np.nanmax(scores[keep]))
        norm = Normalize(0.0, 1.0) if low >= 0 and high <= 1 else Normalize(low, high)
        lines.set_array(scores[index])
        lines.set_cmap(colormaps[cmap])
        lines.set_norm(norm)
        fig.colorbar(lines, ax=ax, label=score_label, shrink=0.8)
    ax.add_collection(lines)
    ax.scatter(segments[:, 0, 0], segments[:, 0, 1], s=6, c="white", linewidths=0)
    ax.scatter(segments[:, 1, 0], segments[:, 1, 1], s=6, c="white", linewidths=0)
    drawn = f"{len(index)} of {n_valid} matches" if len(index) < n_valid else f"{n_valid} matches"
    ax.set_title(f"source (left) -> target (right): {drawn}", fontsize=10)
    return _finish(fig, path)


def _points(points, name: str) -> np.ndarray:
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (n, 2) holding (x, y), got {array.shape}.")
    return array
