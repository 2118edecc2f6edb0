"""Geometry shared across skcorr: resizing, the pixel-centre rescale, grids and boxes.

Coordinates follow :mod:`skcorr._image`: ``x`` is the column and ``y`` the row, and
integer coordinates are pixel *centres* (pixel 0 covers ``[-0.5, 0.5)``). Resizing an
image by a factor ``s`` therefore maps a coordinate by ``(x + 0.5) * s - 0.5``
(:func:`rescale_points`): the outer edge ``-0.5`` stays where it is, as in
:func:`skimage.transform.resize`.

A *grid* is a separable lattice of points given by the ``x`` of its columns (``xs``)
and the ``y`` of its rows (``ys``), evenly spaced: the receptive-field centres of a
feature map, or the nodes of a flow. Its *nodes* are the integer ``(row, col)`` pairs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "grid_coordinate",
    "keypoint_boxes",
    "longer_side_scale",
    "node_grid",
    "rescale_points",
    "resize",
    "resize_longer_side",
    "sample_grid",
]


def rescale_points(points, scale, *, inverse: bool = False) -> np.ndarray:
    """Coordinates in an image resized by ``scale``: ``(x + 0.5) * scale - 0.5``.

    ``scale`` is broadcast against ``points`` (``(sx, sy)`` for ``(..., 2)`` pairs
    ``(x, y)``); ``inverse`` maps back from the resized image, ``(x + 0.5) / scale - 0.5``.
    NaN stays NaN.
    """
    points = np.asarray(points, dtype=np.float64)
    if inverse:
        return (points + 0.5) / scale - 0.5
    return (points + 0.5) * scale - 0.5


def longer_side_scale(shape, size) -> float:
    """The factor that brings the longer side of an image of ``shape`` to ``size`` pixels.

    ``shape`` is ``(height, width, ...)``; ``size=None`` means no resizing (1.0).
    """
    return 1.0 if size is None else size / max(shape[0], shape[1])


def resize(image: np.ndarray, shape) -> np.ndarray:
    """``image`` resized to ``shape = (height, width)`` by Pillow's bilinear filter.

    ``image`` is an ``(H, W, 3)`` uint8 or an ``(H, W)`` float32 array; the result has
    its dtype. Pillow's filter is anti-aliased when it shrinks.
    """
    from PIL import Image

    height, width = shape
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def resize_longer_side(image: np.ndarray, size) -> tuple[np.ndarray, tuple[float, float]]:
    """``image`` (see :func:`resize`) with its longer side resized to ``size`` pixels.

    Returns the resized image (``image`` itself when ``size`` is None) and its scales
    ``(new_width / width, new_height / height)``: each side is rounded to whole pixels
    (at least one), so the axes may scale slightly differently. Map coordinates into the
    result with ``rescale_points(points, scales)``.
    """
    if size is None:
        return image, (1.0, 1.0)
    height, width = image.shape[:2]
    scale = longer_side_scale(image.shape, size)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    return resize(image, (new_h, new_w)), (new_w / width, new_h / height)


def node_grid(shape) -> np.ndarray:
    """The ``(row, col)`` of every node of a grid of ``shape = (rows, cols)``: an int64
    array ``grid`` of shape ``(rows, cols, 2)`` with ``grid[i, j] == (i, j)``."""
    rows, cols = shape
    return np.stack(np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij"), axis=-1)


def grid_coordinate(centres: np.ndarray, values) -> np.ndarray:
    """Fractional grid index of coordinates ``values`` on an axis of evenly spaced
    ``centres``, clamped to ``[0, len(centres) - 1]`` (0 for a single centre)."""
    values = np.asarray(values)
    if len(centres) == 1:
        return np.zeros_like(values)
    step = centres[1] - centres[0]
    return np.clip((values - centres[0]) / step, 0, len(centres) - 1)


def sample_grid(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, points,
                interpolation: str = "nearest") -> np.ndarray:
    """``values`` (rows, cols, ...) of a grid with centres ``xs``, ``ys``, read at
    ``points`` (n, 2) as ``(x, y)``: an (n, ...) array of the dtype of ``values``.

    ``"nearest"`` takes the value of the grid point closest to each point (per axis,
    since the grid is separable); ``"bilinear"`` interpolates between the four grid
    points around it. Outside the outermost grid points the border value is used.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    fx = grid_coordinate(xs, points[:, 0])
    fy = grid_coordinate(ys, points[:, 1])
    if interpolation == "nearest":
        return values[np.rint(fy).astype(int), np.rint(fx).astype(int)]
    if interpolation != "bilinear":
        raise ValueError(
            f"interpolation must be 'nearest' or 'bilinear', got {interpolation!r}."
        )
    x0 = np.floor(fx).astype(int)
    y0 = np.floor(fy).astype(int)
    x1 = np.minimum(x0 + 1, len(xs) - 1)
    y1 = np.minimum(y0 + 1, len(ys) - 1)
    shape = (-1,) + (1,) * (values.ndim - 2)
    wx = (fx - x0).reshape(shape)
    wy = (fy - y0).reshape(shape)
    top = values[y0, x0] * (1 - wx) + values[y0, x1] * wx
    bottom = values[y1, x0] * (1 - wx) + values[y1, x1] * wx
    return (top * (1 - wy) + bottom * wy).astype(values.dtype, copy=False)


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """Bounding boxes ``(x, y, w, h)`` of the present keypoints of each image.

    ``w = max(x) - min(x)`` and ``h = max(y) - min(y)`` over the keypoints of an image
    that are not NaN (``keypoints`` has shape ``(n, K, 2)``); rows without any present
    keypoint are NaN.
    """
    present = ~np.isnan(keypoints).any(axis=2)
    boxes = np.full((keypoints.shape[0], 4), np.nan)
    for i, (points, mask) in enumerate(zip(keypoints, present, strict=True)):
        if mask.any():
            low = points[mask].min(axis=0)
            boxes[i] = (*low, *(points[mask].max(axis=0) - low))
    return boxes
