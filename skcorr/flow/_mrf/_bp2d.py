"""The 2-D solver of the flow MRF: distance transforms and min-sum BP sweeps with 2-D messages.

Pure functions with documented shapes; the numba kernels are compiled once and cached
on disk (``cache=True``), so a new process does not recompile them.

Label grids
-----------
Every node ``p`` of an ``(H, W)`` node grid has the same ``(Ly, Lx)`` grid of label
*indices* ``l = (ly, lx)``, and a per-node integer offset ``o_p`` (an ``(H, W, 2)``
array): label ``l`` at node ``p`` means the displacement ``w_p = l + o_p`` (in units of
label-grid steps, ``(dy, dx)``). The two label sets of the flow problem are two choices
of offsets (see :mod:`skcorr.flow._mrf._costs`):

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

from ._numba import _DI, _DJ

__all__ = ["bp_iterations", "distance_transform_1d", "distance_transform_2d"]


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
def _dt1d_abs(f, weight, shift, out, g):
    """``out[i] = min_q f[q] + weight * |i + shift - q|`` for ``i < len(out)``: the L1
    transform, by a forward and a backward pass (``g``: float work buffer, ``>= len(f)``).

    Off ``[0, n)`` the nearest end's value grows by ``weight`` per step, exactly.
    """
    n = f.shape[0]
    g[0] = f[0]
    for q in range(1, n):
        g[q] = min(f[q], g[q - 1] + weight)
    for q in range(n - 2, -1, -1):
        g[q] = min(g[q], g[q + 1] + weight)
    for i in range(out.shape[0]):
        x = i + shift
        c = min(max(x, 0), n - 1)
        out[i] = g[c] + weight * abs(x - c)


@njit(cache=True, nogil=True)
def _cap(f, out, cap):
    """``out = min(out, min(f) + cap)``: the truncation of a 1-D transform."""
    top = f.min() + cap
    for i in range(out.shape[0]):
        out[i] = min(out[i], top)


@njit(cache=True, nogil=True)
def _dt1d_power(f, weight, shift, out, v, z, top, power):
    """:func:`_dt1d` (``power`` 2: squared distances) or :func:`_dt1d_abs` (1: absolute)."""
    if power == 1:
        _dt1d_abs(f, weight, shift, out, top)
    else:
        _dt1d(f, weight, shift, out, v, z, top)


@njit(cache=True, nogil=True)
def _dt2d(f, weight, shift_y, shift_x, out, tmp, v, z, top, cap=np.inf, power=2):
    """Separable 2-D transform: rows (x axis) into ``tmp``, then columns into ``out``.

    ``out[y, x] = min_{a, b} f[a, b] + weight ((y + shift_y - a)^2 + (x + shift_x - b)^2)``;
    ``f``, ``out`` and ``tmp`` have the same ``(Ly, Lx)`` shape; ``v``, ``z``, ``top`` as
    in :func:`_dt1d` for ``max(Ly, Lx)``. A finite ``cap`` (``weight * T**2``) truncates
    each axis's term at it: ``weight (min(dy^2, T^2) + min(dx^2, T^2))``. With
    ``power=1`` the distances are absolute instead, ``weight (|dy| + |dx|)``, and ``cap``
    is ``weight * T``.
    """
    for a in range(f.shape[0]):
        _dt1d_power(f[a], weight, shift_x, tmp[a], v, z, top, power)
        if cap < np.inf:
            _cap(f[a], tmp[a], cap)
    for b in range(f.shape[1]):
        _dt1d_power(tmp[:, b], weight, shift_y, out[:, b], v, z, top, power)
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


def distance_transform_1d(f, weight=1.0, shift=0, out=None, *, distance="squared"):
    """Squared-Euclidean (or L1) distance transform of a 1-D sampled function.

    ``d[p] = min_q f[q] + weight * (p + shift - q)**2`` over integer ``q``, computed as the
    lower envelope of parabolas (Felzenszwalb & Huttenlocher) in ``O(n)``; with
    ``distance="absolute"``, ``d[p] = min_q f[q] + weight * |p + shift - q|`` by a forward
    and a backward pass, also ``O(n)``.

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
    distance : {"squared", "absolute"}, default="squared"
        The distance the weight multiplies.

    Returns
    -------
    d : ndarray of shape (n,), dtype float64
        All ``+inf`` when every entry of ``f`` is ``+inf``.
    """
    power = _as_power(distance)
    f = _as_costs(f, 1)
    out = _as_out(out, f.shape)
    n = f.shape[0]
    _dt1d_power(f, _as_weight(weight), int(shift), out, *_work_buffers(n), power)
    return out


# The distances of the smoothness term: the power of |d| a weight multiplies.
DISTANCES = {"squared": 2, "absolute": 1}


def _as_power(distance):
    if not isinstance(distance, str) or distance not in DISTANCES:
        raise ValueError(f"distance must be 'squared' or 'absolute'; got {distance!r}.")
    return DISTANCES[distance]


def distance_transform_2d(f, weight=1.0, shift=(0, 0), out=None, *, distance="squared"):
    """Squared-Euclidean (or L1) distance transform on a 2-D label grid, separable.

    ``d[y, x] = min_{a, b} f[a, b] + weight * ((y + sy - a)**2 + (x + sx - b)**2)`` with
    ``(sy, sx) = shift``, in ``O(Ly * Lx)``; with ``distance="absolute"``, ``weight *
    (|y + sy - a| + |x + sx - b|)``.

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
    distance : {"squared", "absolute"}, default="squared"
        The distance the weight multiplies.

    Returns
    -------
    d : ndarray of shape (Ly, Lx), dtype float64
    """
    power = _as_power(distance)
    f = _as_costs(f, 2)
    out = _as_out(out, f.shape)
    sy, sx = (int(s) for s in shift)
    _dt2d(f, _as_weight(weight), sy, sx, out, np.empty_like(f), *_work_buffers(max(f.shape)),
          np.inf, power)
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
def bp_iterations(costs, offsets, lam, messages, max_iter, tol, patience, trunc2=np.inf,
                  power=2):
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
    power : int, default=2
        2: squared distances as above; 1: absolute ones (SIFT Flow's smoothness),
        ``lam (min(|dy|, T) + min(|dx|, T))`` with ``trunc2`` then ``T`` itself.

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
                              cap, power)
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
