"""Frozen copy of the dual-layer BP kernel as of commit bf515d6 (before issue 22's
vector sweep), for bench/bp.py to time side by side with the current one. Not used by
skcorr; do not edit.
"""
# ruff: noqa

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_FASTMATH = {"nnan", "nsz", "arcp", "contract", "reassoc"}
_DI = (-1, 1, 0, 0)
_DJ = (0, 0, -1, 1)


@intrinsic
def _fmin(typingctx, a, b):
    if a != b or a not in (types.float32, types.float64):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(a)
        fn = builder.module.declare_intrinsic("llvm.minnum", [ty], ir.FunctionType(ty, [ty, ty]))
        return builder.call(fn, args)

    return a(a, b), codegen



@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _transform(h, lam, shift, out):
    """``out[a] = min_b h[b] + lam (a + shift - b)**2``, brute force; returns ``min(out)``.

    Eight outputs at a time, their running minima in eight scalars that LLVM packs into
    one vector register (a running minimum in ``out`` would become masked stores).
    """
    n = h.shape[0]
    m = out.shape[0]
    low = np.float32(np.inf)
    one = np.float32(1.0)
    for a0 in range(0, m, 8):
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = np.float32(np.inf)
        x0 = np.float32(a0 + shift)
        for b in range(n):
            hb = h[b]
            d = x0 - np.float32(b)
            c0 = _fmin(c0, hb + lam * d * d)
            d += one
            c1 = _fmin(c1, hb + lam * d * d)
            d += one
            c2 = _fmin(c2, hb + lam * d * d)
            d += one
            c3 = _fmin(c3, hb + lam * d * d)
            d += one
            c4 = _fmin(c4, hb + lam * d * d)
            d += one
            c5 = _fmin(c5, hb + lam * d * d)
            d += one
            c6 = _fmin(c6, hb + lam * d * d)
            d += one
            c7 = _fmin(c7, hb + lam * d * d)
        lanes = (c0, c1, c2, c3, c4, c5, c6, c7)
        for t in range(min(8, m - a0)):
            out[a0 + t] = lanes[t]
            low = _fmin(low, lanes[t])
    return low


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _row_min(row, add):
    """``min_b row[b] + add[b]``."""
    acc = np.float32(np.inf)
    for b in range(row.shape[0]):
        acc = _fmin(acc, row[b] + add[b])
    return acc


@njit(cache=True, nogil=True)
def _row_argmin(row, add):
    """First ``b`` minimising ``row[b] + add[b]``."""
    best = np.inf
    arg = 0
    for b in range(row.shape[0]):
        x = row[b] + add[b]
        if x < best:
            best = x
            arg = b
    return arg


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _beliefs(mu, mv, i, j, bu, bv):
    """Sums of the four spatial messages into node (i, j), per layer."""
    for b in range(bu.shape[0]):
        bu[b] = mu[0, i, j, b] + mu[1, i, j, b] + mu[2, i, j, b] + mu[3, i, j, b]
    for a in range(bv.shape[0]):
        bv[a] = mv[0, i, j, a] + mv[1, i, j, a] + mv[2, i, j, a] + mv[3, i, j, a]


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _data_messages(cost, cost_t, bu, bv, gu, gv):
    """Data factor to the layers: ``gu[lx] = min_ly D + bv``, ``gv[ly] = min_lx D + bu``."""
    for b in range(gu.shape[0]):
        gu[b] = _row_min(cost_t[b], bv)
    for a in range(gv.shape[0]):
        gv[a] = _row_min(cost[a], bu)


@njit(cache=True, nogil=True)
def _decode(cost, bu, bv, gv):
    """A label ``(ly, lx)`` minimising ``D + bv[ly] + bu[lx]``, given ``gv``."""
    ly = _row_argmin(gv, bv)
    return ly, _row_argmin(cost[ly], bu)


@njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _send(h_full, incoming, lam, shift, cap, h, out, target):
    """One layer's message: transform of ``h_full - incoming`` into ``target``, min 0.

    With a finite ``cap`` (``lam`` times the squared truncation) the smoothness is the
    truncated quadratic ``lam min(d**2, T**2)``: no message exceeds ``min(h) + cap``.
    Returns the largest change of ``target``.
    """
    for b in range(h.shape[0]):
        h[b] = h_full[b] - incoming[b]
    low = _transform(h, lam, shift, out)
    if cap < np.inf:
        top = np.float32(np.inf)
        for b in range(h.shape[0]):
            top = _fmin(top, h[b])
        top += cap
        for b in range(out.shape[0]):
            out[b] = _fmin(out[b], top)
        low = _fmin(low, top)
    delta = np.float32(0.0)
    for b in range(out.shape[0]):
        x = out[b] - low
        delta = max(delta, abs(x - target[b]))
        target[b] = x
    return delta


@njit(cache=True, nogil=True)
def _data_only_labels(costs, costs_t, labels):
    """Each node's cheapest label (the labelling of zero messages)."""
    H, W, Ly, Lx = costs.shape
    zu = np.zeros(Lx, np.float32)
    zv = np.zeros(Ly, np.float32)
    for i in range(H):
        gu = np.empty(Lx, np.float32)
        gv = np.empty(Ly, np.float32)
        for j in range(W):
            _data_messages(costs[i, j], costs_t[i, j], zu, zv, gu, gv)
            labels[i, j, 0], labels[i, j, 1] = _decode(costs[i, j], zu, zv, gv)


@njit(cache=True, nogil=True)
def _half_sweep(costs, costs_t, offsets, lam, cap, mu, mv, colour, labels, row_delta):
    """Every node of one colour sends its eight messages; decode its label on the way."""
    H, W, Ly, Lx = costs.shape
    for i in range(H):
        bu = np.empty(Lx, np.float32)
        bv = np.empty(Ly, np.float32)
        gu = np.empty(Lx, np.float32)
        gv = np.empty(Ly, np.float32)
        hu = np.empty(Lx, np.float32)
        hv = np.empty(Ly, np.float32)
        h = np.empty(max(Lx, Ly), np.float32)
        out = np.empty(max(Lx, Ly), np.float32)
        delta = np.float32(0.0)
        for j in range((i + colour) % 2, W, 2):
            _beliefs(mu, mv, i, j, bu, bv)
            _data_messages(costs[i, j], costs_t[i, j], bu, bv, gu, gv)
            labels[i, j, 0], labels[i, j, 1] = _decode(costs[i, j], bu, bv, gv)
            for b in range(Lx):
                hu[b] = gu[b] + bu[b]
            for a in range(Ly):
                hv[a] = gv[a] + bv[a]
            for k in range(4):
                pi = i + _DI[k]
                pj = j + _DJ[k]
                if pi < 0 or pi >= H or pj < 0 or pj >= W:
                    continue
                sy = offsets[pi, pj, 0] - offsets[i, j, 0]
                sx = offsets[pi, pj, 1] - offsets[i, j, 1]
                delta = max(delta, _send(hu, mu[k, i, j], lam, sx, cap, h[:Lx], out[:Lx],
                                         mu[k ^ 1, pi, pj]))
                delta = max(delta, _send(hv, mv[k, i, j], lam, sy, cap, h[:Ly], out[:Ly],
                                         mv[k ^ 1, pi, pj]))
        row_delta[i] = delta


@njit(cache=True, nogil=True)
def _decode_all(costs, costs_t, mu, mv, labels):
    """Every node's label from the current messages."""
    H, W, Ly, Lx = costs.shape
    for i in range(H):
        bu = np.empty(Lx, np.float32)
        bv = np.empty(Ly, np.float32)
        gu = np.empty(Lx, np.float32)
        gv = np.empty(Ly, np.float32)
        for j in range(W):
            _beliefs(mu, mv, i, j, bu, bv)
            _data_messages(costs[i, j], costs_t[i, j], bu, bv, gu, gv)
            labels[i, j, 0], labels[i, j, 1] = _decode(costs[i, j], bu, bv, gv)


@njit(cache=True, nogil=True)
def _polish(costs, offsets, lam, trunc2, labels, max_pass):
    """Iterated conditional modes on ``labels``, in place, by checkerboard colour.

    Each node takes the label minimising its data cost plus its smoothness to its
    neighbours' current displacements; that sum separates into a row term and a column
    term, so a node costs ``O(Ly * Lx)``. The energy never increases.
    """
    H, W, Ly, Lx = costs.shape
    sy = np.empty(Ly, np.float32)
    sx = np.empty(Lx, np.float32)
    for _ in range(max_pass):
        changed = False
        for colour in range(2):
            for i in range(H):
                for j in range((i + colour) % 2, W, 2):
                    sy[:] = 0.0
                    sx[:] = 0.0
                    for k in range(4):
                        pi = i + _DI[k]
                        pj = j + _DJ[k]
                        if pi < 0 or pi >= H or pj < 0 or pj >= W:
                            continue
                        # neighbour's displacement in this node's label coordinates
                        ty = labels[pi, pj, 0] + offsets[pi, pj, 0] - offsets[i, j, 0]
                        tx = labels[pi, pj, 1] + offsets[pi, pj, 1] - offsets[i, j, 1]
                        for a in range(Ly):
                            sy[a] += lam * np.float32(min((a - ty) * (a - ty), trunc2))
                        for b in range(Lx):
                            sx[b] += lam * np.float32(min((b - tx) * (b - tx), trunc2))
                    cost = costs[i, j]
                    ly0 = labels[i, j, 0]
                    lx0 = labels[i, j, 1]
                    current = cost[ly0, lx0] + sy[ly0] + sx[lx0]
                    best = current
                    by = ly0
                    bx = lx0
                    for a in range(Ly):
                        b = _row_argmin(cost[a], sx)
                        x = cost[a, b] + sy[a] + sx[b]
                        if x < best:
                            best = x
                            by = a
                            bx = b
                    if best < current:
                        labels[i, j, 0] = by
                        labels[i, j, 1] = bx
                        changed = True
        if not changed:
            break


@njit(cache=True, nogil=True)
def labelling_energy(costs, offsets, lam, trunc2, labels):
    """``(data, smoothness)`` energy of ``labels`` (float64 sums).

    The smoothness of an edge is ``lam (min(dy**2, trunc2) + min(dx**2, trunc2))``.
    """
    H, W = costs.shape[:2]
    data = 0.0
    smooth = 0.0
    for i in range(H):
        for j in range(W):
            ly = labels[i, j, 0]
            lx = labels[i, j, 1]
            data += costs[i, j, ly, lx]
            wy = ly + offsets[i, j, 0]
            wx = lx + offsets[i, j, 1]
            if i + 1 < H:
                dy = labels[i + 1, j, 0] + offsets[i + 1, j, 0] - wy
                dx = labels[i + 1, j, 1] + offsets[i + 1, j, 1] - wx
                smooth += min(dy * dy, trunc2) + min(dx * dx, trunc2)
            if j + 1 < W:
                dy = labels[i, j + 1, 0] + offsets[i, j + 1, 0] - wy
                dx = labels[i, j + 1, 1] + offsets[i, j + 1, 1] - wx
                smooth += min(dy * dy, trunc2) + min(dx * dx, trunc2)
    return data, lam * smooth


def transpose_labels(costs):
    """``costs`` with the two label axes swapped, C-contiguous: (H, W, Lx, Ly)."""
    H, W, Ly, Lx = costs.shape
    out = np.empty((H, W, Lx, Ly), costs.dtype)
    _transpose_into(costs, out)
    return out


# The kernels write into arrays allocated by the caller: returning a new array from
# nopython code costs about half a millisecond per call (numba unpickles its dtype).
@njit(cache=True, nogil=True)
def _transpose_into(costs, out):
    H, W, Ly, Lx = costs.shape
    for i in range(H):
        for j in range(W):
            for a in range(Ly):
                for b in range(Lx):
                    out[i, j, b, a] = costs[i, j, a, b]


def dual_bp_iterations(costs, costs_t, offsets, lam, mu, mv, max_iter, tol, patience,
                       trunc2=np.inf):
    """Checkerboard dual-layer min-sum BP; returns the best labelling seen.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32, C-contiguous
        Data costs; ``+inf`` forbids a label; every node needs a finite one.
    costs_t : ndarray of shape (H, W, Lx, Ly), float32, C-contiguous
        ``costs`` with the label axes swapped (:func:`transpose_labels`).
    offsets : ndarray of shape (H, W, 2), int64
        Label ``(ly, lx)`` at node ``p`` is the displacement ``(ly, lx) + offsets[p]``.
    lam : float32
        Smoothness weight, ``>= 0``.
    mu, mv : ndarray of shape (4, H, W, Lx) and (4, H, W, Ly), float32
        Messages into each node in the u (column) and v (row) layer, from its neighbour
        above (k=0), below (1), left (2), right (3); zero at the start. Updated in place.
    max_iter : int
        Iterations at most; one iteration updates both colours (a full sweep: every
        node sends its messages once).
    tol : float
        Stop after an iteration whose largest message change is ``<= tol``.
    patience : int
        Stop once ``patience`` iterations in a row have decoded no labelling of lower
        energy than the best so far (``0``: never stop on this rule). Loopy BP on the
        coarse levels of coarse-to-fine often cycles among labellings without ever
        settling, so waiting for an unchanged labelling would run to ``max_iter``.
    trunc2 : float, default=inf
        Squared truncation ``T**2`` of the smoothness: an edge costs
        ``lam (min(dy**2, T**2) + min(dx**2, T**2))``; ``inf`` is the plain quadratic.

    Returns
    -------
    labels : ndarray of shape (H, W, 2), int64
        The lowest-energy labelling among the data-only one, those decoded during every
        iteration and the one decoded from the final messages (the first on ties),
        improved by up to 10 passes of iterated conditional modes.
    n_iter : int
        Iterations run.
    """
    best = np.empty(costs.shape[:2] + (2,), np.int64)
    trunc2 = np.float32(trunc2)
    cap = np.float32(lam * trunc2) if lam > 0 else np.float32(np.inf)
    n_iter = _dual_bp(costs, costs_t, offsets, lam, trunc2, cap, mu, mv, max_iter, tol,
                      patience, best)
    return best, n_iter


@njit(cache=True, nogil=True)
def _dual_bp(costs, costs_t, offsets, lam, trunc2, cap, mu, mv, max_iter, tol, patience, best):
    H, W, Ly, Lx = costs.shape
    labels = np.empty((H, W, 2), np.int64)
    _data_only_labels(costs, costs_t, labels)
    data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels)
    best_energy = data + smooth
    best[:] = labels
    row_delta = np.zeros(H, np.float32)
    stale = 0
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        delta = 0.0
        for colour in range(2):
            _half_sweep(costs, costs_t, offsets, lam, cap, mu, mv, colour, labels, row_delta)
            delta = max(delta, row_delta.max())
        data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels)
        stale += 1
        if data + smooth < best_energy:
            best_energy = data + smooth
            best[:] = labels
            stale = 0
        if delta <= tol or (patience > 0 and stale >= patience):
            break
    _decode_all(costs, costs_t, mu, mv, labels)
    data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels)
    if data + smooth < best_energy:
        best[:] = labels
    _polish(costs, offsets, lam, trunc2, best, 10)
    return n_iter
