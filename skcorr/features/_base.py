"""What every feature transformer shares: feature maps, keypoint samples, three modes.

Data conventions
----------------
* **Images** follow :mod:`skcorr._image` (``(H, W, 3)`` uint8 arrays or file paths).
* **Keypoint samples** (``mode="keypoints"``): a 2-D object array with one row per
  keypoint, ``[image, x, y]``, built by :func:`keypoint_samples`. Rows of the same image
  share the same image object (or path), so the image's features are computed once
  however many of its keypoints are asked for, and the array can be indexed, split and
  cross-validated like any other ``X``.
* **Dense features** (``mode="dense"``): one :class:`FeatureMap` per image, holding the
  grid of columns and the pixel coordinates of their receptive-field centres.
* **Global features** (``mode="global"``): one row per image.
"""

from __future__ import annotations

import copy
import numbers
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from .._geometry import grid_coordinate, sample_grid
from .._image import as_rgb, check_images
from .._parallel import chunks, dask_client
from .._validation import check_image_keypoints, check_points_inside
from ._cache import FeatureCache, check_memory_folder, signature

__all__ = ["FeatureMap", "keypoint_samples", "split_keypoint_samples"]

#: Version of what the feature cache stores; bump it when that changes, so that older
#: entries are not served (2: FeatureMap.bin_size; 3: entries hold a checksum; 4: convnet
#: columns from a forward pass on one thread, the same whatever the machine's threads).
_CACHE_FORMAT = 4

#: The largest ``image_size`` (longer side, pixels) a transformer resizes images to: a
#: convnet's activations at 4096 px already take gigabytes.
MAX_IMAGE_SIZE = 4096

#: Seconds a stage runs before its progress bar shows (short stages stay quiet).
PROGRESS_DELAY = 2.0

#: The scikit-learn constraint of the transformers' ``image_size``.
IMAGE_SIZE_CONSTRAINT = [Interval(numbers.Integral, 16, MAX_IMAGE_SIZE, closed="both"), None]


@dataclass
class FeatureMap:
    """Dense features of one image on a regular grid of receptive-field centres.

    Parameters
    ----------
    features : ndarray of shape (rows, cols, n_features)
        The column of each grid cell.
    xs : ndarray of shape (cols,)
        x coordinate of each grid column's RF centre, in pixels of the original image.
    ys : ndarray of shape (rows,)
        y coordinate of each grid row's RF centre.
    rf_size : float
        Side of a cell's receptive field, in pixels of the original image.
    image_shape : tuple of int
        ``(height, width)`` of the original image.
    receptive_fields : dict or None, default=None
        Layer name -> :class:`~skcorr.receptive.ReceptiveField` in pixels of the original
        image, for each layer whose columns are in ``features`` (a hypercolumn holds
        several, concatenated in this order); ``None`` where not applicable (SIFT).
    bin_size : float or None, default=None
        For histogram descriptors made of spatial bins (dense SIFT: 4 x 4 bins over
        ``rf_size``), the side of a bin in pixels of the original image; ``None`` for
        convnet columns.
    """

    features: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    rf_size: float
    image_shape: tuple[int, int]
    receptive_fields: dict | None = None
    bin_size: float | None = None

    def __sizeof__(self) -> int:
        # What dask's sizeof (sys.getsizeof) sees: the arrays, not only the object, so
        # that dask weighs a map by its real size when it moves or scatters it.
        arrays = (self.features, self.xs, self.ys)
        return object.__sizeof__(self) + sum(int(getattr(a, "nbytes", 0)) for a in arrays)

    @property
    def grid_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of the grid."""
        return self.features.shape[:2]

    @property
    def stride(self) -> float:
        """Distance between neighbouring centres (mean over both axes, in pixels)."""
        steps = [np.diff(a).mean() for a in (self.xs, self.ys) if len(a) > 1]
        return float(np.mean(steps)) if steps else float("nan")

    def centers(self) -> np.ndarray:
        """RF centres of all cells, row-major, shape (rows * cols, 2), as (x, y).

        Returns
        -------
        centers : ndarray of shape (rows * cols, 2)
            ``(x, y)`` of each cell's RF centre, in pixels of the original image, in the
            order of ``features.reshape(-1, n_features)``.
        """
        gx, gy = np.meshgrid(self.xs, self.ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def sample(self, points: np.ndarray, interpolation: str = "nearest") -> np.ndarray:
        """Columns at points (n, 2) in (x, y) pixels.

        ``"nearest"`` takes the column whose RF centre is closest (per axis, since the
        grid is separable); ``"bilinear"`` interpolates between the four surrounding
        centres, clamping to the outermost centres outside the grid.

        Parameters
        ----------
        points : array-like of shape (n, 2)
            ``(x, y)`` in pixels of the original image.
        interpolation : {"nearest", "bilinear"}, default="nearest"
            How to read columns between RF centres.

        Returns
        -------
        columns : ndarray of shape (n, n_features)
            The column at each point, of the dtype of ``features``.
        """
        return sample_grid(self.features, self.xs, self.ys, points, interpolation)

    def nearest_cells(self, points) -> tuple[np.ndarray, np.ndarray]:
        """Grid indices of the cells whose RF centres are nearest to points.

        Parameters
        ----------
        points : array-like of shape (n, 2)
            ``(x, y)`` in pixels of the original image (outside the grid: the nearest
            border cell).

        Returns
        -------
        rows, cols : ndarray of shape (n,), int
            Row and column of each point's cell, to index ``features``.
        """
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return (np.rint(grid_coordinate(self.ys, points[:, 1])).astype(int),
                np.rint(grid_coordinate(self.xs, points[:, 0])).astype(int))



def keypoint_samples(images, keypoints):
    """Turn images and their keypoints into keypoint samples for ``mode="keypoints"``.

    Parameters
    ----------
    images : sequence of images, length n
    keypoints : array-like of shape (n, K, 2)
        (x, y) per image and keypoint type; NaN where absent or not visible.

    Returns
    -------
    X : ndarray of shape (m, 3), dtype object
        One row ``[image, x, y]`` per present keypoint.
    y : ndarray of shape (m,)
        The keypoint type (0 .. K-1) of each row: the labels for classification.
    groups : ndarray of shape (m,)
        The image index of each row, for ``GroupKFold``.

    Examples
    --------
    >>> import numpy as np
    >>> from skcorr import keypoint_samples
    >>> image = np.zeros((64, 64, 3), np.uint8)
    >>> X, y, groups = keypoint_samples([image], [[[10, 12], [np.nan, np.nan], [30, 40]]])
    >>> X.shape, y.tolist(), groups.tolist()
    ((2, 3), [0, 2], [0, 0])
    """
    images = check_images(images)
    keypoints = check_image_keypoints(images, keypoints)
    present = ~np.isnan(keypoints).any(axis=2)
    image_index, types = np.nonzero(present)
    X = np.empty((len(image_index), 3), dtype=object)
    for row, (i, k) in enumerate(zip(image_index, types, strict=True)):
        X[row] = (images[i], float(keypoints[i, k, 0]), float(keypoints[i, k, 1]))
    return X, types, image_index


def split_keypoint_samples(X):
    """Group keypoint samples by image.

    Images are told apart by identity (arrays) or by path (files).

    Parameters
    ----------
    X : array-like of shape (n_samples, 3), dtype object
        Keypoint samples, rows ``[image, x, y]`` (see :func:`keypoint_samples`); the
        coordinates must be finite.

    Returns
    -------
    groups : list of tuple
        One ``(image, rows, points)`` per distinct image, in order of first appearance:
        the image, the indices of its rows in ``X`` (int ndarray of shape (r,)) and their
        ``(x, y)`` coordinates (float64 ndarray of shape (r, 2)).
    """
    X = np.asarray(X, dtype=object) if not isinstance(X, np.ndarray) else X
    if X.ndim != 2 or X.shape[1] != 3:
        raise ValueError(
            f"Keypoint samples must be an array of shape (n_samples, 3) with rows "
            f"[image, x, y], got shape {X.shape}; build them with "
            "skcorr.features.keypoint_samples(images, keypoints)."
        )
    if len(X) == 0:
        raise ValueError("No keypoint samples were given; pass at least one row.")
    try:
        points = X[:, 1:].astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("Columns 1 and 2 of keypoint samples must be numbers (x, y).") from exc
    if not np.all(np.isfinite(points)):
        bad = int(np.flatnonzero(~np.isfinite(points).all(axis=1))[0])
        raise ValueError(
            f"Keypoint sample {bad} has a NaN or infinite coordinate; drop absent keypoints "
            "(keypoint_samples does this for you)."
        )
    groups: dict[object, tuple[object, list[int]]] = {}
    for row, image in enumerate(X[:, 0]):
        if isinstance(image, (str, os.PathLike)):
            key = os.fspath(image)
        elif isinstance(image, np.ndarray):
            key = id(image)
        else:
            raise TypeError(
                f"Keypoint sample {row} holds a {type(image).__name__} where an image (array "
                "or path) belongs; rows must be [image, x, y]."
            )
        groups.setdefault(key, (image, []))[1].append(row)
    return [(image, np.array(rows), points[rows]) for image, rows in groups.values()]


class FeatureTransformer(TransformerMixin, BaseEstimator):
    """Base class of skcorr's feature transformers.

    Subclasses implement ``_dense`` (one image -> :class:`~skcorr.FeatureMap`) or
    ``_dense_batch`` (a list of images), and may override ``_at_points_batch`` and
    ``_global_batch`` when they have a better way than sampling or averaging the
    dense map; ``_feature_names`` names the ``n_features_out_`` columns of the 2-D modes
    (for :meth:`get_feature_names_out` and pandas output).
    """

    _parameter_constraints: dict = {
        "mode": [StrOptions({"keypoints", "dense", "global"})],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "verbose": ["boolean"],
    }

    #: Parameters that do not change the features (left out of the cache key).
    _cache_ignored = frozenset({"memory", "device", "batch_size", "mode", "verbose"})

    def __copy__(self):
        # Shares every attribute, the fitted network included: the default copy goes
        # through pickling's __getstate__ / __setstate__, which rebuild the network.
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    # -- the API ----------------------------------------------------------------------
    def transform(self, X):
        """Features of ``X`` in the transformer's ``mode``.

        * ``"keypoints"``: ``X`` is keypoint samples (:func:`~skcorr.keypoint_samples`); returns
          an (n_samples, n_features) array.
        * ``"dense"``: ``X`` is a sequence of images; returns a list of
          :class:`~skcorr.FeatureMap`.
        * ``"global"``: ``X`` is a sequence of images; returns (n_images, n_features).

        Parameters
        ----------
        X : ndarray of shape (n_samples, 3), dtype object, or sequence of images
            Keypoint samples (rows ``[image, x, y]``) in ``"keypoints"`` mode; otherwise
            images as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        features : ndarray or list of FeatureMap
            ``(n_samples, n_features)`` array, list of :class:`~skcorr.FeatureMap` or
            ``(n_images, n_features)`` array, depending on ``mode``.
        """
        check_is_fitted(self)
        if self.mode == "keypoints":
            return self.extract_at(X)
        if self.mode == "dense":
            container = _get_output_config("transform", self)["dense"]
            if container != "default":  # from set_output or sklearn.set_config
                self._refuse_dense(f"{container!r} output")
            return self.extract_dense(X)
        return self.extract_global(X)

    def extract_at(self, X) -> np.ndarray:
        """Columns at keypoint samples, whatever the mode: (n_samples, n_features).

        Parameters
        ----------
        X : array-like of shape (n_samples, 3), dtype object
            Keypoint samples, rows ``[image, x, y]`` with ``(x, y)`` in pixels inside
            the image (see :func:`~skcorr.keypoint_samples`).

        Returns
        -------
        features : ndarray of shape (n_samples, n_features)
            The feature column at each sample, in the order of the rows of ``X``.
        """
        check_is_fitted(self)
        groups = split_keypoint_samples(X)
        columns = self._map_chunks(_points_chunk, [(image, points) for image, _, points
                                                   in groups])
        out = None
        for (_, rows, _), values in zip(groups, columns, strict=True):
            if out is None:
                out = np.empty((len(X), values.shape[1]), dtype=values.dtype)
            out[rows] = values
        return out

    def extract_dense(self, images) -> list[FeatureMap]:
        """One :class:`~skcorr.FeatureMap` per image, whatever the mode.

        Parameters
        ----------
        images : sequence of ndarray or path
            Images as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        maps : list of FeatureMap
            The dense features of each image, in order.
        """
        check_is_fitted(self)
        return self._per_chunk("dense", images)

    def extract_global(self, images) -> np.ndarray:
        """One feature vector per image, whatever the mode: (n_images, n_features).

        Parameters
        ----------
        images : sequence of ndarray or path
            Images as ``(H, W, 3)`` uint8 arrays or file paths.

        Returns
        -------
        features : ndarray of shape (n_images, n_features)
            One global feature vector per image (by default the mean of the dense map).
        """
        check_is_fitted(self)
        return np.stack(self._per_chunk("global", images))

    @property
    def snaps_to_grid(self) -> bool:
        """Whether :meth:`extract_at` gives each point the column of its nearest grid cell.

        ``True`` when columns at points are read off the dense grid by nearest
        neighbour, so that all points within a cell share one column; ``False`` when
        they are computed at the exact point (keypoint SIFT) or interpolated between
        cells (``interpolation="bilinear"``).
        """
        return self._reads_dense_map() and getattr(self, "interpolation", "nearest") == "nearest"

    def _reads_dense_map(self) -> bool:
        """Whether columns at points are sampled from the dense map (the default)."""
        return type(self)._at_points_batch is FeatureTransformer._at_points_batch

    def _chunk_size(self) -> int:
        return max(1, int(getattr(self, "batch_size", 1) or 1))

    def _image_threads(self) -> int:
        """Threads over images when computed here (one forward pass each); a subclass
        whose computation releases the GIL and runs on one core says how many."""
        return 1

    def _start_image_thread(self) -> None:
        """Set up a thread of ``_image_threads`` (at its start)."""

    def _end_image_threads(self) -> None:
        """Undo what ``_start_image_thread`` changed for the whole process."""

    def _per_chunk(self, kind: str, images) -> list:
        """The ``kind`` features (through the cache) of each image, a chunk at a time."""
        return self._map_chunks(_images_chunk, list(enumerate(check_images(images))), kind)

    def _map_chunks(self, function, items: list, *args) -> list:
        """``function(self, chunk, *args)`` over chunks of ``items``, concatenated, with a
        progress bar over the items.

        Under a dask backend (:func:`skcorr._parallel.dask_backend`) the chunks run on
        the cluster's workers, this transformer sent once per worker and images sent as
        they are given (file paths, not pixels); with a shared ``memory`` folder, the
        workers fill the cache. Otherwise they run here, in ``_image_threads`` threads.
        """
        client = dask_client() if items else None
        with self._progress(len(items)) as progress:
            if client is not None:
                return _on_dask(client, self, function, items, args, progress)
            threads = self._image_threads()
            size = self._chunk_size()
            if threads > 1:  # every thread busy, even with few images
                size = max(1, min(size, -(-len(items) // threads)))
            parts = list(_chunks(items, size))
            if threads <= 1 or len(parts) <= 1:
                results = []
                for part in parts:
                    results.extend(function(self, part, *args))
                    progress.update(len(part))
                return results
            pool = ThreadPoolExecutor(threads, thread_name_prefix="skcorr-features",
                                      initializer=self._start_image_thread)
            try:
                results = []
                for part, done in zip(parts, pool.map(lambda part: function(self, part, *args),
                                                      parts), strict=True):
                    results.extend(done)
                    progress.update(len(part))
                return results
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                self._end_image_threads()

    def _progress(self, n_images: int):
        """A progress bar over images on stderr, shown with ``verbose`` when the work
        lasts more than two seconds."""
        return tqdm(total=n_images, desc=f"{type(self).__name__} features", unit="image",
                    file=sys.stderr, delay=PROGRESS_DELAY, leave=False,
                    disable=not getattr(self, "verbose", False))

    # -- the feature cache (``memory``) ------------------------------------------------
    def _feature_cache(self) -> FeatureCache | None:
        """The cache of this transformer's current parameters and weights, or None."""
        memory = check_memory_folder(getattr(self, "memory", None))
        if memory is None:
            return None
        return FeatureCache(memory, signature(self, self._cache_ignored,
                                              (_CACHE_FORMAT, self._cache_identity())))

    def _cache_identity(self):
        """What besides the parameters determines the features (e.g. a weights digest)."""
        return None

    def _cached(self, kind: str, images: list, compute) -> list:
        cache = self._feature_cache()
        if cache is None:
            return compute(images)
        expect = FeatureMap if kind == "dense" else np.ndarray
        return cache.get_or_compute(kind, images, compute, expect=expect)

    def _cached_at_points(self, images, points) -> list[np.ndarray]:
        cache = self._feature_cache()
        if cache is None:
            return self._at_points_batch(images, points)
        if self._reads_dense_map():
            # Columns are read off the dense map: cache the map, whatever the points.
            return self._sample_maps(cache.get_or_compute("dense", images, self._dense_batch,
                                                          expect=FeatureMap), points)
        return cache.get_or_compute("points", images, self._at_points_batch, extras=points,
                                    expect=np.ndarray)

    # -- what subclasses provide ------------------------------------------------------
    # Each works on a batch of RGB arrays; the defaults map the one-image versions.
    def _dense(self, image: np.ndarray) -> FeatureMap:
        raise NotImplementedError

    def _dense_batch(self, images: list[np.ndarray]) -> list[FeatureMap]:
        return [self._dense(image) for image in images]

    def _at_points_batch(self, images, points) -> list[np.ndarray]:
        return self._sample_maps(self._dense_batch(images), points)

    def _sample_maps(self, maps, points) -> list[np.ndarray]:
        interpolation = getattr(self, "interpolation", "nearest")
        return [fmap.sample(p, interpolation) for fmap, p in zip(maps, points, strict=True)]

    def _global_batch(self, images) -> list[np.ndarray]:
        return [fmap.features.mean(axis=(0, 1)) for fmap in self._dense_batch(images)]

    # -- column names and set_output (the 2-D modes) -------------------------------------
    def get_feature_names_out(self, input_features=None):
        """Names of the columns of :meth:`transform`'s output (``"keypoints"``, ``"global"``).

        They say what a column holds, e.g. ``"conv4_ch12"`` (channel 12 of layer
        ``conv4``) or ``"sift_r20_d5"`` (element 5 of the SIFT descriptor of radius 20).
        ``"dense"`` mode returns feature maps, not a table: its columns have no names.

        Parameters
        ----------
        input_features : array-like of str or None, default=None
            Ignored: the input is images or keypoint samples, whose columns
            ``[image, x, y]`` are not mapped one to one onto features. Present for
            :class:`~sklearn.pipeline.Pipeline`.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per column, ``n_features_out_`` of them.
        """
        check_is_fitted(self)
        if self.mode == "dense":
            self._refuse_dense("column names")
        names = np.asarray(self._feature_names(), dtype=object)
        if len(names) != self.n_features_out_:  # a subclass that names its columns wrongly
            raise RuntimeError(f"{len(names)} names for {self.n_features_out_} columns.")
        return names

    def set_output(self, *, transform=None):
        """Set the output container of :meth:`transform` and ``fit_transform``.

        ``"pandas"`` (or ``"polars"``) gives a DataFrame whose columns are named by
        :meth:`get_feature_names_out`, in ``"keypoints"`` and ``"global"`` modes;
        ``"dense"`` mode returns a list of :class:`~skcorr.FeatureMap`, which has no table form.

        Parameters
        ----------
        transform : {"default", "pandas", "polars"} or None, default=None
            The container; ``None`` leaves the setting unchanged.

        Returns
        -------
        self : FeatureTransformer
            The transformer.
        """
        if self.mode == "dense" and transform not in (None, "default"):
            self._refuse_dense(f"{transform!r} output")
        return super().set_output(transform=transform)

    def _refuse_dense(self, what: str):
        raise ValueError(
            f"{type(self).__name__}(mode='dense') returns one FeatureMap per image, not a "
            f"2-D table, so it has no {what}. Use mode='keypoints' or mode='global' for a "
            "table, or set_output(transform='default') on this transformer."
        )

    def _feature_names(self) -> list[str]:
        """One name per column; subclasses name them after what they hold."""
        prefix = type(self).__name__.lower()
        return [f"{prefix}{i}" for i in range(self.n_features_out_)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # images and keypoint samples, not numbers
        tags.requires_fit = True
        tags.transformer_tags.preserves_dtype = []
        return tags


def _describe(image, index: int | None = None) -> str:
    if isinstance(image, (str, os.PathLike)):
        return f"image {os.fspath(image)!r}"
    return "image" if index is None else f"images[{index}]"


def _read(image, index=None, remote=False) -> np.ndarray:
    """``image`` as RGB; on a dask worker, a path it cannot see is explained."""
    try:
        return as_rgb(image, name=_describe(image, index))
    except (OSError, ValueError) as exc:
        if remote and isinstance(image, (str, os.PathLike)) and not os.path.exists(image):
            raise ValueError(
                f"{_describe(image)} does not exist on the dask worker that was to compute its "
                "features; every worker reads the images at the paths the client gives, so "
                "put them in a folder every machine sees at the same path."
            ) from exc
        raise


def _images_chunk(transformer, chunk, kind, remote=False) -> list:
    """The ``kind`` features of ``chunk``, a list of (index, image), through the cache."""
    rgbs = [_read(image, i, remote) for i, image in chunk]
    compute = transformer._dense_batch if kind == "dense" else transformer._global_batch
    return transformer._cached(kind, rgbs, compute)


def _points_chunk(transformer, chunk, remote=False) -> list:
    """The columns at the points of ``chunk``, a list of (image, points (n, 2))."""
    rgbs = [_read(image, remote=remote) for image, _ in chunk]
    for rgb, (image, points) in zip(rgbs, chunk, strict=True):
        check_points_inside(points, rgb.shape[:2], image=_describe(image))
    return transformer._cached_at_points(rgbs, [points for _, points in chunk])


def _remote(function, transformer, memory, chunk, *args):
    """A task on a dask worker: ``function`` there, with the client's ``memory`` (the
    scattered transformer is shared by every call, whatever its cache folder) and the
    worker's hints on errors."""
    transformer = copy.copy(transformer)  # shallow: the network is shared, not copied
    transformer.memory = memory
    return function(transformer, chunk, *args, remote=True)


#: Transformers sent to dask clusters: (client id, token) -> the scattered copy's future,
#: so that a network is sent once per cluster, not once per call or per cache folder;
#: the last few kept.
_SCATTERED: dict = {}
_SCATTERED_KEPT = 4


def _scattered(client, transformer):
    """A future of ``transformer`` on every worker of ``client``'s cluster (sent once)."""
    token = (client.id, signature(transformer, frozenset({"verbose", "memory"}),
                                  ("dask", _CACHE_FORMAT, transformer._cache_identity())))
    future = _SCATTERED.get(token)
    if future is None or future.status != "finished":
        remote = copy.copy(transformer)
        remote.memory = None  # each task brings the caller's (see _remote)
        if "verbose" in remote.get_params(deep=False):
            remote.set_params(verbose=False)  # the client shows the progress
        future = client.scatter(remote, broadcast=True, hash=False)
        _SCATTERED[token] = future
        while len(_SCATTERED) > _SCATTERED_KEPT:
            del _SCATTERED[next(iter(_SCATTERED))]
    return future


def _on_dask(client, transformer, function, items, args, progress) -> list:
    """``function`` over chunks of ``items`` on the workers of ``client``, in order."""
    from distributed import as_completed

    size = min(transformer._chunk_size(), len(chunks(items, None)[0]))
    parts = list(_chunks(items, size))
    remote = _scattered(client, transformer)
    memory = getattr(transformer, "memory", None)
    futures = [client.submit(_remote, function, remote, memory, part, *args, pure=False)
               for part in parts]
    position = {future.key: i for i, future in enumerate(futures)}
    results: list = [None] * len(parts)
    for future, result in as_completed(futures, with_results=True):
        i = position[future.key]
        results[i] = result
        progress.update(len(parts[i]))
    return [value for part in results for value in part]


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start:start + size]
