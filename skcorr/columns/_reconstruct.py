"""Study 1 of Long et al. (2014): what do columns know about their receptive field?

* :func:`reconstruct`: nonparametric reconstruction. Every column of an image's layer
  owns the patch around its RF centre (side = the layer's stride: the patches tile the
  image); each patch is replaced by the average of the patches around the RF centres of
  the column's k nearest neighbours (cosine) in a :class:`ColumnDatabase`.
* :func:`uniform_rf_reconstruction`: the baseline. The same neighbours, but each patch
  is cut at a uniformly random position inside a neighbourhood of the neighbour's RF
  centre (by default the layer's whole RF): what columns would give if they kept no
  spatial information inside their receptive field.
* :func:`rf_averages`: the average of the whole receptive fields of a seed column's
  nearest neighbours.
* :func:`reconstruction_error`: mean absolute pixel error, to compare the two.

Geometry. Pixel ``(x, y)`` of the query belongs to the grid cell whose RF centre is
nearest (per axis), so the cells tile the image, borders included. Its value is read
from each neighbour's image at the neighbour's RF centre plus the pixel's offset from
its own cell's centre, the offset scaled by the ratio of the two images' grid strides
(images resized differently by ``image_size`` see the network at the same scale), at
the nearest pixel, clamped to the neighbour's image.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

from .._geometry import longer_side_scale, rescale_points
from .._image import as_rgb, mean_abs_pixel_error
from ._database import ColumnDatabase
from ._extractor import check_fitted_extractor, grid_steps

__all__ = ["reconstruct", "reconstruction_error", "rf_averages", "uniform_rf_reconstruction"]


def _check_database(database) -> ColumnDatabase:
    if not isinstance(database, ColumnDatabase):
        raise TypeError(
            f"database must be a ColumnDatabase (ColumnDatabase.build or .open), got "
            f"{type(database).__name__}."
        )
    return database


def _neighbours(image, extractor, database, k, exclude_images):
    """The query image, its feature map, and the k nearest database columns of each cell."""
    database = _check_database(database)
    extractor = check_fitted_extractor(extractor)
    database.check_extractor(extractor)
    rgb = as_rgb(image)
    fmap = extractor.extract_dense([rgb])[0]
    queries = fmap.features.reshape(-1, fmap.features.shape[2])
    if isinstance(exclude_images, str):
        if exclude_images != "query":
            raise ValueError(f"exclude_images must be image indices or 'query', got "
                             f"{exclude_images!r}.")
        exclude_images = database.find_image(rgb)
    _, indices = database.search(queries, k, exclude_images=exclude_images)
    return rgb, fmap, indices


def _query_steps(fmap, extractor, database) -> tuple[float, float]:
    scale = longer_side_scale(fmap.image_shape, extractor.image_size)
    return grid_steps(fmap, database.meta["stride"][0] / scale)


def _cells(coordinate_count: int, centres: np.ndarray, step: float):
    """Per grid index, the slice of pixels nearest to its centre (one axis)."""
    owner = np.clip(np.rint((np.arange(coordinate_count) - centres[0]) / step), 0,
                    len(centres) - 1).astype(int)
    slices = []
    for c in range(len(centres)):
        where = np.flatnonzero(owner == c)
        slices.append(slice(where[0], where[-1] + 1) if where.size else None)
    return slices


def _compose(rgb_shape, fmap, steps, database, indices, shifts=None) -> np.ndarray:
    """Average the neighbours' patches into an image of the query's shape.

    ``shifts`` (n_cells, k, 2), in pixels of each neighbour's image, moves the point
    each neighbour's patch is centred on (the uniform-RF baseline); None cuts it at the
    RF centre.
    """
    height, width = rgb_shape[:2]
    rows, cols = fmap.grid_shape
    x_cells = _cells(width, fmap.xs, steps[0])
    y_cells = _cells(height, fmap.ys, steps[1])
    k = indices.shape[1]
    out = np.zeros((height, width, 3), dtype=np.float64)
    step = np.array(steps, dtype=np.float64)
    for r in range(rows):
        ys = y_cells[r]
        if ys is None:
            continue
        dy = np.arange(ys.start, ys.stop) - fmap.ys[r]
        for c in range(cols):
            xs = x_cells[c]
            if xs is None:
                continue
            dx = np.arange(xs.start, xs.stop) - fmap.xs[c]
            cell = r * cols + c
            total = np.zeros((len(dy), len(dx), 3), dtype=np.float64)
            for j in range(k):
                n = indices[cell, j]
                i = int(database.image_index[n])
                ratio = database.image_strides[i] / step
                centre = database.centers[n].astype(np.float64)
                if shifts is not None:
                    centre = centre + shifts[cell, j]
                h, w = database.image_shapes[i]
                src_x = np.clip(np.rint(centre[0] + dx * ratio[0]), 0, w - 1).astype(int)
                src_y = np.clip(np.rint(centre[1] + dy * ratio[1]), 0, h - 1).astype(int)
                total += database.image(i)[np.ix_(src_y, src_x)]
            out[ys, xs] = total / k
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def reconstruct(image, extractor, database, k=1, exclude_images=None):
    """Rebuild an image from the patches of its columns' nearest neighbours.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or path
        The query image.
    extractor : ConvColumnExtractor
        Must match the one the database was built with
        (:meth:`ColumnDatabase.check_extractor`).
    database : ColumnDatabase
    k : int, default=1
        Neighbours averaged per patch (the paper shows k = 1 and k = 5).
    exclude_images : array-like of int or "query", default=None
        Database images that may not be matched: pass the query's own index when it is
        in the database, so that it is rebuilt from *other* images; ``"query"``
        excludes every stored image whose pixels equal the query's
        (:meth:`ColumnDatabase.find_image`).

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
        The reconstruction (see the module notes for the geometry).

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.columns import ColumnDatabase, reconstruct
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    >>> ext = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    >>> db = ColumnDatabase.build(ext, images, tempfile.mkdtemp() + "/db")
    >>> reconstruct(images[0], ext, db, k=1, exclude_images=[0]).shape
    (48, 64, 3)
    """
    rgb, fmap, indices = _neighbours(image, extractor, database, k, exclude_images)
    steps = _query_steps(fmap, extractor, database)
    return _compose(rgb.shape, fmap, steps, database, indices)


def uniform_rf_reconstruction(image, extractor, database, k=1, exclude_images=None, *,
                              neighborhood=None, random_state=None):
    """The uniform-RF baseline of :func:`reconstruct`.

    The same nearest neighbours as :func:`reconstruct`, but each neighbour's patch is
    cut at a position drawn uniformly at random such that the patch lies inside a
    square ``neighborhood`` centred at the neighbour's RF centre. It is what the
    reconstruction would look like if a column said *what* is in its receptive field
    but not *where*.

    Parameters
    ----------
    image, extractor, database, k, exclude_images
        As in :func:`reconstruct`.
    neighborhood : float, default=None
        Side of the neighborhood in pixels of the network input (as the RF tables of
        :mod:`skcorr.backbones` give them; scaled to each database image like its
        stride). ``None`` uses the RF of the database's layer. The paper uses the RF of
        ``conv3`` (99 px for AlexNet).
    random_state : int, RandomState instance or None, default=None
        Seed of the random positions.

    Returns
    -------
    ndarray of shape (H, W, 3), uint8
    """
    rgb, fmap, indices = _neighbours(image, extractor, database, k, exclude_images)
    if neighborhood is None:
        neighborhood = float(max(database.meta["rf_size"]))
    if (isinstance(neighborhood, bool) or not isinstance(neighborhood, numbers.Real)
            or not neighborhood > 0):
        raise ValueError(f"neighborhood must be a positive number of pixels, got "
                         f"{neighborhood!r}.")
    rng = check_random_state(random_state)
    steps = _query_steps(fmap, extractor, database)
    images = database.image_index[indices]  # (n_cells, k)
    strides = database.image_strides[images]  # (n_cells, k, 2), neighbour pixels
    scale = strides / np.asarray(database.meta["stride"], dtype=np.float64)
    # the patch of a neighbour spans its stride in its own pixels
    half = np.maximum(neighborhood * scale - strides, 0.0) / 2.0
    shifts = rng.uniform(-1.0, 1.0, size=half.shape) * half
    return _compose(rgb.shape, fmap, steps, database, indices, shifts=shifts)


def reconstruction_error(original, reconstruction) -> float:
    """Mean absolute pixel error (0-255 scale) between an image and its reconstruction.

    Parameters
    ----------
    original, reconstruction : ndarray of shape (H, W, 3) or path

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr.columns import reconstruction_error
    >>> image = np.zeros((4, 6, 3), dtype=np.uint8)
    >>> reconstruction_error(image, image + 10)
    10.0
    """
    return mean_abs_pixel_error(original, reconstruction)


def rf_averages(extractor, database, seeds, k=5, *, size=None, random_state=None):
    """Average receptive fields of the nearest neighbours of seed columns.

    For each seed, its ``k`` nearest database columns are found (cosine; for a seed
    given as a database row, the columns of the seed's own image are left out), and
    the whole receptive fields of those neighbours (squares of the layer's RF side,
    centred at their RF centres) are resampled to ``size x size`` and averaged. Pixels
    of an RF that fall outside its image do not count; where no neighbour covers a
    pixel the average is 0 (black).

    Parameters
    ----------
    extractor : ConvColumnExtractor
        Must match the database's (:meth:`ColumnDatabase.check_extractor`).
    database : ColumnDatabase
    seeds : int, array-like of int of shape (n_seeds,), or array-like of shape (n_seeds, n_features)
        How many seed columns to draw at random from the database, which database rows
        to use as seeds, or seed columns themselves (from any image).
    k : int, default=5
        Neighbours averaged per seed.
    size : int, default=None
        Side of the output patches; ``None``: the layer's RF side in network-input
        pixels.
    random_state : int, RandomState instance or None, default=None
        Draws the seeds when ``seeds`` is an int.

    Returns
    -------
    ndarray of shape (n_seeds, size, size, 3), float32
        The average RFs, pixel values in [0, 255].
    """
    database = _check_database(database)
    extractor = check_fitted_extractor(extractor)
    database.check_extractor(extractor)
    query_images = None
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if not 1 <= seeds <= database.n_columns:
            raise ValueError(f"seeds={seeds} must lie in [1, {database.n_columns}] (the "
                             "number of database columns).")
        rows = check_random_state(random_state).choice(database.n_columns, seeds,
                                                       replace=False)
        seeds = np.sort(rows)
    seeds = np.asarray(seeds)
    if seeds.ndim == 1 and np.issubdtype(seeds.dtype, np.integer):
        if seeds.size == 0:
            raise ValueError("seeds is empty; give at least one seed.")
        if seeds.min() < 0 or seeds.max() >= database.n_columns:
            raise ValueError(f"seed rows must lie in [0, {database.n_columns - 1}].")
        queries = np.asarray(database.columns[seeds], dtype=np.float32)
        query_images = database.image_index[seeds]
    elif seeds.ndim == 2 and np.issubdtype(seeds.dtype, np.number):
        if len(seeds) == 0:
            raise ValueError("seeds is empty; give at least one seed.")
        queries = seeds.astype(np.float32)
    else:
        raise ValueError(
            f"seeds must be a number of seeds, a 1-D array of database rows or a 2-D array "
            f"of columns, got an array of shape {seeds.shape} and dtype {seeds.dtype}."
        )
    if size is None:
        size = int(round(max(database.meta["rf_size"])))
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}.")
    _, indices = database.search(queries, k, query_images=query_images)
    # The pixel centres of a size x size patch, in a square of side 1 about its centre.
    unit = rescale_points(np.arange(size), size, inverse=True)
    out = np.zeros((len(queries), size, size, 3), dtype=np.float32)
    for s, row in enumerate(indices):
        total = np.zeros((size, size, 3), dtype=np.float64)
        count = np.zeros((size, size, 1), dtype=np.float64)
        for n in row:
            i = int(database.image_index[n])
            h, w = database.image_shapes[i]
            cx, cy = database.centers[n]
            x = np.rint(cx + unit * database.rf_sizes[i]).astype(int)
            y = np.rint(cy + unit * database.rf_sizes[i]).astype(int)
            inside = ((y >= 0) & (y < h))[:, None] & ((x >= 0) & (x < w))[None, :]
            patch = database.image(i)[np.ix_(np.clip(y, 0, h - 1), np.clip(x, 0, w - 1))]
            total += patch * inside[..., None]
            count += inside[..., None]
        out[s] = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return out
