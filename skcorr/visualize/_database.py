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
``.skcorr-column-database``                      marker: skcorr made this folder
``index.faiss``                                  optional approximate index (build_index)
``index.json``                                   what the index was built from and with
==================  ===========================  ===========================================

Search runs on faiss: exact inner product (a flat index over blocks of the
memory-mapped columns, so only one block is in memory) by default, or an approximate
IVF/PQ index built by :meth:`ColumnDatabase.build_index` for tens of millions of
columns.

Patches are cut on demand from the stored pixels (a copy of every image, so a database
does not depend on files that may move and works for images given as arrays): any
patch size can be cut later (stride-sized patches for reconstruction, whole receptive
fields for RF averages). The price is disk: an image of ``H x W`` pixels costs ``3 H W``
bytes beside its columns.

``columns.npy`` and ``pixels.npy`` are written incrementally, batch by batch, so that
building never holds more than one batch of columns in memory: the ``.npy`` header is
written first for zero rows (numpy reserves room in it for the first axis to grow), the
rows are appended, and the header is rewritten in place with the final count.
The marker file is written first and ``meta.json`` last (whole, by a rename): a folder
with the marker and no ``meta.json`` is an incomplete build, which
``build(..., overwrite=True)`` may remove; it removes nothing without the marker.
"""

from __future__ import annotations

import json
import numbers
import os
import shutil
import uuid
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from .._array import l2_normalize
from .._image import as_rgb, check_images
from .._io import atomic_path, write_text

__all__ = ["ColumnDatabase"]

FORMAT_VERSION = 1
_PROBE_SIDE = 96
_FINGERPRINT_MIN_COSINE = 0.999
#: Default budget of one search block: queries x rows of similarities (64 MiB float32).
_BLOCK_ELEMENTS = 1 << 24
#: Largest block of columns converted to float32 for one flat search (256 MiB).
_BLOCK_BYTES = 1 << 28
_MARKER = ".skcorr-column-database"
#: meta.json keys, with the types their values must have.
_META_TYPES = {
    "format_version": int, "backbone": str, "weights": (str, type(None)), "layers": list,
    "n_features": int, "normalize": bool, "image_size": (int, type(None)), "dtype": str,
    "rf_size": list, "stride": list, "n_columns": int, "n_images": int,
}


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
    outputs = extractor.layer_outputs([probe])[0]
    parts = [o.reshape(o.shape[0], -1).mean(axis=1) if o.ndim == 3 else o.reshape(-1)
             for o in outputs]
    return np.concatenate(parts).astype(np.float32)


def _check_fitted_extractor(extractor):
    """``extractor``, or a fitted clone of it if it is not fitted (it is never changed)."""
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not hasattr(extractor, "layer_outputs"):  # what sets convnet columns apart
        raise TypeError(
            f"extractor must be a ConvColumnExtractor, got {type(extractor).__name__}; "
            "column databases hold convnet columns."
        )
    try:
        check_is_fitted(extractor)
    except NotFittedError:
        extractor = clone(extractor).fit()
    if any(extractor.receptive_fields_[name] is None for name in extractor.layers_):
        raise ValueError(
            f"Layer(s) {extractor.layers_} of {extractor.backbone!r} have no spatial grid; "
            "a column database needs a convolutional layer (for example layer='conv4')."
        )
    return extractor


def _digest(data: bytes) -> str:
    import hashlib

    return hashlib.blake2b(data, digest_size=20).hexdigest()


def _made_by_skcorr(path: Path) -> bool:
    """True for an empty folder or one skcorr made for a database (marker, or valid meta)."""
    if not path.is_dir():
        return False
    if (path / _MARKER).is_file() or not any(path.iterdir()):
        return True
    try:  # databases written before the marker existed
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format_version") == 1 and "n_columns" in meta


def _damaged(path: Path, what: str) -> ValueError:
    return ValueError(
        f"Column database {str(path)!r} is damaged: {what}. Build it again with "
        "ColumnDatabase.build(extractor, images, path, overwrite=True)."
    )


def _read_meta(path: Path) -> dict:
    file = path / "meta.json"
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _damaged(path, f"{file} is not readable JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise _damaged(path, f"{file} holds a {type(meta).__name__}, not an object")
    for key, kind in _META_TYPES.items():
        if key not in meta:
            raise _damaged(path, f"{file} lacks the key {key!r}")
        value = meta[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _damaged(path, f"{file} has {key}={value!r}, of the wrong type")
    if meta["dtype"] not in ("float16", "float32") or meta["n_features"] < 1 \
            or meta["n_columns"] < 1 or meta["n_images"] < 1:
        raise _damaged(path, f"{file} has impossible values (dtype {meta['dtype']!r}, "
                             f"{meta['n_columns']} columns of {meta['n_features']} from "
                             f"{meta['n_images']} images)")
    return meta


def _read_arrays(path: Path, meta: dict) -> dict:
    """Load the arrays and check them against each other and against meta.json."""
    n, d, n_images = meta["n_columns"], meta["n_features"], meta["n_images"]
    arrays = {}
    for name in ("columns", "pixels", "image_index", "centers", "images", "rf_sizes",
                 "fingerprint"):
        file = path / f"{name}.npy"
        if not file.is_file():
            raise FileNotFoundError(
                f"Column database {str(path)!r} lacks {file.name}; it is damaged. Build "
                "it again with ColumnDatabase.build(..., overwrite=True)."
            )
        try:
            arrays[name] = np.load(file, mmap_mode="r" if name in ("columns", "pixels")
                                   else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise _damaged(path, f"{file.name} cannot be read, truncated or not a .npy "
                                 f"file ({exc})") from exc
    expected = {"columns": ((n, d), meta["dtype"]), "image_index": ((n,), "int32"),
                "centers": ((n, 2), "float32"), "images": ((n_images, 5), "float64"),
                "rf_sizes": ((n_images,), "float64")}
    for name, (shape, dtype) in expected.items():
        array = arrays[name]
        if array.shape != shape or array.dtype != np.dtype(dtype):
            raise _damaged(path, f"{name}.npy has shape {array.shape} and dtype {array.dtype}"
                                 f", meta.json implies {shape} and {dtype}")
    images, index = arrays["images"], arrays["image_index"]
    heights, widths = images[:, 1], images[:, 2]
    sizes = 3 * heights * widths
    offsets = np.concatenate([[0.0], np.cumsum(sizes)[:-1]])
    if np.any(heights < 1) or np.any(widths < 1) or not np.array_equal(images[:, 0], offsets):
        raise _damaged(path, "images.npy holds image sizes or pixel offsets that do not fit "
                             "together")
    if arrays["pixels"].shape != (int(sizes.sum()),) or arrays["pixels"].dtype != np.uint8:
        raise _damaged(path, f"pixels.npy has shape {arrays['pixels'].shape}, the images need "
                             f"({int(sizes.sum())},) uint8")
    if index.min() < 0 or index.max() >= n_images or np.any(np.diff(index) < 0):
        raise _damaged(path, f"image_index.npy must list images 0 .. {n_images - 1} in order")
    if arrays["fingerprint"].ndim != 1 or arrays["fingerprint"].size == 0:
        raise _damaged(path, "fingerprint.npy is empty")
    return arrays


def _merge_top_k(best_sim, best_idx, sims, idx, k):
    """The k largest of two (n, .) candidate lists, most similar first."""
    cand_sim = np.concatenate([best_sim, sims], axis=1)
    cand_idx = np.concatenate([best_idx, idx], axis=1)
    order = np.argsort(-cand_sim, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(cand_sim, order, axis=1),
            np.take_along_axis(cand_idx, order, axis=1))


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

    Search (:meth:`search`) runs on faiss and is exact by default: a flat inner-product
    search over blocks of the memory-mapped columns, keeping a running top-k. Columns
    are L2-normalised at build time, so cosine is a dot product. For tens of millions
    of columns, :meth:`build_index` adds an approximate IVF/PQ index
    (``search(..., approximate=True)``).

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
            Gives the columns (its dense grid). An unfitted extractor is cloned and the
            clone fitted (it is never changed); with ``weights=None`` pass a fitted one,
            since each fit draws new weights. Its backbone, weights, layers and column
            length are recorded, and every later query must use an extractor that
            matches them.
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
            if not _made_by_skcorr(path):
                raise FileExistsError(
                    f"{str(path)!r} exists and is not a column database (no "
                    f"{_MARKER} marker or meta.json of one); refusing to delete it. Choose "
                    "another path."
                )
            shutil.rmtree(path)
        path.mkdir(parents=True)
        (path / _MARKER).write_text("A skcorr ColumnDatabase; removed by build(..., "
                                    "overwrite=True).\n")
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
                "build_id": uuid.uuid4().hex,
            }
            write_text(path / "meta.json", json.dumps(meta, indent=1) + "\n")
        except BaseException:
            columns.abort()
            pixels.abort()
            # A killed process never gets here: its folder keeps the marker, so that
            # build(..., overwrite=True) can remove it later.
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
            if (path / _MARKER).is_file():
                raise FileNotFoundError(
                    f"The column database {str(path)!r} is incomplete: its build did not "
                    "finish (interrupted or killed). Build it again with "
                    "ColumnDatabase.build(extractor, images, path, overwrite=True), which "
                    "removes the incomplete folder."
                )
            raise FileNotFoundError(
                f"{str(path)!r} holds no meta.json: it is not a column database. Build one "
                "with ColumnDatabase.build(extractor, images, path)."
            )
        meta = _read_meta(path)
        if meta["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"Column database {str(path)!r} has format version "
                f"{meta['format_version']!r}; this skcorr reads version {FORMAT_VERSION}. "
                "Build it again."
            )
        arrays = _read_arrays(path, meta)
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
            The extractor to check (an unfitted one is cloned and the clone fitted).
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
               chunk_size=None, approximate=False, nprobe=None):
        """Top-k cosine neighbours of each query among the columns, by faiss.

        Exact by default: a flat inner-product search over blocks of the memory-mapped
        columns (the same top-k as a brute-force search). With ``approximate=True`` the
        index of :meth:`build_index` answers instead (faster on tens of millions of
        columns; most but not all true neighbours).

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
            Exact search: database rows per block. ``None`` bounds a block to about 16
            million similarities and 256 MiB of float32 columns. The result does not
            depend on it.
        approximate : bool, default=False
            Search the approximate index written by :meth:`build_index`.
        nprobe : int, default=None
            Approximate search: inverted lists visited per query (more: slower, closer
            to exact); ``None`` uses the one given to :meth:`build_index`.

        Returns
        -------
        indices : ndarray of shape (n_queries, k), int64
            Database rows of the neighbours, most similar first (-1 where an
            approximate search found fewer than ``k``).
        similarities : ndarray of shape (n_queries, k), float32
            Their cosine similarities (``-inf`` for a missing neighbour).
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
        queries = np.ascontiguousarray(l2_normalize(queries))
        m = len(queries)
        excluded = self._excluded_images(exclude_images)
        own = None
        if query_images is not None:
            own = np.asarray(query_images, dtype=np.int64).reshape(-1)
            if own.shape != (m,):
                raise ValueError(f"query_images must have shape ({m},), got {own.shape}.")
        self._check_k(k, excluded, own)
        # Queries that exclude the same images are searched together.
        groups = [(np.arange(m), -1)] if own is None else [
            (np.flatnonzero(own == value), value) for value in np.unique(own)]
        if approximate:
            return self._search_index(queries, k, excluded, groups, nprobe)
        if chunk_size is None:
            chunk_size = max(k, 1024, min(_BLOCK_ELEMENTS // max(m, 1),
                                          _BLOCK_BYTES // (4 * self.n_features)))
        elif not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
        best_sim = np.full((m, k), -np.inf, dtype=np.float32)
        best_idx = np.full((m, k), -1, dtype=np.int64)
        for start in range(0, self.n_columns, chunk_size):
            stop = min(start + chunk_size, self.n_columns)
            index = faiss.IndexFlatIP(self.n_features)
            index.add(np.ascontiguousarray(self.columns[start:stop], dtype=np.float32))
            sims, idx = self._search_groups(index, queries, min(k, stop - start), groups,
                                            excluded, self.image_index[start:stop])
            best_sim, best_idx = _merge_top_k(best_sim, best_idx, sims,
                                              np.where(idx >= 0, idx + start, -1), k)
        return best_idx, best_sim

    def _search_groups(self, index, queries, k, groups, excluded, images, nprobe=None):
        """Search each query group with a selector of the columns it may match."""
        sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        idx = np.full((len(queries), k), -1, dtype=np.int64)
        for rows, own in groups:
            allowed = np.ones(len(images), dtype=bool)
            if excluded is not None:
                allowed &= ~np.isin(images, excluded)
            if own >= 0:
                allowed &= images != own
            ivf = nprobe is not None and faiss.try_extract_index_ivf(index) is not None
            params = faiss.SearchParametersIVF() if ivf else faiss.SearchParameters()
            if ivf:
                params.nprobe = int(nprobe)
            if not allowed.all():
                bits = np.packbits(allowed, bitorder="little")  # kept alive below
                params.sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bits))
            D, I = index.search(queries[rows], k, params=params)  # noqa: E741
            found = I >= 0
            sims[rows] = np.where(found, D, -np.inf)
            idx[rows] = I
        return sims, idx

    # -- the approximate index -----------------------------------------------------------
    def build_index(self, factory="IVF1024,PQ16", *, nprobe=16, train_size=200_000,
                    chunk_size=1_000_000, random_state=0, overwrite=False, verbose=False):
        """Build and save an approximate faiss index of the columns (``index.faiss``).

        The index is trained on a random sample of columns and filled block by block
        from the memory-mapped columns, so memory holds one block and the index (for
        ``PQ16``: 16 bytes per column, plus 8 for its id).

        Parameters
        ----------
        factory : str, default="IVF1024,PQ16"
            A :func:`faiss.index_factory` description with inner-product metric, e.g.
            ``"IVF4096,PQ16"`` (inverted lists and 16-byte product codes: tens of
            millions of columns in a few hundred MB) or ``"IVF1024,Flat"`` (exact
            distances within the lists visited). ``"IVF<n>"`` needs at least ``n``
            training columns (faiss advises 39 n).
        nprobe : int, default=16
            Default number of lists a search visits.
        train_size : int, default=200000
            Columns sampled to train the quantisers.
        chunk_size : int, default=1000000
            Columns added per block.
        random_state : int, default=0
            Seed of the training sample.
        overwrite : bool, default=False
            Replace an existing index.
        verbose : bool, default=False
            Progress bar over the blocks.

        Returns
        -------
        self : ColumnDatabase
        """
        index_file, info_file = self.path / "index.faiss", self.path / "index.json"
        if index_file.exists() and not overwrite:
            raise FileExistsError(
                f"{str(index_file)!r} exists; pass overwrite=True to build it again."
            )
        for name, value in (("nprobe", nprobe), ("train_size", train_size),
                            ("chunk_size", chunk_size)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        try:
            index = faiss.index_factory(self.n_features, str(factory),
                                        faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(
                f"faiss cannot build the index {factory!r} for columns of {self.n_features} "
                f"({str(exc).strip().splitlines()[-1]}); see faiss.index_factory, e.g. "
                "'IVF1024,PQ16' (the PQ size must divide the column length)."
            ) from exc
        n = self.n_columns
        rng = np.random.default_rng(random_state)
        sample = np.sort(rng.choice(n, min(n, train_size), replace=False))
        train = np.ascontiguousarray(self.columns[sample], dtype=np.float32)
        if not index.is_trained:
            ivf = faiss.try_extract_index_ivf(index)
            lists = ivf.nlist if ivf is not None else 0
            if lists > len(train):
                raise ValueError(
                    f"{factory!r} has {lists} inverted lists but only {len(train)} training "
                    "columns; use fewer lists (IVF<n> with n well below the column count)."
                )
            index.train(train)
        for start in tqdm(range(0, n, chunk_size), desc="index", disable=not verbose):
            index.add(np.ascontiguousarray(self.columns[start:start + chunk_size],
                                           dtype=np.float32))
        data = faiss.serialize_index(index).tobytes()
        info = {"factory": str(factory), "nprobe": int(nprobe), "n_columns": n,
                "n_features": self.n_features, "metric": "inner_product",
                "build_id": self.meta.get("build_id"), "digest": _digest(data)}
        with atomic_path(index_file) as temporary:
            temporary.write_bytes(data)
        write_text(info_file, json.dumps(info, indent=1) + "\n")
        self._index = (index, info)
        return self

    def _load_index(self):
        if getattr(self, "_index", None) is not None:
            return self._index
        index_file, info_file = self.path / "index.faiss", self.path / "index.json"
        if not index_file.is_file():
            raise ValueError(
                f"Column database {str(self.path)!r} has no approximate index; build one "
                "with db.build_index() or search with approximate=False."
            )
        fix = ("Build it again with db.build_index(..., overwrite=True), or search with "
               "approximate=False.")
        try:
            info = json.loads(info_file.read_text())
            data = index_file.read_bytes()
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ValueError(f"The index {str(index_file)!r} (or its index.json) cannot be "
                             f"read ({exc}). {fix}") from exc
        expected = {"n_columns": self.n_columns, "n_features": self.n_features,
                    "metric": "inner_product", "build_id": self.meta.get("build_id")}
        actual = {"n_columns": index.ntotal, "n_features": index.d,
                  "metric": ("inner_product" if index.metric_type == faiss.METRIC_INNER_PRODUCT
                             else "other"),
                  "build_id": info.get("build_id") if isinstance(info, dict) else None}
        diff = [f"{key}: index {actual[key]!r}, database {expected[key]!r}"
                for key in expected if actual[key] != expected[key]]
        if not isinstance(info, dict) or "nprobe" not in info:
            diff.append("index.json is not the one build_index writes")
        elif info.get("digest") != _digest(data):
            diff.append(f"index.faiss is not the index index.json describes ({info['factory']})")
        if diff:
            raise ValueError(f"The index {str(index_file)!r} was built with other settings "
                             f"than the database ({'; '.join(diff)}). {fix}")
        self._index = (index, info)
        return self._index

    def _search_index(self, queries, k, excluded, groups, nprobe):
        index, info = self._load_index()
        nprobe = info["nprobe"] if nprobe is None else nprobe
        if isinstance(nprobe, bool) or not isinstance(nprobe, numbers.Integral) or nprobe < 1:
            raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}.")
        sims, idx = self._search_groups(index, queries, k, groups, excluded,
                                        np.asarray(self.image_index), nprobe=nprobe)
        return idx, sims

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
