"""Dual-layer min-sum BP for the flow MRF (SIFT Flow's decomposition), in float32 numba.

The smoothness ``lam ||w_p - w_q||^2`` of the flow energy is the sum of a term in the
vertical displacements and one in the horizontal ones, so every node ``p`` can carry
two variables, ``v_p`` (label row ``ly``) and ``u_p`` (label column ``lx``), joined by
the data term ``D_p(ly, lx)`` (Liu et al., SIFT Flow, TPAMI 2011). The factor graph has
one data factor per node and a chain of 1-D smoothness factors along each grid edge in
each layer; its energy is the flow energy exactly, and its minimum is the same.
Min-sum BP on it passes

* within a layer, from ``q`` to its neighbour ``p``: a 1-D transform
  ``m(l) = min_{l'} h(l') + lam (l + s - l')**2`` of ``q``'s layer belief ``h`` without
  ``p``'s message (``s = o_p - o_q`` in that axis), ``O(L_axis**2)`` by brute force
  (for the label widths of flow problems, up to a few dozen, this beats the branchy
  ``O(L)`` lower envelope); with a truncated smoothness ``lam min(d**2, T**2)`` the
  message is capped at ``min(h) + lam T**2``. The distances come from a table, so the
  same kernel is SIFT Flow's L1 transform ``min_{l'} h(l') + lam |l + s - l'|`` (capped
  at ``min(h) + lam T``) when the table holds ``|d|`` instead of ``d**2`` (``power=1``);
* through the data factor: ``min_ly D_p(ly, lx) + B_v(ly)`` to ``u_p`` and
  ``min_lx D_p(ly, lx) + B_u(lx)`` to ``v_p``, ``O(Ly * Lx)``, both in one pass over
  the rows of ``D``.

The inner loops are vector kernels written in LLVM IR (``_simd``): the running minima of
a message stay in registers, a fixed number of vectors per call site (label rows padded
to whole vectors), the squared distances come from a table of exact squares, and
nothing is allocated inside a sweep; each node's four incoming messages per layer lie
side by side. The arithmetic is that of the scalar kernel it replaced, so the messages
and labellings are the same bit for bit.

A node's update costs ``O(Ly * Lx)``, against ``O(Ly * Lx)`` distance-transform passes
per message of 2-D BP; messages are ``O(Ly + Lx)`` floats. Nodes are updated in a
checkerboard (a raster order oscillates on some real pairs). The nodes of one colour are
independent, but the sweep runs on one thread: on the shared 2-core machine numba's
threads (``prange`` over rows, omp with or without a passive wait policy, or workqueue)
never beat one thread and spinning omp threads ran 2-10x slower (bench/README.md);
parallelism across image pairs is the better use of cores. The labelling returned is
the lowest-energy one among those decoded after every iteration and the data-only one
(each node's cheapest label), polished by iterated conditional modes (each node in
turn takes its best label given its neighbours'), so it is never worse than
nearest-column matching.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba import _DI, _DJ, _fmin
from ._simd import (
    LANES,
    belief_sum,
    data_messages,
    first_argmin,
    padded,
    row_pointer,
    send_message,
    transform_block,
)

__all__ = ["dual_bp_iterations"]


# The sweep passes rows as pointers (``row_pointer``), not array views: a view costs an
# atomic reference-count increment and decrement, more than a short message's work.


@njit(cache=True, nogil=True, inline="always")
def _data_messages(cost, Ly, Lx, bu, bv, hu, hv, gv, Px, Py):
    """Data factor to both layers plus their beliefs, in one pass over the node's costs
    ``cost`` (a pointer to its ``Ly x Lx`` matrix): ``hu[lx] = min_ly (D + bv) + bu[lx]``
    and ``hv[ly] = min_lx (D + bu) + bv[ly]``.

    ``bu``, ``bv``, ``hu``, ``hv`` and ``gv`` (scratch) hold ``Px`` and ``Py`` floats,
    whole vectors; ``hu`` and ``hv`` are ``+inf`` on the padding.
    """
    for a in range(Py):
        gv[a] = np.inf
    nvec = Px // LANES
    if nvec == 1:
        data_messages(cost, Ly, Lx, bu, bv, hu, gv, 0, 1)
    elif nvec == 2:
        data_messages(cost, Ly, Lx, bu, bv, hu, gv, 0, 2)
    elif nvec == 3:
        data_messages(cost, Ly, Lx, bu, bv, hu, gv, 0, 3)
    elif nvec == 4:
        data_messages(cost, Ly, Lx, bu, bv, hu, gv, 0, 4)
    else:
        start = 0
        while start < Px:
            if Px - start >= 4 * LANES:
                data_messages(cost, Ly, Lx, bu, bv, hu, gv, start, 4)
                start += 4 * LANES
            else:
                data_messages(cost, Ly, Lx, bu, bv, hu, gv, start, 1)
                start += LANES
    for a in range(Py):
        hv[a] = gv[a] + bv[a]


@njit(cache=True, nogil=True, inline="always")
def _send(h_full, incoming, n, lam, shift, cap, target, P, out, squares, centre, h_buf,
          changes):
    """One layer's message: transform of ``h_full - incoming`` into ``target`` (rows of
    ``P`` floats, whole vectors), min 0.

    ``m(a) = min_b h[b] + lam (a + shift - b)**2`` over the ``n`` labels, brute force;
    with a finite ``cap`` (``lam`` times the squared truncation) the smoothness is the
    truncated quadratic ``lam min(d**2, T**2)``: no message exceeds ``min(h) + cap``.
    Up to ``8 * LANES`` labels the minima stay in registers and are normalised there;
    wider rows go through ``out`` in blocks. The largest change of ``target`` goes into
    ``changes`` (``LANES`` lane-wise maxima, reduced once per half sweep).
    """
    nvec = P // LANES
    if nvec == 1:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 1)
        return
    if nvec == 2:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 2)
        return
    if nvec == 3:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 3)
        return
    if nvec == 4:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 4)
        return
    if nvec == 5:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 5)
        return
    if nvec == 6:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 6)
        return
    if nvec == 7:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 7)
        return
    if nvec == 8:
        send_message(h_full, incoming, n, lam, shift, cap, target, squares, centre, h_buf,
                     changes, 8)
        return
    low = np.float32(np.inf)
    start = 0
    while start < P:
        if P - start >= 8 * LANES:
            low = _fmin(low, transform_block(h_full, incoming, n, lam, shift, cap, out,
                                             start, squares, centre, h_buf, 8))
            start += 8 * LANES
        else:
            low = _fmin(low, transform_block(h_full, incoming, n, lam, shift, cap, out,
                                             start, squares, centre, h_buf, 1))
            start += LANES
    delta = changes[0]
    for a in range(n):
        x = out[a] - low
        delta = max(delta, abs(x - target[a]))
        target[a] = x
    changes[0] = delta


@njit(cache=True, nogil=True, inline="always")
def _update_node(costs, mu, mv, i, j, scratch, labels):
    """Node (i, j)'s beliefs and label; leaves ``hu = gu + bu`` and ``hv = gv + bv`` (the
    data factor's messages plus the beliefs) in ``scratch[2]`` and ``scratch[3]``."""
    W, Ly, Lx = costs.shape[1:]
    Px = mu.shape[3]
    Py = mv.shape[3]
    node = i * W + j
    bu = row_pointer(scratch, 0)
    bv = row_pointer(scratch, 1)
    hu = row_pointer(scratch, 2)
    hv = row_pointer(scratch, 3)
    belief_sum(row_pointer(mu, 4 * node), Px, bu)
    belief_sum(row_pointer(mv, 4 * node), Py, bv)
    _data_messages(row_pointer(costs, node * Ly), Ly, Lx, bu, bv, hu, hv,
                   row_pointer(scratch, 7), Px, Py)
    # a label (ly, lx) minimising D + bv[ly] + bu[lx]: the row from gv + bv (scratch[4]
    # is zero)
    ly = first_argmin(hv, row_pointer(scratch, 4), Ly)
    labels[i, j, 0] = ly
    labels[i, j, 1] = first_argmin(row_pointer(costs, node * Ly + ly), bu, Lx)


@njit(cache=True, nogil=True)
def _half_sweep(costs, offsets, lam, cap, mu, mv, colour, labels, scratch, squares, centre):
    """Every node of one colour sends its eight messages; decode its label on the way.

    Returns the largest change of a message.
    """
    H, W, Ly, Lx = costs.shape
    Px = mu.shape[3]
    Py = mv.shape[3]
    hu = row_pointer(scratch, 2)
    hv = row_pointer(scratch, 3)
    out = row_pointer(scratch, 5)
    h_buf = row_pointer(scratch, 6)
    changes = row_pointer(scratch, 8)
    table = row_pointer(squares, 0)
    for t in range(LANES):
        changes[t] = 0.0
    for i in range(H):
        for j in range((i + colour) % 2, W, 2):
            _update_node(costs, mu, mv, i, j, scratch, labels)
            node = 4 * (i * W + j)
            for k in range(4):
                pi = i + _DI[k]
                pj = j + _DJ[k]
                if pi < 0 or pi >= H or pj < 0 or pj >= W:
                    continue
                sy = offsets[pi, pj, 0] - offsets[i, j, 0]
                sx = offsets[pi, pj, 1] - offsets[i, j, 1]
                other = 4 * (pi * W + pj) + (k ^ 1)
                _send(hu, row_pointer(mu, node + k), Lx, lam, sx, cap, row_pointer(mu, other),
                      Px, out, table, centre, h_buf, changes)
                _send(hv, row_pointer(mv, node + k), Ly, lam, sy, cap, row_pointer(mv, other),
                      Py, out, table, centre, h_buf, changes)
    delta = changes[0]
    for t in range(1, LANES):
        delta = max(delta, changes[t])
    return delta


@njit(cache=True, nogil=True)
def _decode_all(costs, mu, mv, labels, scratch):
    """Every node's label from the current messages (zero messages: the data-only one)."""
    H, W = costs.shape[:2]
    for i in range(H):
        for j in range(W):
            _update_node(costs, mu, mv, i, j, scratch, labels)


@njit(cache=True, nogil=True, inline="always")
def _distance(d, power):
    """``d**2`` (``power`` 2) or ``|d|`` (1) of an integer difference of labels."""
    return d * d if power == 2 else abs(d)


@njit(cache=True, nogil=True)
def _polish(costs, offsets, lam, trunc2, labels, max_pass, power=2):
    """Iterated conditional modes on ``labels``, in place, by checkerboard colour.

    Each node takes the label minimising its data cost plus its smoothness to its
    neighbours' current displacements; that sum separates into a row term and a column
    term, so a node costs ``O(Ly * Lx)`` (a vector argmin per row). The energy never
    increases. A node is looked at again only once a neighbour has changed since: with
    the same neighbours it would keep its label, so skipping it changes nothing.
    """
    H, W, Ly, Lx = costs.shape
    sy = np.empty(Ly, np.float32)
    sx = np.zeros(-(-Lx // LANES) * LANES, np.float32)
    dirty = np.ones((H, W), np.bool_)
    for _ in range(max_pass):
        changed = False
        for colour in range(2):
            for i in range(H):
                for j in range((i + colour) % 2, W, 2):
                    if not dirty[i, j]:
                        continue
                    dirty[i, j] = False
                    sy[:] = 0.0
                    sx[:Lx] = 0.0
                    for k in range(4):
                        pi = i + _DI[k]
                        pj = j + _DJ[k]
                        if pi < 0 or pi >= H or pj < 0 or pj >= W:
                            continue
                        # neighbour's displacement in this node's label coordinates
                        ty = labels[pi, pj, 0] + offsets[pi, pj, 0] - offsets[i, j, 0]
                        tx = labels[pi, pj, 1] + offsets[pi, pj, 1] - offsets[i, j, 1]
                        for a in range(Ly):
                            sy[a] += lam * np.float32(min(_distance(a - ty, power), trunc2))
                        for b in range(Lx):
                            sx[b] += lam * np.float32(min(_distance(b - tx, power), trunc2))
                    node = (i * W + j) * Ly
                    ly0 = labels[i, j, 0]
                    lx0 = labels[i, j, 1]
                    current = costs[i, j, ly0, lx0] + sy[ly0] + sx[lx0]
                    best = current
                    by = ly0
                    bx = lx0
                    for a in range(Ly):
                        b = first_argmin(row_pointer(costs, node + a), sx, Lx)
                        x = costs[i, j, a, b] + sy[a] + sx[b]
                        if x < best:
                            best = x
                            by = a
                            bx = b
                    if best < current:
                        labels[i, j, 0] = by
                        labels[i, j, 1] = bx
                        changed = True
                        for k in range(4):
                            pi = i + _DI[k]
                            pj = j + _DJ[k]
                            if 0 <= pi < H and 0 <= pj < W:
                                dirty[pi, pj] = True
        if not changed:
            break


@njit(cache=True, nogil=True)
def labelling_energy(costs, offsets, lam, trunc2, labels, power=2):
    """``(data, smoothness)`` energy of ``labels`` (float64 sums).

    The smoothness of an edge is ``lam (min(dy**2, trunc2) + min(dx**2, trunc2))``, or
    with ``power=1`` ``lam (min(|dy|, trunc2) + min(|dx|, trunc2))``.
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
                smooth += min(_distance(dy, power), trunc2) + min(_distance(dx, power), trunc2)
            if j + 1 < W:
                dy = labels[i, j + 1, 0] + offsets[i, j + 1, 0] - wy
                dx = labels[i, j + 1, 1] + offsets[i, j + 1, 1] - wx
                smooth += min(_distance(dy, power), trunc2) + min(_distance(dx, power), trunc2)
    return data, lam * smooth


def dual_bp_iterations(costs, offsets, lam, mu, mv, max_iter, tol, patience, trunc2=np.inf,
                       power=2):
    """Checkerboard dual-layer min-sum BP; returns the best labelling seen.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx), float32, C-contiguous
        Data costs; ``+inf`` forbids a label; every node needs a finite one.
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
    power : int, default=2
        2: squared distances as above; 1: absolute ones (SIFT Flow's smoothness),
        ``lam (min(|dy|, T) + min(|dx|, T))``, with ``trunc2`` then ``T`` itself.

    Returns
    -------
    labels : ndarray of shape (H, W, 2), int64
        The lowest-energy labelling among the data-only one, those decoded during every
        iteration and the one decoded from the final messages (the first on ties),
        improved by up to 10 passes of iterated conditional modes.
    n_iter : int
        Iterations run.
    """
    costs = np.ascontiguousarray(costs, dtype=np.float32)  # the kernels read raw rows
    H, W, Ly, Lx = costs.shape
    Px, Py = padded(Lx), padded(Ly)
    # The sweep's layout: a node's four incoming messages per layer in one block, rows
    # padded with zeros to whole vectors.
    pmu = np.zeros((H, W, 4, Px), np.float32)
    pmv = np.zeros((H, W, 4, Py), np.float32)
    pmu[..., :Lx] = mu.transpose(1, 2, 0, 3)
    pmv[..., :Ly] = mv.transpose(1, 2, 0, 3)
    scratch = np.zeros((9, max(Px, Py)), np.float32)   # row 4 stays zero
    # squares[centre + d] = d**2 (or |d|) for every distance (a + shift - b) a message meets
    shift = max([int(np.abs(np.diff(offsets, axis=axis)).max(initial=0)) for axis in (0, 1)])
    centre = shift + max(Px, Py)
    steps = np.arange(-centre, centre + 1, dtype=np.float32)
    squares = np.square(steps) if power == 2 else np.abs(steps)
    best = np.empty((H, W, 2), np.int64)
    trunc2 = np.float32(trunc2)
    cap = np.float32(lam * trunc2) if lam > 0 else np.float32(np.inf)
    # the data-only labelling is that of zero messages
    warm = mu.any() or mv.any()
    n_iter = _dual_bp(costs, offsets, lam, trunc2, cap, pmu, pmv,
                      np.zeros_like(pmu) if warm else pmu, np.zeros_like(pmv) if warm else pmv,
                      max_iter, tol, patience, scratch, squares, centre, best, power)
    mu[...] = pmu[..., :Lx].transpose(2, 0, 1, 3)
    mv[...] = pmv[..., :Ly].transpose(2, 0, 1, 3)
    return best, n_iter


@njit(cache=True, nogil=True)
def _dual_bp(costs, offsets, lam, trunc2, cap, mu, mv, mu0, mv0, max_iter, tol,
             patience, scratch, squares, centre, best, power):
    H, W, Ly, Lx = costs.shape
    labels = np.empty((H, W, 2), np.int64)
    _decode_all(costs, mu0, mv0, labels, scratch)
    data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels, power)
    best_energy = data + smooth
    best[:] = labels
    stale = 0
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        delta = 0.0
        for colour in range(2):
            delta = max(delta, _half_sweep(costs, offsets, lam, cap, mu, mv, colour, labels,
                                           scratch, squares, centre))
        data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels, power)
        stale += 1
        if data + smooth < best_energy:
            best_energy = data + smooth
            best[:] = labels
            stale = 0
        if delta <= tol or (patience > 0 and stale >= patience):
            break
    _decode_all(costs, mu, mv, labels, scratch)
    data, smooth = labelling_energy(costs, offsets, lam, trunc2, labels, power)
    if data + smooth < best_energy:
        best[:] = labels
    _polish(costs, offsets, lam, trunc2, best, 10, power)
    return n_iter
