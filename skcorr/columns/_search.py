"""Top-k cosine search of a column database by faiss: exact, or by the approximate index.

The functions take the :class:`ColumnDatabase` ``db`` and read its ``columns``
(memory-mapped, L2-normalised), ``image_index``, ``path`` and ``meta``.
"""

from __future__ import annotations

import numbers

import faiss
import numpy as np

from .._array import l2_normalize
from ._index import load_index

__all__ = ["search_columns"]

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


def search_columns(db, queries, k, *, exclude_images, query_images, chunk_size,
                   approximate, nprobe):
    """:meth:`ColumnDatabase.search` of the database ``db``."""
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim == 1:
        queries = queries[None, :]
    if queries.ndim != 2 or queries.shape[1] != db.n_features:
        raise ValueError(
            f"queries must have shape (n_queries, {db.n_features}), got "
            f"{queries.shape}; the database holds columns of length {db.n_features}."
        )
    if not np.all(np.isfinite(queries)):
        raise ValueError("queries contain NaN or infinite values.")
    queries = np.ascontiguousarray(l2_normalize(queries))
    m = len(queries)
    excluded = _excluded_images(db, exclude_images)
    own = None
    if query_images is not None:
        own = np.asarray(query_images, dtype=np.int64).reshape(-1)
        if own.shape != (m,):
            raise ValueError(f"query_images must have shape ({m},), got {own.shape}.")
    _check_k(db, k, excluded, own)
    # Queries that exclude the same images are searched together.
    groups = [(np.arange(m), -1)] if own is None else [
        (np.flatnonzero(own == value), value) for value in np.unique(own)]
    if approximate:
        return _search_index(db, queries, k, excluded, groups, nprobe)
    if chunk_size is None:
        chunk_size = max(k, 1024, min(_BLOCK_ELEMENTS // max(m, 1),
                                      _BLOCK_BYTES // (4 * db.n_features)))
    elif not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    best_sim = np.full((m, k), -np.inf, dtype=np.float32)
    best_idx = np.full((m, k), -1, dtype=np.int64)
    for start in range(0, db.n_columns, chunk_size):
        stop = min(start + chunk_size, db.n_columns)
        index = faiss.IndexFlatIP(db.n_features)
        index.add(np.ascontiguousarray(db.columns[start:stop], dtype=np.float32))
        sims, idx = _search_groups(index, queries, min(k, stop - start), groups,
                                        excluded, db.image_index[start:stop])
        best_sim, best_idx = _merge_top_k(best_sim, best_idx, sims,
                                          np.where(idx >= 0, idx + start, -1), k)
    return best_sim, best_idx


def _search_groups(index, queries, k, groups, excluded, images, nprobe=None):
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


def _search_index(db, queries, k, excluded, groups, nprobe):
    if db._index is None:  # read once per opened database
        db._index = load_index(db.path, n_columns=db.n_columns, n_features=db.n_features,
                               build_id=db.meta.get("build_id"))
    index, info = db._index
    nprobe = info["nprobe"] if nprobe is None else nprobe
    if isinstance(nprobe, bool) or not isinstance(nprobe, numbers.Integral) or nprobe < 1:
        raise ValueError(f"nprobe must be a positive integer, got {nprobe!r}.")
    return _search_groups(index, queries, k, groups, excluded, np.asarray(db.image_index),
                          nprobe=nprobe)


def _excluded_images(db, exclude_images):
    if exclude_images is None:
        return None
    excluded = np.unique(np.asarray(exclude_images, dtype=np.int64).reshape(-1))
    if excluded.size and (excluded.min() < 0 or excluded.max() >= db.n_images):
        raise ValueError(
            f"exclude_images holds {excluded.min() if excluded.min() < 0 else excluded.max()}"
            f"; the database has images 0 .. {db.n_images - 1}."
        )
    return excluded if excluded.size else None


def _check_k(db, k, excluded, own) -> None:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    counts = np.bincount(db.image_index, minlength=db.n_images)
    available = db.n_columns - (counts[excluded].sum() if excluded is not None else 0)
    if own is not None:
        mine = own[(own >= 0) & (own < db.n_images)]
        if excluded is not None:
            mine = mine[~np.isin(mine, excluded)]
        available -= counts[mine].max() if mine.size else 0
    if k > available:
        raise ValueError(
            f"k={k} but only {available} database columns can be matched (of "
            f"{db.n_columns}, after exclusions); use a smaller k or a larger database."
        )
