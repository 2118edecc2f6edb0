"""A database of convnet columns on disk, with exact top-k cosine search.

Layout of a database folder (every array a ``.npy`` file, memory-mapped on reading):

==================  ===========================  ===========================================
file                shape, dtype                 content
==================  ===========================  ===========================================
``columns.npy``     (n_columns, d) float16/32    the columns, L2-normalised
``image_index.npy`` (n_columns,) int32           the database image each column comes from
``centers.npy``     (n_columns, 2) float32       RF centre (x, y) in that image's pixels
``pixels.npy``      (n_pixels,) uint8            every image's RGB pixels, one after another
``images.npy``      (n_images, 5) float64        per image: pixel offset, height, width,
                                                 grid stride x, grid stride y
``rf_sizes.npy``    (n_images,) float64          the layer's RF side in that image's pixels
``fingerprint.npy`` (m,) float32                 the extractor's response to a fixed probe
``meta.json``                                    backbone, weights, layers, n_features, ...
==================  ===========================  ===========================================

Patches are cut on demand from the stored pixels (a copy of every image, so a database
does not depend on files that may move and works for images given as arrays): any
patch size can be cut later (stride-sized patches for reconstruction, whole receptive
fields for RF averages). The price is disk: an image of ``H x W`` pixels costs ``3 H W``
bytes beside its columns.

``columns.npy`` and ``pixels.npy`` are written incrementally, batch by batch, so that
building never holds more than one batch of columns in memory: the ``.npy`` header is
written first for zero rows (numpy reserves room in it for the first axis to grow), the
rows are appended, and the header is rewritten in place with the final count.
``meta.json`` is written last; a folder without it is an incomplete build.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._array import l2_normalize
from .._image import as_rgb, check_images

__all__ = ["ColumnDatabase"]

FORMAT_VERSION = 1
_PROBE_SIDE = 96
_FINGERPRINT_MIN_COSINE = 0.999
#: Default budget of one search block: queries x rows of similarities (64 MiB float32).
_BLOCK_ELEMENTS = 1 << 24


class _NpyAppender:
    """Write a C-ordered ``.npy`` file by appending rows, never holding them all."""

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...]):
        self.path = Path(path)
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.n_rows = 0
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        self._write_header()
        self._header_length = self._file.tell()

    def _write_header(self) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.n_rows, *self.row_shape)}
        np.lib.format.write_array_header_1_0(self._file, header)

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"rows of shape {rows.shape[1:]} where {self.row_shape} belongs")
        self._file.write(rows.tobytes())
        self.n_rows += len(rows)

    def close(self) -> None:
        self._file.seek(0)
        self._write_header()
        if self._file.tell() != self._header_length:  # pragma: no cover - numpy reserves room
            raise RuntimeError(f"The .npy header of {self.path} changed length on update.")
        self._file.close()

    def abort(self) -> None:
        self._file.close()


def _extractor_signature(extractor) -> dict:
    weights = extractor.weights
    return {
        "backbone": str(extractor.backbone),
        "weights": None if weights is None else os.fspath(weights),
        "layers": [str(name) for name in extractor.layers_],
        "n_features": int(extractor.n_features_out_),
        "normalize": bool(extractor.normalize),
        "image_size": extractor.image_size,
    }


def _fingerprint(extractor) -> np.ndarray:
    """The spatial mean of each layer's raw output on a fixed pseudo-random probe image.

    It tells apart two extractors with the same names but different weights (two random
    initialisations, or two weight files). The probe is fed to the network as it is,
    without the ``image_size`` resizing, so that the fingerprint does not depend on it.
    """
    probe = np.random.default_rng(20140101).integers(
        0, 256, (_PROBE_SIDE, _PROBE_SIDE, 3), dtype=np.uint8)
    outputs = extractor._forward([probe])[0]
    parts = [o.reshape(o.shape[0], -1).mean(axis=1) if o.ndim == 3 else o.reshape(-1)
             for o in outputs]
    return np.concatenate(parts).astype(np.float32)


def _check_fitted_extractor(extractor):
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from ..features import ConvColumnExtractor

    if not isinstance(extractor, ConvColumnExtractor):
        raise TypeError(
            f"extractor must be a ConvColumnExtractor, got {type(extractor).__name__}; "
            "column databases hold convnet columns."
        )
    try:
        check_is_fitted(extractor)
    except NotFittedError:
        extractor.fit()
    if any(extractor.receptive_fields_[name] is None for name in extractor.layers_):
        raise ValueError(
            f"Layer(s) {extractor.layers_} of {extractor.backbone!r} have no spatial grid; "
            "a column database needs a convolutional layer (for example layer='conv4')."
        )
    return extractor


def _grid_steps(fmap, fallback: float) -> tuple[float, float]:
    steps = [float(np.diff(a).mean()) if len(a) > 1 else float("nan")
             for a in (fmap.xs, fmap.ys)]
    if np.isnan(steps[0]) and np.isnan(steps[1]):
        return fallback, fallback
    if np.isnan(steps[0]):
        steps[0] = steps[1]
    if np.isnan(steps[1]):
        steps[1] = steps[0]
    return steps[0], steps[1]


class ColumnDatabase:
    """Columns of one convnet layer from many images, on disk, searchable by cosine.

    Build one with :meth:`build` (once; it is written to a folder) and open it again
    with :meth:`open`. Each column keeps the index of its image and the (x, y) centre of
    its receptive field in that image's pixels; the images' pixels are stored too, so
    that patches around any column can be cut later (see the module notes for the
    layout and its disk cost).

    Search (:meth:`search`) is exact: the cosine similarity of every query with every
    column, by blocks of BLAS matrix products over the memory-mapped columns, keeping a
    running top-k. Columns are L2-normalised at build time, so cosine is a dot product.

    Parameters
    ----------
    path : str or path-like
        The database folder.
    meta : dict
        The contents of ``meta.json``.
    columns : ndarray of shape (n_columns, n_features)
        The L2-normalised columns (``columns.npy``, usually memory-mapped).
    image_index : ndarray of shape (n_columns,), int
        Image of each column.
    centers : ndarray of shape (n_columns, 2)
        RF centre ``(x, y)`` of each column, in pixels of its image.
    images : ndarray of shape (n_images, 5), float64
        Per image: offset into ``pixels``, height, width, grid stride x, grid stride y.
    rf_sizes : ndarray of shape (n_images,)
        Side of the layer's receptive field in each image's pixels.
    pixels : ndarray of shape (n_pixels,), uint8
        Every image's RGB pixels, one after another (usually memory-mapped).
    fingerprint : ndarray of shape (m,), float32
        The building extractor's response to a fixed probe image.

    Instances are normally made by :meth:`build` or :meth:`open`, which read these
    arrays from the folder's files (see the module notes).

    Attributes
    ----------
    path : Path
        The database folder.
    columns : numpy.memmap of shape (n_columns, n_features)
        The L2-normalised columns (float16 or float32), read from disk on demand.
    image_index : ndarray of shape (n_columns,)
        Image of each column (0 .. n_images - 1, in the order the images were given).
    centers : ndarray of shape (n_columns, 2)
        RF centre (x, y) of each column, in pixels of its image.
    image_shapes : ndarray of shape (n_images, 2)
        (height, width) of each image.
    image_strides : ndarray of shape (n_images, 2)
        Distance (x, y) between neighbouring RF centres in each image's pixels.
    rf_sizes : ndarray of shape (n_images,)
        Side of the layer's receptive field in each image's pixels.
    meta : dict
        What the database was built with: ``backbone``, ``weights``, ``layers``,
        ``n_features``, ``normalize``, ``image_size``, ``dtype``, the layer's
        ``rf_size`` and ``stride`` in network-input pixels, and counts.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.visualize import ColumnDatabase
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    >>> ext = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    >>> folder = tempfile.mkdtemp()
    >>> db = ColumnDatabase.build(ext, images, folder + "/db")
    >>> len(db), db.n_features, db.n_images
    (960, 24, 3)
    >>> indices, similarities = ColumnDatabase.open(folder + "/db").search(db.columns[:2], k=3)
    >>> indices[:, 0].tolist()
    [0, 1]
    """

    def __init__(self, path, meta, columns, image_index, centers, images, rf_sizes,
                 pixels, fingerprint):
        self.path = Path(path)
        self.meta = meta
        self.columns = columns
        self.image_index = image_index
        self.centers = centers
        self._images = images
        self.image_shapes = images[:, 1:3].astype(np.int64)
        self.image_strides = images[:, 3:5].copy()
        self.rf_sizes = rf_sizes
        self._pixels = pixels
        self._fingerprint = fingerprint

    # -- building and opening ------------------------------------------------------------
    @classmethod
    def build(cls, extractor, images, path, *, batch_size=16, dtype="float16",
              overwrite=False, verbose=False):
        """Compute the columns of every image and write them to a new database folder.

        Parameters
        ----------
        extractor : ConvColumnExtractor
            Gives the columns (its dense grid; fitted here if it is not yet). Its
            backbone, weights, layers and column length are recorded, and every later
            query must use an extractor that matches them.
        images : sequence of images
            Arrays or file paths (:mod:`skcorr._image`); files are read one batch at a
            time.
        path : str or path-like
            The folder to create.
        batch_size : int, default=16
            Images per forward pass and per write: only one batch of columns is in
            memory at a time.
        dtype : {"float16", "float32"}, default="float16"
            Storage type of the columns. float16 halves the disk and the bytes read per
            search (similarities change by about 1e-3); search computes in float32.
        overwrite : bool, default=False
            Replace an existing folder at ``path``.
        verbose : bool, default=False
            Show a progress bar over the images.

        Returns
        -------
        ColumnDatabase
            The new database, opened for reading.
        """
        images = list(images) if not isinstance(images, np.ndarray) else images
        if len(images) == 0:
            raise ValueError("images is empty; a column database needs at least one image.")
        images = check_images(images)
        if not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if dtype not in ("float16", "float32"):
            raise ValueError(f"dtype must be 'float16' or 'float32', got {dtype!r}.")
        extractor = _check_fitted_extractor(extractor)
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise FileExistsError(
                    f"{str(path)!r} already exists; open it with ColumnDatabase.open, choose "
                    "another path, or pass overwrite=True to replace it."
                )
            if (path / "meta.json").is_file() or not any(path.iterdir()):
                shutil.rmtree(path)
            else:
                raise FileExistsError(
                    f"{str(path)!r} exists and is not a column database (no meta.json); "
                    "refusing to delete it. Choose another path."
                )
        path.mkdir(parents=True)
        d = int(extractor.n_features_out_)
        layer = extractor.layers_[0]
        network_rf = extractor.receptive_fields_[layer]
        columns = _NpyAppender(path / "columns.npy", dtype, (d,))
        pixels = _NpyAppender(path / "pixels.npy", np.uint8, ())
        index_parts, centre_parts, image_rows, rf_sizes = [], [], [], []
        progress = tqdm(total=len(images), desc="column database", unit="image",
                        disable=not verbose)
        try:
            for first in range(0, len(images), batch_size):
                batch = [as_rgb(image, name=f"images[{first + j}]")
                         for j, image in enumerate(images[first:first + batch_size])]
                fmaps = extractor.extract_dense(batch)
                for j, (rgb, fmap) in enumerate(zip(batch, fmaps, strict=True)):
                    i = first + j
                    feats = fmap.features.reshape(-1, fmap.features.shape[2])
                    columns.append(l2_normalize(feats.astype(np.float32)))
                    index_parts.append(np.full(len(feats), i, dtype=np.int32))
                    centre_parts.append(fmap.centers().astype(np.float32))
                    sx, sy = _grid_steps(fmap, float(network_rf.stride[0]))
                    image_rows.append((pixels.n_rows, rgb.shape[0], rgb.shape[1], sx, sy))
                    rf_sizes.append(fmap.rf_size)
                    pixels.append(rgb.reshape(-1))
                progress.update(len(batch))
            progress.close()
            columns.close()
            pixels.close()
            np.save(path / "image_index.npy", np.concatenate(index_parts))
            np.save(path / "centers.npy", np.concatenate(centre_parts))
            np.save(path / "images.npy", np.array(image_rows, dtype=np.float64))
            np.save(path / "rf_sizes.npy", np.array(rf_sizes, dtype=np.float64))
            np.save(path / "fingerprint.npy", _fingerprint(extractor))
            meta = {
                "format_version": FORMAT_VERSION,
                **_extractor_signature(extractor),
                "dtype": dtype,
                "rf_size": [float(v) for v in network_rf.size],
                "stride": [float(v) for v in network_rf.stride],
                "n_columns": int(columns.n_rows),
                "n_images": len(images),
            }
            (path / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        except BaseException:
            columns.abort()
            pixels.abort()
            shutil.rmtree(path, ignore_errors=True)
            raise
        return cls.open(path)

    @classmethod
    def open(cls, path):
        """Open a database folder written by :meth:`build` (arrays memory-mapped).

        Parameters
        ----------
        path : str or path-like
            The database folder.

        Returns
        -------
        ColumnDatabase
            The database, its columns and pixels memory-mapped read-only.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(
                f"No column database at {str(path)!r}; build one with "
                "ColumnDatabase.build(extractor, images, path)."
            )
        if not (path / "meta.json").is_file():
            raise FileNotFoundError(
                f"{str(path)!r} holds no meta.json: it is not a column database, or its "
                "build did not finish. Build it again with ColumnDatabase.build(..., "
                "overwrite=True)."
            )
        meta = json.loads((path / "meta.json").read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"Column database {str(path)!r} has format version "
                f"{meta.get('format_version')!r}; this skcorr reads version {FORMAT_VERSION}. "
                "Build it again."
            )
        arrays = {}
        for name in ("columns", "pixels", "image_index", "centers", "images", "rf_sizes",
                     "fingerprint"):
            file = path / f"{name}.npy"
            if not file.is_file():
                raise FileNotFoundError(
                    f"Column database {str(path)!r} lacks {file.name}; it is damaged. Build "
                    "it again with ColumnDatabase.build(..., overwrite=True)."
                )
            mmap = "r" if name in ("columns", "pixels") else None
            arrays[name] = np.load(file, mmap_mode=mmap)
        if arrays["columns"].shape != (meta["n_columns"], meta["n_features"]):
            raise ValueError(
                f"Column database {str(path)!r} is damaged: columns.npy has shape "
                f"{arrays['columns'].shape}, meta.json says "
                f"({meta['n_columns']}, {meta['n_features']})."
            )
        return cls(path, meta, **arrays)

    # -- properties ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta["n_columns"])

    @property
    def n_columns(self) -> int:
        """Number of columns."""
        return len(self)

    @property
    def n_features(self) -> int:
        """Length of a column."""
        return int(self.meta["n_features"])

    @property
    def n_images(self) -> int:
        """Number of images the columns come from."""
        return int(self.meta["n_images"])

    @property
    def nbytes(self) -> int:
        """Size of the database's files on disk, in bytes."""
        return sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())

    def __repr__(self) -> str:
        return (f"ColumnDatabase({str(self.path)!r}: {self.n_columns} columns of "
                f"{self.n_features} ({self.meta['dtype']}) from {self.n_images} images, "
                f"{self.meta['backbone']} {self.meta['layers']})")

    def image(self, i: int) -> np.ndarray:
        """The stored pixels of image ``i``: an ``(H, W, 3)`` uint8 array (memory-mapped).

        Parameters
        ----------
        i : int
            Image index, ``0 .. n_images - 1`` (in the order given to :meth:`build`).

        Returns
        -------
        image : ndarray of shape (H, W, 3), dtype uint8
            A read-only view of the stored pixels.
        """
        if not 0 <= int(i) < self.n_images:
            raise IndexError(f"image {i} out of range for {self.n_images} images.")
        offset, height, width = (int(v) for v in self._images[int(i), :3])
        return self._pixels[offset:offset + height * width * 3].reshape(height, width, 3)

    def find_image(self, image) -> np.ndarray:
        """Indices of the stored images whose pixels equal ``image``'s (exact copies).

        Data sets can hold the same photograph more than once (PF-WILLOW files some
        under two sub-classes); excluding only the query's own index would then let it
        match its copy.

        Parameters
        ----------
        image : ndarray of shape (H, W, 3) or path
            The image to look for.

        Returns
        -------
        indices : ndarray of shape (n_found,), int64
            Indices of the stored images with the same size and pixels, in increasing
            order; empty if none.
        """
        rgb = as_rgb(image)
        same_shape = np.flatnonzero((self.image_shapes == rgb.shape[:2]).all(axis=1))
        return np.array([i for i in same_shape if np.array_equal(self.image(i), rgb)],
                        dtype=np.int64)

    # -- compatibility ---------------------------------------------------------------------
    def check_extractor(self, extractor) -> None:
        """Raise ValueError unless ``extractor`` gives columns comparable to the database's.

        The backbone, weights, layers, column length and normalisation must equal those
        the database was built with, and the network must answer a fixed probe image as
        the one of the build did (which tells two random initialisations apart).
        ``image_size`` may differ: columns at another scale are still comparable.

        Parameters
        ----------
        extractor : ConvColumnExtractor
            The extractor to check (fitted here if it is not yet).
        """
        extractor = _check_fitted_extractor(extractor)
        mine = _extractor_signature(extractor)
        keys = ("backbone", "weights", "layers", "n_features", "normalize")
        diff = [f"{key}: database {self.meta[key]!r}, extractor {mine[key]!r}"
                for key in keys if self.meta[key] != mine[key]]
        if diff:
            raise ValueError(
                f"The extractor does not match the column database {str(self.path)!r} ("
                + "; ".join(diff) + "). Query with the extractor the database was built with, "
                "or build a database for this extractor."
            )
        theirs = np.asarray(self._fingerprint, dtype=np.float64)
        ours = _fingerprint(extractor).astype(np.float64)
        cosine = float(ours @ theirs / max(np.linalg.norm(ours) * np.linalg.norm(theirs),
                                           1e-30))
        if ours.shape != theirs.shape or cosine < _FINGERPRINT_MIN_COSINE:
            raise ValueError(
                f"The extractor has the database's backbone and layers but different weights "
                f"(its response to a probe image has cosine {cosine:.4f} with the one recorded "
                f"in {str(self.path)!r}); with weights=None every fit draws new random "
                "weights. Query with the same fitted extractor that built the database."
            )

    # -- search ----------------------------------------------------------------------------
    def search(self, queries, k=1, *, exclude_images=None, query_images=None,
               chunk_size=None):
        """Exact top-k cosine neighbours of each query among the columns.

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_features)
            Query columns (normalised here; they need not be).
        k : int, default=1
            Neighbours per query.
        exclude_images : array-like of int, default=None
            Database images whose columns no query may match (for example the query's
            own image when it is in the database).
        query_images : array-like of shape (n_queries,), default=None
            For each query, one more database image to exclude for it alone (-1: none);
            used to search database columns against the rest of the database.
        chunk_size : int, default=None
            Database rows per matrix product. ``None`` picks it so that one block of
            similarities holds about 16 million floats (64 MiB). The result does not
            depend on it.

        Returns
        -------
        indices : ndarray of shape (n_queries, k), int64
            Database rows of the neighbours, most similar first.
        similarities : ndarray of shape (n_queries, k), float32
            Their cosine similarities.
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None, :]
        if queries.ndim != 2 or queries.shape[1] != self.n_features:
            raise ValueError(
                f"queries must have shape (n_queries, {self.n_features}), got "
                f"{queries.shape}; the database holds columns of length {self.n_features}."
            )
        if not np.all(np.isfinite(queries)):
            raise ValueError("queries contain NaN or infinite values.")
        queries = l2_normalize(queries)
        m, n = len(queries), self.n_columns
        excluded = self._excluded_images(exclude_images)
        own = None
        if query_images is not None:
            own = np.asarray(query_images, dtype=np.int64).reshape(-1)
            if own.shape != (m,):
                raise ValueError(f"query_images must have shape ({m},), got {own.shape}.")
        self._check_k(k, excluded, own)
        if chunk_size is None:
            chunk_size = max(k, 1024, _BLOCK_ELEMENTS // max(m, 1))
        elif not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        best_sim = np.full((m, k), -np.inf, dtype=np.float32)
        best_idx = np.full((m, k), -1, dtype=np.int64)
        rows = np.arange(m)[:, None]
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            block = np.asarray(self.columns[start:stop], dtype=np.float32)
            sims = queries @ block.T
            if excluded is not None or own is not None:
                images = self.image_index[start:stop]
                if excluded is not None:
                    sims[:, np.isin(images, excluded)] = -np.inf
                if own is not None:
                    sims[own[:, None] == images[None, :]] = -np.inf
            if stop - start > k:
                top = np.argpartition(sims, -k, axis=1)[:, -k:]
            else:
                top = np.broadcast_to(np.arange(stop - start), (m, stop - start))
            cand_sim = np.concatenate([best_sim, sims[rows, top]], axis=1)
            cand_idx = np.concatenate([best_idx, top + start], axis=1)
            keep = np.argpartition(cand_sim, -k, axis=1)[:, -k:]
            best_sim, best_idx = cand_sim[rows, keep], cand_idx[rows, keep]
        order = np.argsort(-best_sim, axis=1, kind="stable")
        return best_idx[rows, order], best_sim[rows, order]

    def _excluded_images(self, exclude_images):
        if exclude_images is None:
            return None
        excluded = np.unique(np.asarray(exclude_images, dtype=np.int64).reshape(-1))
        if excluded.size and (excluded.min() < 0 or excluded.max() >= self.n_images):
            raise ValueError(
                f"exclude_images holds {excluded.min() if excluded.min() < 0 else excluded.max()}"
                f"; the database has images 0 .. {self.n_images - 1}."
            )
        return excluded if excluded.size else None

    def _check_k(self, k, excluded, own) -> None:
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        counts = np.bincount(self.image_index, minlength=self.n_images)
        available = self.n_columns - (counts[excluded].sum() if excluded is not None else 0)
        if own is not None:
            mine = own[(own >= 0) & (own < self.n_images)]
            if excluded is not None:
                mine = mine[~np.isin(mine, excluded)]
            available -= counts[mine].max() if mine.size else 0
        if k > available:
            raise ValueError(
                f"k={k} but only {available} database columns can be matched (of "
                f"{self.n_columns}, after exclusions); use a smaller k or a larger database."
            )
