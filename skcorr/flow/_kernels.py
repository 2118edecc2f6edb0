"""Numerical kernels of the flow MRF: distance transforms, min-sum BP sweeps, data costs.

Pure functions with documented shapes; the numba kernels are compiled once and cached
on disk (``cache=True``), so a new process does not recompile them.

Label grids
-----------
Every node ``p`` of an ``(H, W)`` node grid has the same ``(Ly, Lx)`` grid of label
*indices* ``l = (ly, lx)``, and a per-node integer offset ``o_p`` (an ``(H, W, 2)``
array): label ``l`` at node ``p`` means the displacement ``w_p = l + o_p`` (in units of
label-grid steps, ``(dy, dx)``). The two label sets of the flow problem are two choices
of offsets (see :mod:`skcorr.flow._bp`):

* every target grid position: ``l`` is the target position and ``o_p = -p``;
* a window of radius ``R`` around a centre ``c_p``: ``o_p = c_p - R``.

The smoothness term of an edge ``(p, q)`` is ``||w_p - w_q||^2 = ||l_p + s - l_q||^2``
with ``s = o_p - o_q``, so the message from ``q`` to ``p`` is the distance transform
of ``q``'s belief evaluated at the shifted positions ``l_p + s``. The lower envelope of
parabolas is defined on the whole line, so evaluating it off the label grid is exact and
costs nothing extra: one kernel serves both label sets.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._dual import _FASTMATH, _fmin

__all__ = [
    "bp_iterations",
    "coarsen_costs",
    "data_cost",
    "data_cost_window",
    "distance_transform_1d",
    "distance_transform_2d",
    "shift_label_grid",
]

# Neighbour k of node (i, j) is (i + _DI[k], j + _DJ[k]); k ^ 1 is the opposite direction.
_DI = (-1, 1, 0, 0)
_DJ = (0, 0, -1, 1)


# --------------------------------------------------------------------------------------
# Distance transforms (Felzenszwalb & Huttenlocher, lower envelope of parabolas)
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True, error_model="numpy")
def _dt1d(f, weight, shift, out, v, z, top):
    """``out[i] = min_q f[q] + weight * (i + shift - q)**2`` for ``i < len(out)``.

    ``f`` and ``out`` are 1-D float arrays (any stride); ``+inf`` entries of ``f`` take
    no part. ``v`` (int, ``>= len(f)``), ``z`` (float, ``>= len(f) + 1``) and ``top``
    (float, ``>= len(f)``) are work buffers. Linear in ``len(f) + len(out)``.
    """
    n = f.shape[0]
    if weight == 0.0:
        best = np.inf
        for q in range(n):
            best = min(best, f[q])
        out[:] = best
        return
    # Lower envelope of the parabolas x -> f[q] + weight (x - q)^2 with finite f[q]:
    # v[0..k] are their vertices, top[j] = f[v[j]] + weight v[j]^2, and parabola v[j] is
    # the lowest on [z[j], z[j + 1]].
    k = -1
    for q in range(n):
        if f[q] == np.inf:
            continue
        tq = f[q] + weight * (q * q)
        if k < 0:
            k = 0
            v[0] = q
            z[0] = -np.inf
            top[0] = tq
            continue
        while True:
            s = (tq - top[k]) / (2.0 * weight * (q - v[k]))  # where parabolas v[k], q cross
            if s > z[k]:
                k += 1
                v[k] = q
                z[k] = s
                top[k] = tq
                break
            if k == 0:  # q is below every parabola kept so far (s underflowed to -inf)
                v[0] = q
                top[0] = tq
                break
            k -= 1
    if k < 0:
        out[:] = np.inf
        return
    z[k + 1] = np.inf
    j = 0
    for i in range(out.shape[0]):
        x = i + shift
        while z[j + 1] < x:
            j += 1
        d = x - v[j]
        out[i] = f[v[j]] + weight * d * d


@njit(cache=True, nogil=True)
def _cap(f, out, cap):
    """``out = min(out, min(f) + cap)``: the truncation of a 1-D transform."""
    top = f.min() + cap
    for i in range(out.shape[0]):
        out[i] = min(out[i], top)


@njit(cache=True, nogil=True)
def _dt2d(f, weight, shift_y, shift_x, out, tmp, v, z, top, cap=np.inf):
    """Separable 2-D transform: rows (x axis) into ``tmp``, then columns into ``out``.

    ``out[y, x] = min_{a, b} f[a, b] + weight ((y + shift_y - a)^2 + (x + shift_x - b)^2)``;
    ``f``, ``out`` and ``tmp`` have the same ``(Ly, Lx)`` shape; ``v``, ``z``, ``top`` as
    in :func:`_dt1d` for ``max(Ly, Lx)``. A finite ``cap`` (``weight * T**2``) truncates
    each axis's term at it: ``weight (min(dy^2, T^2) + min(dx^2, T^2))``.
    """
    for a in range(f.shape[0]):
        _dt1d(f[a], weight, shift_x, tmp[a], v, z, top)
        if cap < np.inf:
            _cap(f[a], tmp[a], cap)
    for b in range(f.shape[1]):
        _dt1d(tmp[:, b], weight, shift_y, out[:, b], v, z, top)
        if cap < np.inf:
            _cap(tmp[:, b], out[:, b], cap)


@njit(cache=True, nogil=True)
def _work_buffers(n):
    """Work buffers ``v, z, top`` of :func:`_dt1d` for arrays of length up to ``n``."""
    return np.empty(n, np.int64), np.empty(n + 1), np.empty(n)


def _as_costs(f, ndim):
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != ndim or 0 in f.shape:
        raise ValueError(f"f must be a non-empty {ndim}-D array; got shape {f.shape}.")
    if np.isnan(f).any() or (f == -np.inf).any():
        raise ValueError("f contains NaN or -inf; use +inf for positions that are not allowed.")
    return np.ascontiguousarray(f)


def _as_weight(weight):
    weight = float(weight)
    if not np.isfinite(weight) or weight < 0:
        raise ValueError(f"weight must be a finite number >= 0; got {weight}.")
    return weight


def _as_out(out, shape):
    if out is None:
        return np.empty(shape)
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != np.float64:
        raise ValueError(f"out must be a float64 array of shape {shape}.")
    return out


def distance_transform_1d(f, weight=1.0, shift=0, out=None):
    """Squared-Euclidean distance transform of a 1-D sampled function.

    ``d[p] = min_q f[q] + weight * (p + shift - q)**2`` over integer ``q``, computed as the
    lower envelope of parabolas (Felzenszwalb & Huttenlocher) in ``O(n)``.

    Parameters
    ----------
    f : array-like of shape (n,)
        Costs; ``+inf`` marks positions that are not allowed (NaN and ``-inf`` are errors).
    weight : float, default=1.0
        ``weight >= 0``; ``0`` gives ``min(f)`` everywhere.
    shift : int, default=0
        Evaluate the transform at ``p + shift``; positions off ``[0, n)`` are exact too.
    out : ndarray of shape (n,), dtype float64, optional
        Where to write the result.

    Returns
    -------
    d : ndarray of shape (n,), dtype float64
        All ``+inf`` when every entry of ``f`` is ``+inf``.
    """
    f = _as_costs(f, 1)
    out = _as_out(out, f.shape)
    n = f.shape[0]
    _dt1d(f, _as_weight(weight), int(shift), out, *_work_buffers(n))
    return out


def distance_transform_2d(f, weight=1.0, shift=(0, 0), out=None):
    """Squared-Euclidean distance transform on a 2-D label grid, separable over the axes.

    ``d[y, x] = min_{a, b} f[a, b] + weight * ((y + sy - a)**2 + (x + sx - b)**2)`` with
    ``(sy, sx) = shift``, in ``O(Ly * Lx)``.

    Parameters
    ----------
    f : array-like of shape (Ly, Lx)
        Costs; ``+inf`` marks labels that are not allowed.
    weight : float, default=1.0
        ``weight >= 0``.
    shift : (int, int), default=(0, 0)
        Offset ``(sy, sx)`` of the evaluation positions (exact off the grid as well).
    out : ndarray of shape (Ly, Lx), dtype float64, optional
        Where to write the result.

    Returns
    -------
    d : ndarray of shape (Ly, Lx), dtype float64
    """
    f = _as_costs(f, 2)
    out = _as_out(out, f.shape)
    sy, sx = (int(s) for s in shift)
    _dt2d(f, _as_weight(weight), sy, sx, out, np.empty_like(f), *_work_buffers(max(f.shape)))
    return out


# --------------------------------------------------------------------------------------
# Min-sum loopy belief propagation on a 4-connected grid
# --------------------------------------------------------------------------------------
@njit(cache=True, nogil=True)
def _argmin_labels(costs, messages, labels):
    """Write each node's lowest-belief flat label into ``labels``; True if any changed."""
    H, W, Ly, Lx = costs.shape
    changed = False
    for i in range(H):
        for j in range(W):
            best = np.inf
            arg = 0
            for a in range(Ly):
                for b in range(Lx):
                    x = costs[i, j, a, b]
                    for k in range(4):
                        x += messages[k, i, j, a, b]
                    if x < best:
                        best = x
                        arg = a * Lx + b
            if arg != labels[i, j]:
                changed = True
                labels[i, j] = arg
    return changed


@njit(cache=True, nogil=True)
def bp_iterations(costs, offsets, lam, messages, max_iter, tol, patience, trunc2=np.inf):
    """Run checkerboard min-sum BP iterations in place on ``messages``.

    One iteration: every "black" node (``(i + j)`` even) sends its four messages, then
    every "white" node does, using the messages just received. Within a half-iteration
    the messages are independent of each other, so the order of the nodes is immaterial.
    The message from ``q`` to its neighbour ``p`` is

    ``m(l) = min_{l'} h(l') + lam ||l + o_p - o_q - l'||^2 - (its minimum over l)``,

    ``h = costs[q] + (messages into q except the one from p)``, by one 2-D distance
    transform.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float64, C-contiguous
        Data costs; ``+inf`` forbids a label; each node needs a finite one.
    offsets : ndarray of shape (H, W, 2), int64
        Label ``l`` at node ``p`` is the displacement ``l + offsets[p]``.
    lam : float
        Smoothness weight, ``>= 0``.
    messages : ndarray of shape (4, H, W, Ly, Lx), float64
        ``messages[k, i, j]`` is the message into node ``(i, j)`` from its neighbour
        ``(i + _DI[k], j + _DJ[k])``: k = 0 above, 1 below, 2 left, 3 right; entries
        for neighbours outside the grid stay as given (zeros). Updated in place.
    max_iter : int
        Number of iterations at most (``>= 1``).
    tol : float
        Stop after an iteration whose largest message change is ``<= tol``.
    patience : int
        Stop once the labelling has not changed for ``patience`` iterations in a row
        (``0``: never stop on this rule).
    trunc2 : float, default=inf
        Squared truncation ``T**2`` of the smoothness, per axis:
        ``lam (min(dy**2, T**2) + min(dx**2, T**2))``; ``inf`` is the plain quadratic.

    Returns
    -------
    labels : ndarray of shape (H, W), int64
        Flat label index ``ly * Lx + lx`` minimising each node's belief (first on ties).
    n_iter : int
        Iterations run.
    """
    H, W, Ly, Lx = costs.shape
    cap = lam * trunc2 if lam > 0 else np.inf
    belief = np.empty((Ly, Lx))
    h = np.empty((Ly, Lx))
    new = np.empty((Ly, Lx))
    tmp = np.empty((Ly, Lx))
    v, z, top = _work_buffers(max(Ly, Lx))
    labels = np.full((H, W), -1, np.int64)
    stable = 0
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        delta = 0.0
        for colour in range(2):
            for i in range(H):
                for j in range((i + colour) % 2, W, 2):
                    for a in range(Ly):
                        for b in range(Lx):
                            x = costs[i, j, a, b]
                            for k in range(4):
                                x += messages[k, i, j, a, b]
                            belief[a, b] = x
                    for k in range(4):
                        pi = i + _DI[k]
                        pj = j + _DJ[k]
                        if pi < 0 or pi >= H or pj < 0 or pj >= W:
                            continue
                        incoming = messages[k, i, j]
                        for a in range(Ly):
                            for b in range(Lx):
                                h[a, b] = belief[a, b] - incoming[a, b]
                        _dt2d(h, lam, offsets[pi, pj, 0] - offsets[i, j, 0],
                              offsets[pi, pj, 1] - offsets[i, j, 1], new, tmp, v, z, top,
                              cap)
                        low = new.min()
                        target = messages[k ^ 1, pi, pj]
                        for a in range(Ly):
                            for b in range(Lx):
                                x = new[a, b] - low
                                delta = max(delta, abs(x - target[a, b]))
                                target[a, b] = x
        if _argmin_labels(costs, messages, labels):
            stable = 0
        else:
            stable += 1
        if delta <= tol or (patience > 0 and stable >= patience):
            break
    return labels, n_iter


# --------------------------------------------------------------------------------------
# Data costs and label-grid resampling
# --------------------------------------------------------------------------------------
def _as_features(x, name):
    x = np.asarray(x)
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} must be a non-empty (rows, cols, n_features) array; "
                         f"got shape {x.shape}.")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf; features must be finite.")
    return x


def data_cost(fs, ft):
    """Squared Euclidean distances from every source feature to every target feature.

    ``D[i, j, y, x] = ||fs[i, j] - ft[y, x]||^2``, summed in float32 by a numba kernel on
    one thread (a BLAS matrix product is faster on an idle machine but its threads
    spin; on the shared 2-core machine it took 10-50x longer than the kernel).

    Parameters
    ----------
    fs : array-like of shape (H, W, d)
        Source features.
    ft : array-like of shape (Ht, Wt, d)
        Target features.

    Returns
    -------
    D : ndarray of shape (H, W, Ht, Wt), dtype float32
        The data costs of the label set "every target position" (label = target
        position ``(y, x)``).
    """
    fs, ft = _as_feature_pair(fs, ft)
    out = np.empty(fs.shape[:2] + ft.shape[:2], np.float32)
    _data_cost_into(fs.reshape(-1, fs.shape[2]), ft.reshape(-1, ft.shape[2]),
                    out.reshape(fs.shape[0] * fs.shape[1], -1))
    return out


def _as_feature_pair(fs, ft):
    fs = _as_features(fs, "fs")
    ft = _as_features(ft, "ft")
    if fs.shape[2] != ft.shape[2]:
        raise ValueError(f"fs and ft must have the same number of features; got "
                         f"{fs.shape[2]} and {ft.shape[2]}.")
    return (np.ascontiguousarray(fs, dtype=np.float32),
            np.ascontiguousarray(ft, dtype=np.float32))


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _squared_distance(a, b):
    acc = np.float32(0.0)
    for k in range(a.shape[0]):
        d = a[k] - b[k]
        acc += d * d
    return acc


@njit(cache=True, nogil=True)
def _data_cost_into(fs, ft, out):
    for p in range(fs.shape[0]):
        for q in range(ft.shape[0]):
            out[p, q] = _squared_distance(fs[p], ft[q])


@njit(cache=True, nogil=True)
def _data_cost_window_into(fs, ft, shift, out):
    H, W = fs.shape[:2]
    Ht, Wt = ft.shape[:2]
    K = out.shape[2]
    for i in range(H):
        for j in range(W):
            for a in range(K):
                y = i + shift[i, j, 0] + a
                for b in range(K):
                    x = j + shift[i, j, 1] + b
                    if 0 <= y < Ht and 0 <= x < Wt:
                        out[i, j, a, b] = _squared_distance(fs[i, j], ft[y, x])
                    else:
                        out[i, j, a, b] = np.inf


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


@njit(cache=True, nogil=True)
def _min_filter(f, slack, tmp, out):
    """``out[a, b] = min f[a', b']`` over ``|a' - a|, |b' - b| <= slack`` on the grid.

    Separable, one shifted row at a time, so that the inner loops vectorise.
    """
    Ly, Lx = f.shape
    for a in range(Ly):
        row = tmp[a]
        row[:] = f[a]
        for o in range(1, slack + 1):
            for b in range(Lx - o):
                row[b] = _fmin(row[b], f[a, b + o])
                row[b + o] = _fmin(row[b + o], f[a, b])
    for a in range(Ly):
        row = out[a]
        row[:] = tmp[a]
        for c in range(max(a - slack, 0), min(a + slack + 1, Ly)):
            for b in range(Lx):
                row[b] = _fmin(row[b], tmp[c, b])


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
    H, W, Ly, Lx = costs.shape
    tmp = np.empty((Ly, Lx), costs.dtype)
    near = np.empty((Ly, Lx), costs.dtype)
    for i in range(H):
        for j in range(W):
            _min_filter(costs[i, j], slack, tmp, near)
            block = coarse[i // 2, j // 2]
            sy = offsets[i - i % 2, j - j % 2, 0] - offsets[i, j, 0]
            sx = offsets[i - i % 2, j - j % 2, 1] - offsets[i, j, 1]
            for a in range(Ly):
                y = a + sy
                for b in range(Lx):
                    x = b + sx
                    if 0 <= y < Ly and 0 <= x < Lx:
                        block[a, b] += near[y, x]
                    else:
                        block[a, b] = np.inf


def data_cost_window(fs, ft, radius, centers=None):
    """Data costs of the displacements in a window of radius ``R`` around each node.

    ``D[i, j, a, b] = ||fs[i, j] - ft[i + cy + a - R, j + cx + b - R]||^2`` with
    ``(cy, cx) = centers[i, j]``, and ``+inf`` where that target position is outside
    ``ft``. The label ``(a, b)`` is the displacement ``(a, b) + centers[i, j] - R``,
    i.e. the offsets :func:`skcorr.flow._bp.window_offsets` returns.

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

    Returns
    -------
    D : ndarray of shape (H, W, 2R + 1, 2R + 1), dtype float32
    """
    radius = _as_radius(radius)
    fs = _as_features(fs, "fs")
    H, W = fs.shape[:2]
    centers = _as_label_vectors(centers, (H, W), "centers")
    fs, ft = _as_feature_pair(fs, ft)
    size = 2 * radius + 1
    out = np.empty((H, W, size, size), np.float32)
    _data_cost_window_into(fs, ft, centers - radius, out)
    return out


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
