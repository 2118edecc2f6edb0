"""ColumnDatabase: a database of convnet columns on disk, with top-k cosine search.

The public class; the work is done in ``_store.py`` (the files of a database folder:
writing, swapping in, reading and checking), ``_extractor.py`` (the extractor a
database belongs to), ``_search.py`` (exact search) and ``_index.py`` (the approximate
index).
"""

from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np

from .._image import as_rgb, check_images
from ._extractor import check_extractor, check_fitted_extractor
from ._index import build_index
from ._search import search_columns
from ._store import MARKER, made_by_skcorr, read_store, staged_folder, write_store

__all__ = ["ColumnDatabase"]


class ColumnDatabase:
    """Columns of one convnet layer from many images, on disk, searchable by cosine.

    Build one with :meth:`build` (once; it is written to a folder) and open it again
    with :meth:`open`. Each column keeps the index of its image and the (x, y) centre of
    its receptive field in that image's pixels; the images' pixels are stored too, so
    that patches around any column can be cut later (the notes of
    ``skcorr/columns/_store.py`` give the layout of the folder and its disk cost).

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

    References
    ----------
    .. [1] J. Long, N. Zhang, T. Darrell. Do Convnets Learn Correspondence? NIPS 2014.
       https://arxiv.org/abs/1411.1091

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from skcorr import ConvColumnExtractor
    >>> from skcorr.columns import ColumnDatabase
    >>> rng = np.random.default_rng(0)
    >>> images = [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(3)]
    >>> ext = ConvColumnExtractor(layer="stage2", weights=None, mode="dense").fit()
    >>> folder = tempfile.mkdtemp()
    >>> db = ColumnDatabase.build(ext, images, folder + "/db")
    >>> len(db), db.n_features, db.n_images
    (960, 24, 3)
    >>> similarities, indices = ColumnDatabase.open(folder + "/db").search(db.columns[:2], k=3)
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
        self._index = None  # the approximate index and its index.json, once read

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
            The folder to create. The database is built in a hidden folder beside it
            and takes its place only once complete, so that a failed or interrupted
            build leaves ``path`` as it was.
        batch_size : int, default=16
            Images per forward pass and per write: only one batch of columns is in
            memory at a time.
        dtype : {"float16", "float32"}, default="float16"
            Storage type of the columns. float16 halves the disk and the bytes read per
            search (similarities change by about 1e-3); search computes in float32.
        overwrite : bool, default=False
            Replace an existing database at ``path`` (once the new one is complete).
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
        extractor = check_fitted_extractor(extractor)
        path = Path(path)
        if path.exists():
            if not overwrite:
                raise FileExistsError(
                    f"{str(path)!r} already exists; open it with ColumnDatabase.open, choose "
                    "another path, or pass overwrite=True to replace it."
                )
            if not made_by_skcorr(path):
                raise FileExistsError(
                    f"{str(path)!r} exists and is not a column database (no "
                    f"{MARKER} marker or meta.json of one); refusing to delete it. Choose "
                    "another path."
                )
        # Built beside the old database, which it replaces only once complete.
        with staged_folder(path) as folder:
            write_store(extractor, images, folder, batch_size=batch_size, dtype=dtype,
                        verbose=verbose)
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
        meta, arrays = read_store(path)
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
        check_extractor(self.meta, self._fingerprint, extractor, self.path)

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
        similarities : ndarray of shape (n_queries, k), float32
            Cosine similarities of the neighbours, largest first (``-inf`` for a
            missing neighbour).
        indices : ndarray of shape (n_queries, k), int64
            Their database rows (-1 where an approximate search found fewer than
            ``k``). The order of the pair follows scikit-learn's ``kneighbors``
            (distances, indices).
        """
        return search_columns(self, queries, k, exclude_images=exclude_images,
                              query_images=query_images, chunk_size=chunk_size,
                              approximate=approximate, nprobe=nprobe)

    # -- the approximate index -----------------------------------------------------------
    def build_index(self, factory="IVF1024,PQ16", *, nprobe=16, train_size=200_000,
                    chunk_size=1_000_000, random_state=0, overwrite=False, verbose=False):
        """Build and save an approximate faiss index of the columns (``index.faiss``).

        The index is trained on a random sample of columns and filled block by block
        from the memory-mapped columns, so memory holds one block and the index (for
        ``PQ16``: 16 bytes per column, plus 8 for its id). ``index.json`` beside it
        records the factory string and ``nprobe`` with a checksum: a search refuses an
        edited one (build the index again to change them).

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
        self._index = build_index(
            self.columns, self.path, self.meta.get("build_id"), factory, nprobe=nprobe,
            train_size=train_size, chunk_size=chunk_size, random_state=random_state,
            overwrite=overwrite, verbose=verbose)
        return self
