"""Brute-force min-sum BP, synthetic flow problems and the numpy versions of compiled
kernels (transport prices, label prices, sub-cell refinement), for tests and benchmarks
only.

:func:`min_sum_bp_reference` has the problem, schedule and normalisation of
:func:`skcorr.flow._mrf._solve.min_sum_bp`, but computes each message as the explicit ``O(L^2)``
minimum over all pairs of labels instead of a distance transform. Slow; not public API.
"""

from __future__ import annotations

import numpy as np

from skcorr._geometry import node_grid
from skcorr.flow._mrf._numba import _DI, _DJ


def _smoothness(diff, lam, trunc2, power=2):
    """``lam * sum over the last axis of min(d^2, trunc2)`` (``min(|d|, trunc2)`` with
    ``power=1``, SIFT Flow's)."""
    return lam * np.minimum(np.abs(diff) ** power, trunc2).sum(-1)


def min_sum_bp_reference(costs, lam, offsets, n_iter, trunc2=np.inf, power=2):
    """Run ``n_iter`` checkerboard min-sum BP iterations by brute force.

    Parameters
    ----------
    costs : ndarray of shape (H, W, Ly, Lx)
        Data costs (``+inf`` allowed, every node with a finite one).
    lam : float
        Smoothness weight.
    offsets : ndarray of int, shape (H, W, 2)
        Label ``l`` at node ``p`` is the displacement ``l + offsets[p]``.
    n_iter : int
        Iterations (each: black nodes send, then white nodes send).
    trunc2 : float, default=inf
        Squared per-axis truncation of the smoothness.

    Returns
    -------
    labels : ndarray of shape (H, W, 2), int64
        Lowest-belief label ``(ly, lx)`` of every node (first in C order on ties).
    messages : ndarray of shape (4, H, W, Ly, Lx), float64
        As returned by ``min_sum_bp(..., return_messages=True)``.
    """
    costs = np.asarray(costs, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    H, W, Ly, Lx = costs.shape
    grid = node_grid((Ly, Lx)).reshape(-1, 2)
    pair_costs = {}  # lam ||l_p + s - l_q||^2 as an (L, L) matrix, one per shift s

    def pairwise(s):
        if s not in pair_costs:
            diff = grid[:, None, :] + np.array(s) - grid[None, :, :]
            pair_costs[s] = _smoothness(diff, lam, trunc2, power)
        return pair_costs[s]

    flat = costs.reshape(H, W, -1)
    messages = np.zeros((4, H, W, Ly * Lx))
    for _ in range(n_iter):
        for colour in (0, 1):
            for i in range(H):
                for j in range((i + colour) % 2, W, 2):
                    belief = flat[i, j] + messages[:, i, j].sum(axis=0)
                    for k in range(4):
                        pi, pj = i + _DI[k], j + _DJ[k]
                        if not (0 <= pi < H and 0 <= pj < W):
                            continue
                        h = belief - messages[k, i, j]
                        s = tuple(int(x) for x in offsets[pi, pj] - offsets[i, j])
                        m = (h[None, :] + pairwise(s)).min(axis=1)
                        messages[k ^ 1, pi, pj] = m - m.min()
    best = (flat + messages.sum(axis=0)).argmin(axis=-1)
    labels = np.stack(np.divmod(best, Lx), axis=-1)
    return labels, messages.reshape(4, H, W, Ly, Lx)


def random_problem(rng, shape, labels, inf_fraction=0.2):
    """Random data costs in [0, 4) with a share of forbidden (infinite) labels; every
    node keeps its first label finite."""
    costs = rng.uniform(0, 4, size=shape + labels)
    costs[rng.random(costs.shape) < inf_fraction] = np.inf
    costs[..., 0, 0] = np.minimum(costs[..., 0, 0], 4.0)
    return costs


def dual_bp_reference(costs, lam, offsets, n_iter, trunc2=np.inf, power=2):
    """Run ``n_iter`` checkerboard dual-layer min-sum BP iterations by brute force.

    The schedule and normalisation of :func:`skcorr.flow._mrf._solve.dual_layer_bp`: each node of a
    colour takes the sums ``bu``, ``bv`` of its incoming column- and row-layer messages,
    passes them through the data factor (``gu[lx] = min_ly D + bv``, ``gv[ly] = min_lx
    D + bu``), and sends each neighbour ``p`` the explicit minimum
    ``m(l) = min_l' h(l') + lam min((l + s - l')**2, trunc2)`` of
    ``h = g + b - (p's message)``, minus its minimum, in each layer. float64 throughout.

    Returns
    -------
    mu, mv : ndarray of shape (4, H, W, Lx) and (4, H, W, Ly)
        As ``dual_layer_bp(..., return_messages=True)`` returns them.
    """
    costs = np.asarray(costs, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    H, W, Ly, Lx = costs.shape
    mu = np.zeros((4, H, W, Lx))
    mv = np.zeros((4, H, W, Ly))

    def message(h, shift):
        labels = np.arange(len(h))
        diff = (labels[:, None] + shift - labels[None, :])[..., None]
        m = (h[None, :] + _smoothness(diff, lam, trunc2, power)).min(axis=1)
        return m - m.min()

    for _ in range(n_iter):
        for colour in (0, 1):
            for i in range(H):
                for j in range((i + colour) % 2, W, 2):
                    bu, bv = mu[:, i, j].sum(axis=0), mv[:, i, j].sum(axis=0)
                    gu = (costs[i, j] + bv[:, None]).min(axis=0)
                    gv = (costs[i, j] + bu[None, :]).min(axis=1)
                    for k in range(4):
                        pi, pj = i + _DI[k], j + _DJ[k]
                        if not (0 <= pi < H and 0 <= pj < W):
                            continue
                        sy, sx = offsets[pi, pj] - offsets[i, j]
                        mu[k ^ 1, pi, pj] = message(gu + bu - mu[k, i, j], sx)
                        mv[k ^ 1, pi, pj] = message(gv + bv - mv[k, i, j], sy)
    return mu, mv


def exhaustive_minimum(costs, lam, offsets, trunc2=np.inf, power=2):
    """The lowest energy of any labelling, by enumerating them all (tiny problems only).

    ``trunc2`` is the per-axis truncation of the smoothness's distance, squared
    (``power=2``) or absolute (``power=1``, SIFT Flow's truncated L1 smoothness).

    Returns
    -------
    energy : float
    labels : ndarray of shape (H, W, 2), int64
    """
    costs = np.asarray(costs, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    H, W, Ly, Lx = costs.shape
    n, L = H * W, Ly * Lx
    if L**n > 2**22:
        raise ValueError(f"{L}**{n} labellings are too many to enumerate.")
    flat = np.indices((L,) * n).reshape(n, -1).T                 # (L**n, n) flat labels
    ly, lx = np.divmod(flat, Lx)
    nodes = np.arange(n)
    energy = costs.reshape(n, L)[nodes, flat].sum(axis=1)
    wy = (ly + offsets[..., 0].ravel()).reshape(-1, H, W)
    wx = (lx + offsets[..., 1].ravel()).reshape(-1, H, W)
    for w in (wy, wx):
        energy = energy + lam * (
            np.minimum(np.abs(np.diff(w, axis=1)) ** power, trunc2).sum(axis=(1, 2))
            + np.minimum(np.abs(np.diff(w, axis=2)) ** power, trunc2).sum(axis=(1, 2)))
    best = int(np.argmin(energy))
    return float(energy[best]), np.stack([ly[best], lx[best]], axis=-1).reshape(H, W, 2)


def l1_transform_reference(f, weight, shift, truncation=np.inf):
    """``m[a] = min_b f[b] + weight * min(|a + shift - b|, truncation)``, by brute force."""
    f = np.asarray(f, dtype=np.float64)
    a = np.arange(len(f))
    d = np.minimum(np.abs(a[:, None] + shift - a[None, :]), truncation)
    return (f[None, :] + weight * d).min(axis=1)


def sift_flow_energy(fs, ft, target_index, alpha, d=np.inf, eta=0.0, t=np.inf):
    """SIFT Flow's energy of a flow, from the features, in float64 (Liu et al. 2011).

    ``sum_p min(||fs(p) - ft(p + w(p))||_1, t) + eta (|u(p)| + |v(p)|)
    + sum_{(p, q)} min(alpha |u(p) - u(q)|, d) + min(alpha |v(p) - v(q)|, d)`` with
    ``w(p) = target_index[p] - p`` (same-shaped grids). Returns ``(data, smoothness)``,
    the data part with the small-displacement term.
    """
    fs = np.asarray(fs, dtype=np.float64)
    ft = np.asarray(ft, dtype=np.float64)
    H, W = fs.shape[:2]
    data = smooth = 0.0
    w = np.asarray(target_index) - node_grid((H, W))
    for i in range(H):
        for j in range(W):
            y, x = target_index[i, j]
            data += min(np.abs(fs[i, j] - ft[y, x]).sum(), t)
            data += eta * (abs(w[i, j, 0]) + abs(w[i, j, 1]))
            for ii, jj in ((i + 1, j), (i, j + 1)):
                if ii < H and jj < W:
                    for axis in (0, 1):
                        smooth += min(alpha * abs(w[i, j, axis] - w[ii, jj, axis]), d)
    return data, smooth


def synthetic_flow_pair(shape, n_features=16, amplitude=2.0, noise=0.1, seed=0):
    """A feature grid and a copy displaced by a known smooth integer flow.

    Target features are i.i.d. standard normal; the source feature of node ``p`` is the
    target feature at ``p + flow[p]`` plus Gaussian noise, with
    ``flow = round(amplitude * (sin(2 pi x / W + a), sin(2 pi y / H + b)))`` clipped so
    that ``p + flow[p]`` stays on the grid.

    Parameters
    ----------
    shape : (int, int)
        Grid ``(H, W)`` of both feature maps.
    n_features : int, default=16
    amplitude : float, default=2.0
        Largest displacement, in grid steps.
    noise : float, default=0.1
        Standard deviation of the noise added to the source features.
    seed : int, default=0

    Returns
    -------
    fs, ft : ndarray of shape (H, W, n_features), float32
        Source and target features.
    flow : ndarray of shape (H, W, 2), int64
        The true displacement ``(dy, dx)`` of every source node.
    """
    rng = np.random.default_rng(seed)
    H, W = shape
    ft = rng.standard_normal((H, W, n_features)).astype(np.float32)
    i, j = np.moveaxis(node_grid((H, W)), -1, 0)
    a, b = rng.uniform(0, 2 * np.pi, size=2)
    ty = np.clip(i + np.round(amplitude * np.sin(2 * np.pi * j / W + a)).astype(int), 0, H - 1)
    tx = np.clip(j + np.round(amplitude * np.sin(2 * np.pi * i / H + b)).astype(int), 0, W - 1)
    fs = ft[ty, tx] + noise * rng.standard_normal((H, W, n_features)).astype(np.float32)
    return fs, ft, np.stack([ty - i, tx - j], axis=-1)


# --------------------------------------------------------------------------------------
# The numpy implementations the compiled kernels replaced, kept as references
# --------------------------------------------------------------------------------------
def target_prices_reference(costs, reg, *, max_iter=100, tol=1e-4):
    """Sinkhorn's prices ``-reg log v`` with plain scalings, in float64 (as skcorr 0.1 had).

    Breaks down (inf or NaN prices) once ``exp(-C / reg)`` underflows, i.e. at small
    ``reg``.
    """
    reg = float(reg)
    costs = np.asarray(costs, dtype=np.float64)
    n = costs.shape[0] * costs.shape[1]
    m = costs.shape[2] * costs.shape[3]
    flat = costs.reshape(n, m)
    kernel = np.exp(-(flat - flat.min(axis=1, keepdims=True)) / reg)
    tiny = np.finfo(np.float64).tiny
    v = np.ones(m)
    for _ in range(max_iter):
        u = (1.0 / n) / (kernel @ v)
        mass = kernel.T @ u
        if np.abs(mass * v * m - 1.0).max() <= tol:
            break
        v = (1.0 / m) / np.maximum(mass, tiny)
    prices = -reg * np.log(v)
    return (prices - prices.min()).reshape(costs.shape[2:])


def label_prices_reference(prices, offsets, shape):
    """``prices`` of the target node of every (node, label): ``p + offsets[p] + l``.

    Zero where that node is off the target grid (such labels cost ``+inf`` already).
    """
    H, W, Ly, Lx = shape
    rows = (np.arange(H)[:, None] + offsets[..., 0])[:, :, None, None] + np.arange(Ly)[:, None]
    cols = (np.arange(W)[None, :] + offsets[..., 1])[:, :, None, None] + np.arange(Lx)
    inside = ((rows >= 0) & (rows < prices.shape[0])) & ((cols >= 0) & (cols < prices.shape[1]))
    picked = prices[np.clip(rows, 0, prices.shape[0] - 1), np.clip(cols, 0, prices.shape[1] - 1)]
    return np.where(inside, picked, 0.0)


def subcell_reference(costs, labels, offsets, lam, trunc2, sweeps=3, power=2):
    """Per node and axis, the vertex of the parabola through its energy at ``l - 1, l, l + 1``.

    The energy of node ``p`` at a label is its data cost plus its (truncated) smoothness
    to its neighbours' positions; only the moved axis's terms change. Where a side label
    is off the grid or not allowed, or the energy is not convex there, the node keeps its
    label on that axis. Vertices are clipped to half a step. The first sweep measures
    the smoothness to the neighbours' grid nodes, which pulls every vertex towards the
    grid; each further sweep (Jacobi) measures it to their refined positions instead.
    """
    H, W, Ly, Lx = costs.shape
    w = labels + offsets
    rows, cols = np.ogrid[:H, :W]
    # data costs at the label and the labels beside it, per axis; +inf off the grid
    data = {}
    for axis, size in ((0, Ly), (1, Lx)):
        for step in (-1, 1):
            moved = labels.copy()
            moved[..., axis] += step
            inside = (moved[..., axis] >= 0) & (moved[..., axis] < size)
            np.clip(moved[..., axis], 0, size - 1, out=moved[..., axis])
            data[axis, step] = np.where(inside, costs[rows, cols, moved[..., 0], moved[..., 1]],
                                        np.inf)
        data[axis, 0] = costs[rows, cols, labels[..., 0], labels[..., 1]]
    out = np.zeros((H, W, 2))
    for _ in range(sweeps):
        refined = np.zeros((H, W, 2))
        for axis in (0, 1):
            positions = w[..., axis] + out[..., axis]
            there = [_neighbour(positions, shift)
                     for shift in ((1, 0), (-1, 0), (0, 1), (0, -1))]
            below, here, above = (
                data[axis, step].astype(np.float64)
                + sum(np.where(np.isnan(q), 0.0, lam * np.minimum(
                    np.abs(w[..., axis] + step - np.nan_to_num(q)) ** power, trunc2))
                    for q in there)
                for step in (-1, 0, 1))
            curvature = below - 2 * here + above
            ok = np.isfinite(below) & np.isfinite(above) & (curvature > 0)
            with np.errstate(invalid="ignore", divide="ignore"):
                vertex = 0.5 * (below - above) / curvature
            refined[..., axis] = np.where(ok, np.clip(vertex, -0.5, 0.5), 0.0)
        out = refined
    return out


def _neighbour(values, shift):
    """``values`` of the neighbour at ``shift`` (drow, dcol) of every node; NaN off the grid."""
    out = np.full(values.shape, np.nan)
    H, W = values.shape
    di, dj = shift
    out[max(-di, 0):H - max(di, 0), max(-dj, 0):W - max(dj, 0)] = \
        values[max(di, 0):H - max(-di, 0), max(dj, 0):W - max(-dj, 0)]
    return out
