"""Top-k cosine search of a column database by faiss: exact, or by the approximate index.

:class:`SearchMixin` gives :class:`ColumnDatabase` its search methods; they use its
``columns`` (memory-mapped, L2-normalised), ``image_index``, ``path`` and ``meta``.
"""

from __future__ import annotations

import numbers

import faiss
import numpy as np

from .._array import l2_normalize
from ._index import build_index, load_index

__all__ = ["SearchMixin"]

#: Default budget of one search block: queries x rows of similarities (64 MiB float32).
_BLOCK_ELEMENTS = 1 << 24
#: Largest block of columns converted to float32 for one flat search (256 MiB).
_BLOCK_BYTES = 1 << 28


def _merge_top_k(best_sim, best_idx, sims, idx, k):
    """The k largest of two (n, .) candidate lists, most similar first."""
    cand_sim = np.concatenate([best_sim, sims], axis=1)
    cand_idx = np.concatenate([best_idx, idx], axis=1)
    order = np.argsort(-cand_sim, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(cand_sim, order, axis=1),
            np.take_along_axis(cand_idx, order, axis=1))


class SearchMixin:
    """Exact and approximate top-k cosine search over a database's columns."""

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
        return best_sim, best_idx

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

    def _search_index(self, queries, k, excluded, groups, nprobe):
        if getattr(self, "_index", None) is None:
            self._index = load_index(self.path, n_columns=self.n_columns,
                                     n_features=self.n_features,
                                     build_id=self.meta.get("build_id"))
        index, info = self._index
        nprobe = info["nprobe"] if nprobe is None else nprobe
        if isinstance(nprobe, bool) or not isinstance(nprobe, numbers.Integral) or nprobe < 1:
            raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}.")
        return self._search_groups(index, queries, k, groups, excluded,
                                   np.asarray(self.image_index), nprobe=nprobe)

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
