"""Label grids and data costs of the flow MRF, shared by both solvers.

Label grids
-----------
Every node ``p`` of an ``(H, W)`` node grid has the same ``(Ly, Lx)`` grid of label
*indices* ``l = (ly, lx)``, and a per-node integer offset ``o_p`` (an ``(H, W, 2)``
array): label ``l`` at node ``p`` means the displacement ``w_p = l + o_p`` (in units of
label-grid steps, ``(dy, dx)``). The two label sets of the flow problem are two choices
of offsets:

* every target grid position, with :func:`data_cost` and :func:`absolute_offsets`
  (the label is the target position, ``o_p = -p``);
* a window of radius ``R`` of displacements around a centre ``c_p``, with
  :func:`data_cost_window` and :func:`window_offsets` (``o_p = c_p - R``).

Both compute squared Euclidean distances (one BLAS product) or, with
``metric="cityblock"``, L1 distances (SIFT Flow's data term, a numba kernel). SIFT Flow's
truncation of the data term and its small-displacement term act on either:
:func:`truncate_costs` and :func:`add_displacement_costs`.

Coarse-to-fine solving resamples label grids (:func:`shift_label_grid`) and merges 2x2
blocks of nodes (:func:`coarsen_costs`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..._geometry import node_grid
from ._numba import _FASTMATH, _fmin

__all__ = ["absolute_offsets", "add_displacement_costs", "add_label_prices", "coarsen_costs",
           "data_cost", "data_cost_window", "shift_label_grid", "truncate_costs",
           "window_offsets"]

# The data costs' metrics: squared Euclidean (the paper's) and L1 (SIFT Flow's).
METRICS = ("sqeuclidean", "cityblock")


def absolute_offsets(shape):
    """Offsets of the label set "every target grid position": ``o_p = -p``.

    Parameters
    ----------
    shape : (int, int)
        The node grid ``(H, W)``.

    Returns
    -------
    offsets : ndarray of shape (H, W, 2), int64
        With them the label ``l`` of node ``p`` is the target position ``l`` and the
        displacement ``l - p``.
    """
    return -node_grid(shape)


def window_offsets(shape, radius, centers=None):
    """Offsets of the label set "window of radius R around ``centers``": ``o_p = c_p - R``.

    Parameters
    ----------
    shape : (int, int)
        The node grid ``(H, W)``.
    radius : int
        ``R >= 0``.
    centers : array-like of int, shape (H, W, 2) or (2,), optional
        Window centres (displacements ``(dy, dx)``); default zero.

    Returns
    -------
    offsets : ndarray of shape (H, W, 2), int64
        Label ``(a, b)`` of node ``p`` is the displacement ``(a, b) + c_p - R``, as in
        :func:`data_cost_window`.
    """
    return _as_label_vectors(centers, tuple(shape), "centers") - _as_radius(radius)


def _as_features(x, name):
    x = np.asarray(x)
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty (rows, cols, n_features) array; "
                         f"got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; features must be finite.")
    return x


def data_cost(fs, ft, metric="sqeuclidean"):
    """Squared Euclidean (or L1) distances from every source feature to every target one.

    ``D[i, j, y, x] = ||fs[i, j] - ft[y, x]||^2``, in float32, as
    ``|a|^2 + |b|^2 - 2 <a, b>`` with one matrix product (BLAS ``sgemm``; it runs on as
    many threads as the BLAS library is given, see ``threadpoolctl``). Where that
    difference cancels (below 1/16 of ``|a|^2 + |b|^2``: near-identical columns) the
    distance is summed directly instead, so every entry is accurate to float32 rounding
    of its own size and identical columns cost exactly 0.

    Parameters
    ----------
    fs : array-like of shape (H, W, d)
        Source features.
    ft : array-like of shape (Ht, Wt, d)
        Target features.
    metric : {"sqeuclidean", "cityblock"}, default="sqeuclidean"
        ``"cityblock"``: ``D[i, j, y, x] = ||fs[i, j] - ft[y, x]||_1`` instead (SIFT
        Flow's data term), summed directly in float32 by a numba kernel.

    Returns
    -------
    D : ndarray of shape (H, W, Ht, Wt), dtype float32
        The data costs of the label set "every target position" (label = target
        position ``(y, x)``).
    """
    metric = _as_metric(metric)
    fs, ft = _as_feature_pair(fs, ft)
    a = fs.reshape(-1, fs.shape[2])
    b = ft.reshape(-1, ft.shape[2])
    if metric == "cityblock":
        out = np.empty((a.shape[0], b.shape[0]), np.float32)
        _l1_distances(a, b, out)
    else:
        out = np.matmul(a, b.T)
        _finish_distances(out, a, b, _squared_norms(a), _squared_norms(b))
    return out.reshape(fs.shape[:2] + ft.shape[:2])


def _as_metric(metric):
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(map(repr, METRICS))}; "
                         f"got {metric!r}.")
    return metric


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _l1_distances(a, b, out):
    """``out[p, q] = sum_k |a[p, k] - b[q, k]|`` (float32 sums; plain index loops, no
    row views, so that the sum over ``k`` vectorises)."""
    d = a.shape[1]
    for p in range(a.shape[0]):
        for q in range(b.shape[0]):
            acc = np.float32(0.0)
            for k in range(d):
                acc += abs(a[p, k] - b[q, k])
            out[p, q] = acc


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _l1_window(fs, ft, shift, out):
    """L1 costs of the window labels: ``out[i, j, a, b] = ||fs[i, j] - ft[y, x]||_1`` with
    ``(y, x) = (i, j) + shift[i, j] + (a, b)``, ``+inf`` off the target grid."""
    H, W, d = fs.shape
    Ht, Wt = ft.shape[:2]
    Ky, Kx = out.shape[2:]
    for i in range(H):
        for j in range(W):
            for a in range(Ky):
                y = i + shift[i, j, 0] + a
                for b in range(Kx):
                    x = j + shift[i, j, 1] + b
                    if 0 <= y < Ht and 0 <= x < Wt:
                        acc = np.float32(0.0)
                        for k in range(d):
                            acc += abs(fs[i, j, k] - ft[y, x, k])
                        out[i, j, a, b] = acc
                    else:
                        out[i, j, a, b] = np.inf


def truncate_costs(costs, truncation):
    """SIFT Flow's truncated data term: ``min(D, truncation)`` of every allowed label.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
        Data costs; ``+inf`` (labels that are not allowed) stays ``+inf``.
    truncation : float
        ``> 0``, in the units of ``costs``.

    Returns
    -------
    truncated : ndarray of shape (H, W, Ly, Lx), dtype of ``costs``
        A new array.
    """
    costs = np.array(costs, dtype=np.float32 if np.asarray(costs).dtype == np.float32
                     else np.float64)
    np.minimum(costs, costs.dtype.type(truncation), out=costs, where=np.isfinite(costs))
    return costs


def add_displacement_costs(costs, offsets, weight, centers=None):
    """``costs`` plus SIFT Flow's small-displacement term of every (node, label).

    Label ``l`` of node ``p`` is the displacement ``w = l + offsets[p]``; it costs
    ``weight * (|w_y - c_y| + |w_x - c_x|)`` more, with ``c = centers[p]`` the
    displacement that counts as none (zero when the two grids have the same shape).

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
        Data costs; ``+inf`` stays ``+inf``.
    offsets : ndarray of int, shape (H, W, 2)
    weight : float
        ``>= 0``, per grid step.
    centers : array-like of int, shape (H, W, 2) or (2,), optional
        Default zero.

    Returns
    -------
    out : ndarray of shape (H, W, Ly, Lx), dtype of ``costs``
        Each sum taken in float64, rounded once to ``costs``' dtype.
    """
    costs = np.asarray(costs)
    H, W, Ly, Lx = costs.shape
    rel = (_as_label_vectors(offsets, (H, W), "offsets")
           - _as_label_vectors(centers, (H, W), "centers"))
    dy = np.abs(np.arange(Ly) + rel[..., :1])   # (H, W, Ly)
    dx = np.abs(np.arange(Lx) + rel[..., 1:])   # (H, W, Lx)
    extra = float(weight) * (dy[..., :, None] + dx[..., None, :])
    dtype = np.float32 if costs.dtype == np.float32 else np.float64
    return (costs.astype(np.float64) + extra).astype(dtype)


def _as_feature_pair(fs, ft):
    fs = _as_features(fs, "fs")
    ft = _as_features(ft, "ft")
    if fs.shape[2] != ft.shape[2]:
        raise ValueError(f"fs and ft must have the same number of features; got "
                         f"{fs.shape[2]} and {ft.shape[2]}.")
    return (np.ascontiguousarray(fs, dtype=np.float32),
            np.ascontiguousarray(ft, dtype=np.float32))


# Below this fraction of |a|^2 + |b|^2 the float32 rounding of |a|^2 + |b|^2 - 2 <a, b>
# (about sqrt(d) * 6e-8 of |a|^2 + |b|^2) would exceed 1e-5 of the distance: sum directly.
_CANCELLATION = np.float32(1.0 / 16.0)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _squared_distance(a, b):
    acc = np.float32(0.0)
    for k in range(a.shape[0]):
        d = a[k] - b[k]
        acc += d * d
    return acc


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _squared_norms(x):
    """``|x_p|^2`` of every row, summed in float64, as float32."""
    out = np.empty(x.shape[0], np.float32)
    for p in range(x.shape[0]):
        acc = 0.0
        for k in range(x.shape[1]):
            acc += np.float64(x[p, k]) * x[p, k]
        out[p] = acc
    return out


@njit(cache=True, nogil=True)
def _distance(dot, na, nb, a, b):
    """The squared distance of rows ``a``, ``b`` from their product and squared norms."""
    d = na + nb - np.float32(2.0) * dot
    if d < _CANCELLATION * (na + nb):
        return _squared_distance(a, b)
    return d


@njit(cache=True, nogil=True)
def _finish_distances(prod, a, b, na, nb):
    """Turn the products ``prod[p, q] = <a_p, b_q>`` into squared distances, in place."""
    for p in range(prod.shape[0]):
        row = prod[p]
        for q in range(prod.shape[1]):
            row[q] = _distance(row[q], na[p], nb[q], a[p], b[q])


@njit(cache=True, nogil=True)
def _window_row(prod, first, i, fs_row, ft, ns_row, nt, shift, out):
    """Costs of the window labels of the nodes of source row ``i``.

    ``prod[j, y - first, x]`` is ``<fs[i, j], ft[y, x]>`` for the target rows ``y`` from
    ``first`` on that the row's windows reach (``prod.shape[1]`` of them).
    """
    Ht, Wt = ft.shape[:2]
    K = out.shape[1]
    for j in range(out.shape[0]):
        for a in range(K):
            y = i + shift[j, 0] + a
            for b in range(K):
                x = j + shift[j, 1] + b
                if 0 <= y < Ht and 0 <= x < Wt:
                    out[j, a, b] = _distance(prod[j, y - first, x], ns_row[j], nt[y, x],
                                             fs_row[j], ft[y, x])
                else:
                    out[j, a, b] = np.inf


@njit(cache=True, nogil=True)
def _shift_label_grid(costs, shift, out):
    H, W, Ly, Lx = costs.shape
    Ky, Kx = out.shape[2:]
    for i in range(H):
        for j in range(W):
            sy = shift[i, j, 0]
            sx = shift[i, j, 1]
            # output columns whose source column b + sx lies on the label grid
            b0 = min(max(-sx, 0), Kx)
            b1 = max(min(Lx - sx, Kx), b0)
            for a in range(Ky):
                row = out[i, j, a]
                y = a + sy
                if y < 0 or y >= Ly:
                    row[:] = np.inf
                    continue
                row[:b0] = np.inf
                row[b0:b1] = costs[i, j, y, b0 + sx:b1 + sx]
                row[b1:] = np.inf


def shift_label_grid(costs, shift, shape):
    """Resample every node's label grid at shifted positions, ``+inf`` off the grid.

    ``out[i, j, a, b] = costs[i, j, a + shift[i, j, 0], b + shift[i, j, 1]]``, or
    ``+inf`` where that index is outside ``costs``' label grid.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
    shift : array-like of int, shape (H, W, 2) or (2,)
        Per-node (or common) label shift ``(sy, sx)``.
    shape : (int, int)
        The output label grid ``(Ky, Kx)``.

    Returns
    -------
    out : ndarray of shape (H, W, Ky, Kx), dtype of ``costs``
    """
    costs = np.ascontiguousarray(costs)
    if costs.dtype not in (np.float32, np.float64):
        costs = costs.astype(np.float64)
    H, W = costs.shape[:2]
    shift = np.ascontiguousarray(np.broadcast_to(np.asarray(shift, dtype=np.int64), (H, W, 2)))
    out = np.empty((H, W) + tuple(int(k) for k in shape), costs.dtype)
    _shift_label_grid(costs, shift, out)
    return out


def coarsen_costs(costs, offsets, slack):
    """Data costs of 2x2 blocks of nodes that share a displacement up to ``slack``.

    Block ``P`` takes the offset of its top-left node; its cost of a label is the sum
    over its nodes of their cheapest cost within ``slack`` label steps of that
    displacement (``+inf`` where a node has none). Blocks of one row or column at odd
    borders.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
    offsets : ndarray of shape (H, W, 2), int64
    slack : int

    Returns
    -------
    coarse : ndarray of shape ((H + 1) // 2, (W + 1) // 2, Ly, Lx), dtype of ``costs``
    """
    H, W, Ly, Lx = costs.shape
    coarse = np.zeros(((H + 1) // 2, (W + 1) // 2, Ly, Lx), costs.dtype)
    _coarsen_into(costs, offsets, slack, coarse)
    return coarse


@njit(cache=True, nogil=True)
def _coarsen_into(costs, offsets, slack, coarse):
    """Add every node's slack-minimum costs, shifted to its block's offset, into ``coarse``.

    Plain index loops, no array views (a view costs a reference-count pair, more than a
    row of labels), each inner loop along a contiguous row with no dependence between
    iterations, so that it vectorises. The minimum over ``slack`` steps is separable
    (along rows, then columns); labels whose displacement leaves the grid cost ``+inf``.
    """
    H, W, Ly, Lx = costs.shape
    tmp = np.empty((Ly, Lx), costs.dtype)
    near = np.empty((Ly, Lx), costs.dtype)
    for i in range(H):
        for j in range(W):
            for a in range(Ly):
                for b in range(Lx):
                    tmp[a, b] = costs[i, j, a, b]
                for o in range(1, slack + 1):
                    for b in range(o, Lx):
                        tmp[a, b] = _fmin(tmp[a, b], costs[i, j, a, b - o])
                    for b in range(Lx - o):
                        tmp[a, b] = _fmin(tmp[a, b], costs[i, j, a, b + o])
            for a in range(Ly):
                for b in range(Lx):
                    near[a, b] = tmp[a, b]
                for c in range(max(a - slack, 0), min(a + slack + 1, Ly)):
                    for b in range(Lx):
                        near[a, b] = _fmin(near[a, b], tmp[c, b])
            bi, bj = i // 2, j // 2
            sy = offsets[i - i % 2, j - j % 2, 0] - offsets[i, j, 0]
            sx = offsets[i - i % 2, j - j % 2, 1] - offsets[i, j, 1]
            # columns b whose b + sx lies on the label grid (as in _shift_label_grid)
            b0 = min(max(-sx, 0), Lx)
            b1 = max(min(Lx - sx, Lx), b0)
            for a in range(Ly):
                y = a + sy
                if y < 0 or y >= Ly:
                    for b in range(Lx):
                        coarse[bi, bj, a, b] = np.inf
                    continue
                for b in range(b0):
                    coarse[bi, bj, a, b] = np.inf
                for b in range(b0, b1):
                    coarse[bi, bj, a, b] += near[y, b + sx]
                for b in range(b1, Lx):
                    coarse[bi, bj, a, b] = np.inf


def data_cost_window(fs, ft, radius, centers=None, metric="sqeuclidean"):
    """Data costs of the displacements in a window of radius ``R`` around each node.

    ``D[i, j, a, b] = ||fs[i, j] - ft[i + cy + a - R, j + cx + b - R]||^2`` with
    ``(cy, cx) = centers[i, j]``, and ``+inf`` where that target position is outside
    ``ft``. The label ``(a, b)`` is the displacement ``(a, b) + centers[i, j] - R``,
    i.e. the offsets :func:`window_offsets` returns. Computed as :func:`data_cost`
    computes distances, with one matrix product per source row over the target rows
    its nodes' windows reach.

    Parameters
    ----------
    fs : array-like of shape (H, W, d)
        Source features.
    ft : array-like of shape (Ht, Wt, d)
        Target features, on the same grid coordinates as ``fs``.
    radius : int
        ``R >= 0``; the window has ``(2R + 1)**2`` labels.
    centers : array-like of int, shape (H, W, 2) or (2,), optional
        Window centres ``(dy, dx)`` per node; default zero.
    metric : {"sqeuclidean", "cityblock"}, default="sqeuclidean"
        ``"cityblock"``: L1 distances instead, as :func:`data_cost` has them.

    Returns
    -------
    D : ndarray of shape (H, W, 2R + 1, 2R + 1), dtype float32
    """
    radius = _as_radius(radius)
    metric = _as_metric(metric)
    fs = _as_features(fs, "fs")
    H, W = fs.shape[:2]
    centers = _as_label_vectors(centers, (H, W), "centers")
    fs, ft = _as_feature_pair(fs, ft)
    size = 2 * radius + 1
    Ht, Wt, d = ft.shape
    shift = centers - radius
    if metric == "cityblock":
        out = np.empty((H, W, size, size), np.float32)
        _l1_window(fs, ft, shift, out)
        return out
    ns = _squared_norms(fs.reshape(-1, d)).reshape(H, W)
    nt = _squared_norms(ft.reshape(-1, d)).reshape(Ht, Wt)
    out = np.empty((H, W, size, size), np.float32)
    for i in range(H):  # one product per source row, with the target rows its windows reach
        first = min(max(i + int(shift[i, :, 0].min()), 0), Ht)
        last = max(min(i + int(shift[i, :, 0].max()) + size, Ht), first)
        prod = np.matmul(fs[i], ft[first:last].reshape(-1, d).T).reshape(W, last - first, Wt)
        _window_row(prod, first, i, fs[i], ft, ns[i], nt, shift[i], out[i])
    return out


def add_label_prices(costs, prices, offsets):
    """``costs`` plus the price of the target node of every (node, label).

    Label ``l`` of node ``p`` is the target node ``p + offsets[p] + l``; labels whose
    target node is off the target grid keep their cost (``+inf`` already, for the label
    sets of :func:`data_cost` and :func:`data_cost_window`).

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32 or float64
    prices : ndarray of shape (Ht, Wt)
        A price per target node (:func:`~skcorr.flow._mrf._transport.target_prices`).
    offsets : ndarray of int, shape (H, W, 2)

    Returns
    -------
    priced : ndarray of shape (H, W, Ly, Lx), dtype of ``costs``
        Each sum taken in float64, rounded once to ``costs``' dtype.
    """
    costs = np.ascontiguousarray(costs)
    if costs.dtype not in (np.float32, np.float64):
        costs = costs.astype(np.float64)
    out = np.empty_like(costs)
    _add_label_prices(costs, np.ascontiguousarray(prices, dtype=np.float64),
                      np.ascontiguousarray(offsets, dtype=np.int64), out)
    return out


@njit(cache=True, nogil=True)
def _add_label_prices(costs, prices, offsets, out):
    H, W, Ly, Lx = costs.shape
    Ht, Wt = prices.shape
    for i in range(H):
        for j in range(W):
            y0 = i + offsets[i, j, 0]
            x0 = j + offsets[i, j, 1]
            for a in range(Ly):
                y = y0 + a
                for b in range(Lx):
                    x = x0 + b
                    c = np.float64(costs[i, j, a, b])
                    if 0 <= y < Ht and 0 <= x < Wt:
                        c += prices[y, x]
                    out[i, j, a, b] = c


def _as_radius(radius):
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 0:
        raise ValueError(f"radius must be an integer >= 0; got {radius!r}.")
    return int(radius)


def _as_label_vectors(x, shape, name):
    """``x`` as an int64 (H, W, 2) array of label-grid vectors (zeros for None)."""
    if x is None:
        return np.zeros(shape + (2,), np.int64)
    x = np.asarray(x)
    integral = np.issubdtype(x.dtype, np.integer) or (
        np.issubdtype(x.dtype, np.floating) and np.isfinite(x).all() and (x == np.round(x)).all())
    if not integral:
        raise ValueError(f"{name} must hold integers (label-grid steps).")
    try:
        return np.broadcast_to(x.astype(np.int64), shape + (2,)).copy()
    except ValueError:
        raise ValueError(f"{name} must have shape {shape + (2,)} or (2,); "
                         f"got {x.shape}.") from None
