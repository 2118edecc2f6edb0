"""Per-pixel fields of a flow and the forward-backward consistency of two flows.

A flow lives on the source's grid of RF centres; its per-pixel fields are read off that
grid by the interpolation :meth:`Flow.transfer_points` uses (bilinear between the four
nodes around a pixel, the border nodes' values outside the outermost centres). That
interpolation is separable, so a whole image's field is two small matrix products per
channel: ``A_y @ values @ A_x.T``, with ``A_x`` the (width, cols) matrix of the weights
of each pixel column on the grid's columns (two non-zero weights per row).
"""

from __future__ import annotations

import numpy as np

from .._geometry import grid_coordinate

__all__ = ["consistency"]


def interpolation_matrix(centres: np.ndarray, n: int) -> np.ndarray:
    """The (n, len(centres)) weights of pixels ``0 .. n - 1`` on evenly spaced ``centres``.

    Row ``i`` holds the linear interpolation weights of coordinate ``i`` between the two
    centres around it (clamped to the outermost ones), as :func:`skcorr._geometry.sample_grid`
    weighs them.
    """
    f = grid_coordinate(centres, np.arange(n, dtype=np.float64))
    low = np.floor(f).astype(int)
    high = np.minimum(low + 1, len(centres) - 1)
    weight = f - low
    matrix = np.zeros((n, len(centres)))
    rows = np.arange(n)
    np.add.at(matrix, (rows, low), 1 - weight)
    np.add.at(matrix, (rows, high), weight)
    return matrix


def grid_to_pixels(values: np.ndarray, xs: np.ndarray, ys: np.ndarray, shape) -> np.ndarray:
    """``values`` (rows, cols[, channels]) on a grid, interpolated at every pixel of ``shape``."""
    height, width = shape
    ax = interpolation_matrix(xs, width)
    ay = interpolation_matrix(ys, height)
    if values.ndim == 2:
        return ay @ values @ ax.T
    return np.stack([ay @ values[..., c] @ ax.T for c in range(values.shape[2])], axis=-1)


def _step(centres: np.ndarray) -> float:
    return float(np.diff(centres).mean()) if len(centres) > 1 else 1.0


def consistency(forward, backward, *, sigma: float = 1.0):
    """Forward-backward consistency of two flows, per node of the forward flow's grid.

    Each source node ``p`` (an RF centre of the source grid) goes to its match ``q`` in
    the target by ``forward``, and ``q`` goes back into the source by ``backward`` (the
    flow from the target to the source, interpolated at ``q`` as
    :meth:`Flow.transfer_points` does). Where both flows agree, ``q`` lands back on
    ``p``; the distance between them measures how much the two directions disagree.

    Parameters
    ----------
    forward : Flow
        The flow from the source to the target.
    backward : Flow
        The flow from the target to the source (its source is ``forward``'s target).
    sigma : float, default=1.0
        Scale of the confidence, in source grid steps: a round trip that misses by
        ``sigma`` steps has confidence ``exp(-1/2)`` (about 0.61).

    Returns
    -------
    distance : ndarray of shape (rows, cols)
        For every source node, the distance between it and where its match maps back,
        in source grid steps (each axis's pixel offset divided by the grid's stride on
        that axis): 0 for a consistent match.
    confidence : ndarray of shape (rows, cols)
        ``exp(-distance**2 / (2 sigma**2))``, in ``(0, 1]``.

    Examples
    --------
    A flow and its reverse between a grid and itself are consistent everywhere:

    >>> import numpy as np
    >>> from skcorr.features import FeatureMap
    >>> from skcorr.flow import align, consistency
    >>> rng = np.random.default_rng(0)
    >>> columns = rng.normal(size=(4, 5, 8))
    >>> grid = FeatureMap(features=columns, xs=8.0 + 16 * np.arange(5),
    ...                   ys=8.0 + 16 * np.arange(4), rf_size=32.0, image_shape=(64, 80))
    >>> distance, confidence = consistency(align(grid, grid), align(grid, grid))
    >>> float(distance.max()), float(confidence.min())
    (0.0, 1.0)
    """
    for name, flow in (("forward", forward), ("backward", backward)):
        # duck-typed: _align imports this module, so this one does not import _align
        if not all(hasattr(flow, attr) for attr in ("matched_points", "transfer_points",
                                                    "target_index", "source_shape")):
            raise TypeError(f"{name} must be a Flow (from skcorr.flow.align), got "
                            f"{type(flow).__name__}.")
    if (tuple(backward.source_shape) != tuple(forward.target_shape)
            or tuple(backward.target_shape) != tuple(forward.source_shape)):
        raise ValueError(
            f"backward must be the flow from forward's target back to its source: forward "
            f"maps a {_size(forward.source_shape)} image to a {_size(forward.target_shape)} "
            f"one, backward a {_size(backward.source_shape)} image to a "
            f"{_size(backward.target_shape)} one. Align the target with the source "
            "(align(target_map, source_map)) for backward."
        )
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a number > 0 (in source grid steps), got {sigma!r}.")
    rows, cols = forward.target_index.shape[:2]
    gx, gy = np.meshgrid(forward.source_xs, forward.source_ys)
    back = backward.transfer_points(forward.matched_points().reshape(-1, 2))
    offset = back.reshape(rows, cols, 2) - np.stack([gx, gy], axis=-1)
    offset /= [_step(forward.source_xs), _step(forward.source_ys)]
    distance = np.hypot(offset[..., 0], offset[..., 1])
    return distance, np.exp(-distance ** 2 / (2.0 * sigma ** 2))


def _size(shape) -> str:
    return f"{shape[1]}x{shape[0]}"
